"""The steps per node kind (engine.sessions.steps), the status enum and the authority decision: the
seams that make a new node kind one handler."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from engine.definitions import build
from engine.definitions.model import NODE_KINDS, Journey, Node, Policy
from engine.definitions.yamlsafe import YamlMap, parse
from engine.errors import Conflict
from engine.sessions.authority import AskTotals, Denied, Granted, authorise
from engine.sessions.runtime import (
    WAITING,
    Answer,
    Ended,
    Session,
    SessionStatus,
    Start,
    Wake,
    current_step,
    new_session,
    step,
)
from engine.sessions.steps import KINDS, Kind, takes_answers
from engine.sessions.steps_common import Next, Turn, arrive, go

PAUSE = """
journey: pause
version: 1
title: A pause
motives: [pause]
channels: [phone]
start: hello
nodes:
  hello:
    kind: say
    say: Hello.
    next: hold
  hold:
    kind: say
    say: Please hold.
    next: done
  done:
    kind: end
    outcome: resolved
"""

POLICY = """
roles:
  agent:
    payments.issue_voucher:
      amount:
        max: 20
        per_session: 30
        per_customer: {max: 40, over: 30d}
"""


def _yaml(text: str) -> YamlMap:
    data = parse(textwrap.dedent(text).lstrip())
    assert isinstance(data, YamlMap)
    return data


def _journey() -> Journey:
    return build.build_journey(_yaml(PAUSE), "pause.yaml")


def _policy() -> Policy:
    return build.build_policy(_yaml(POLICY), "policies.yaml")


def test_every_node_kind_has_its_handler_and_only_those() -> None:
    assert set(KINDS) == set(NODE_KINDS)
    assert {kind for kind in NODE_KINDS if KINDS[kind].check} == {"ask", "choose"}


def test_a_new_kind_is_one_entry_of_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind that holds the session at its node, waiting for nobody's answer, until a Wake
    event moves it on: its handler, what its step shows and how it wakes are all it takes
    for the runtime (a ``wait`` node is such a kind)."""

    def enter(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
        arrive(s, node, qualified)
        s.status = WAITING
        return Next.WAIT

    def show(s: Session, node: Node, view: dict[str, object]) -> None:
        view["until"] = "2026-01-01T00:00:00+00:00"

    def wake(s: Session, node: Node, data: Mapping[str, Any] | None) -> None:
        s.context["woken_by"] = dict(data or {})
        go(s, node.next)

    monkeypatch.setitem(KINDS, "pause", Kind(enter, show=show, wake=wake))
    journey = _journey()
    hold = replace(journey.nodes["hold"], kind="pause")
    journey = replace(journey, nodes={**journey.nodes, "hold": hold})
    definitions = {journey.id: journey}
    s, effects = step(definitions, new_session("s1", journey, "h"), Start())
    assert (s.status, s.node, s.path, effects) == ("waiting", "hold", ["hello", "hold"], [])
    assert not takes_answers(hold)
    view = current_step(definitions, s)
    assert view is not None
    assert (view["kind"], view["until"], view["messages"]) == (
        "pause",
        "2026-01-01T00:00:00+00:00",
        ["Hello.", "Please hold."],
    )
    with pytest.raises(Conflict, match="takes no answer"):
        step(definitions, s, Answer("hold", "yes"))
    done, effects = step(definitions, s, Wake("hold", {"order_id": "1"}))
    assert (done.status, done.outcome, done.context["woken_by"]) == (
        "ended",
        "resolved",
        {"order_id": "1"},
    )
    assert (done.messages, done.path, effects) == (
        [],
        ["hello", "hold", "done"],
        [Ended("resolved")],
    )


def test_a_wake_is_refused_where_the_session_waits_for_an_answer() -> None:
    journey = replace(_journey(), start="hold")
    ask = replace(journey.nodes["hold"], kind="ask", field="anything")
    journey = replace(journey, nodes={**journey.nodes, "hold": ask})
    s, _effects = step({journey.id: journey}, new_session("s1", journey, "h"), Start())
    assert (s.status, s.node) == ("waiting", "hold")
    with pytest.raises(Conflict, match="waits for an answer"):
        step({journey.id: journey}, s, Wake("hold"))


def test_the_status_is_a_str_and_its_records_are_plain_strings() -> None:
    journey = _journey()
    s, _effects = step({journey.id: journey}, new_session("s1", journey, "h"), Start())
    assert s.status is SessionStatus.ENDED and s.status == "ended"
    data = s.to_dict()
    assert type(data["status"]) is str and json.loads(json.dumps(data))["status"] == "ended"
    again = Session.from_dict(json.loads(json.dumps(data)))
    assert again.status is SessionStatus.ENDED and again.to_dict() == data


def test_authority_decides_and_the_caller_applies() -> None:
    policy = _policy()
    action = "payments.issue_voucher"
    assert authorise(None, "agent", action, {"amount": 500}, None, "C1") == Granted()
    over = authorise(policy, "agent", action, {"amount": 25}, None, "C1")
    assert isinstance(over, Denied) and over.breach.rule == "max"
    session_total = authorise(policy, "agent", action, {"amount": 15}, {"amount": 20}, "C1")
    assert isinstance(session_total, Denied) and session_total.breach.rule == "per_session"
    ask = authorise(policy, "agent", action, {"amount": 15}, None, "C1")
    assert isinstance(ask, AskTotals) and ask.customer == "C1"
    assert [(c.param, c.amount, c.max) for c in ask.claims] == [("amount", 15, 40)]
    within = authorise(policy, "agent", action, {"amount": 15}, None, "C1", {"amount": 20})
    assert isinstance(within, Granted)
    assert [r.rule for r in within.applied] == ["max", "per_session", "per_customer"]
    beyond = authorise(policy, "agent", action, {"amount": 15}, None, "C1", {"amount": 30})
    assert isinstance(beyond, Denied) and beyond.breach.total == 45
    unknown = authorise(policy, "agent", action, {"amount": 15}, None, None)
    assert isinstance(unknown, Denied) and unknown.breach.customer is None
