"""Actions that go wrong: a business error takes the journey's on_error path with its code; a
technical failure is an incident (the session holds at the node, retried), never that path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actions.registry import ActionSpec, NotFound, Param
from engine.adapters.execution.local_actions import LocalExecutor
from engine.definitions.library import Library
from engine.sessions.service import MemoryStore, Sessions

JOURNEY = """
journey: fragile
version: 1
title: One action, and what happens when it fails
start: act
nodes:
  act:
    kind: action
    action: {action}
    input: {{order_id: "10000001"}}
    output: result
    timeout: 1
    on_error: sorry
    next: done
  sorry: {{kind: handoff, queue: support, say: "{{{{ last_error.message }}}}"}}
  done: {{kind: end, outcome: resolved}}
"""


def spec(name: str, body: Callable[..., Any]) -> ActionSpec:
    return ActionSpec(
        name, "a test action", (Param("order_id", "string", True),), ("status",), body
    )


def no_ledger(key: str, action: str, run: Callable[[], Any]) -> tuple[dict[str, Any], bool]:
    return dict(run()), False


def fragile_sessions(
    tmp_path: Path, action: str, executor: Any, retries: int = 0, text: str = JOURNEY
) -> tuple[Sessions, Any]:
    library = tmp_path / "lib"
    library.mkdir(exist_ok=True)
    journey = text.format(action=action).replace(
        "    timeout: 1\n", f"    timeout: 1\n    retries: {retries}\n"
    )
    (library / "fragile.yaml").write_text(journey)
    sessions = Sessions(Library(library), MemoryStore(), executor)
    return sessions, sessions.start("fragile", {})


def run_fragile(
    tmp_path: Path, action: str, executor: Any, retries: int = 0, text: str = JOURNEY
) -> Any:
    return fragile_sessions(tmp_path, action, executor, retries, text)[1]


def raises(order_id: str) -> dict[str, Any]:
    raise ConnectionError("the order system is down")


def wrong_shape(order_id: str) -> dict[str, Any]:
    return {"state": "shipped"}


def unknown_order(order_id: str) -> dict[str, Any]:
    raise NotFound(f"no order {order_id!r} in the back office")


def test_a_business_error_takes_on_error_with_its_code_and_is_not_retried(tmp_path: Path) -> None:
    calls: list[str] = []

    def body(order_id: str) -> dict[str, Any]:
        calls.append(order_id)
        return unknown_order(order_id)

    executor = LocalExecutor(actions={"test.lookup": spec("test.lookup", body)}, ledger=no_ledger)
    s = run_fragile(tmp_path, "test.lookup", executor, retries=2)
    assert (s.status, s.outcome) == ("ended", "escalated")
    assert s.context["last_error"]["code"] == "not_found"
    assert s.messages == ["no order '10000001' in the back office"]  # what the agent is told
    assert calls == ["10000001"]  # the back office's answer: asked once


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        ("test.raises", raises, "the order system is down"),
        ("test.wrong_shape", wrong_shape, "returned no 'status' (declared outputs)"),
    ],
)
def test_a_technical_failure_is_an_incident_never_the_business_path(
    tmp_path: Path, name: str, body: Callable[..., Any], says: str
) -> None:
    executor = LocalExecutor(actions={name: spec(name, body)}, ledger=no_ledger)
    s = run_fragile(tmp_path, name, executor, retries=1)
    assert (s.status, s.node, s.outcome) == ("incident", "act", None)
    assert "last_error" not in s.context  # on_error (the business path) was not taken
    assert s.incident is not None and says in s.incident["message"]
    assert s.incident["action"] == name and s.incident["tries"] == 1
    assert s.incident["retry_at"] > s.incident["since"]
    assert "result" not in s.context  # nothing half-applied


def test_an_incident_goes_on_where_it_was_once_the_system_is_back(tmp_path: Path) -> None:
    down = [True]

    def flaky(order_id: str) -> dict[str, Any]:
        if down[0]:
            raise ConnectionError("the order system is down")
        return {"status": "shipped"}

    executor = LocalExecutor(actions={"test.flaky": spec("test.flaky", flaky)}, ledger=no_ledger)
    sessions, s = fragile_sessions(tmp_path, "test.flaky", executor)
    assert s.status == "incident"
    again = sessions.retry(s.id, actor="agent-7")
    assert again.status == "incident" and again.incident is not None
    assert again.incident["tries"] == 2 and again.incident["since"] == s.incident["since"]
    down[0] = False
    done = sessions.retry(s.id, actor="agent-7")
    assert (done.status, done.outcome, done.incident) == ("ended", "resolved", None)
    assert done.context["result"] == {"status": "shipped"}
    runs = sessions.store.runs(s.id)  # type: ignore[attr-defined]
    assert [r["status"] for r in runs] == ["failed", "failed", "succeeded"]
    assert len({r["key"] for r in runs}) == 3  # one record per try, one idempotency key
    events = [e["type"] for e in sessions.store.events(s.id)]
    assert events.count("retry") == 2


def test_an_incident_can_be_handed_off(tmp_path: Path) -> None:
    executor = LocalExecutor(actions={"test.raises": spec("test.raises", raises)}, ledger=no_ledger)
    sessions, s = fragile_sessions(tmp_path, "test.raises", executor)
    handed = sessions.hand_off(s.id, actor="agent-7")
    assert (handed.status, handed.outcome) == ("ended", "escalated")
    assert handed.handoff is not None and handed.handoff["queue"] == "backoffice"
    assert "the order system is down" in handed.handoff["reason"]


def test_on_failure_sends_a_technical_failure_where_the_journey_says(tmp_path: Path) -> None:
    executor = LocalExecutor(actions={"test.raises": spec("test.raises", raises)}, ledger=no_ledger)
    journey = JOURNEY.replace(
        "    on_error: sorry\n", "    on_error: sorry\n    on_failure: agent\n"
    )
    journey += '  agent: {{kind: handoff, queue: agents, say: "An agent takes over."}}\n'
    s = run_fragile(tmp_path, "test.raises", executor, text=journey)
    assert (s.status, s.outcome, s.handoff and s.handoff["queue"]) == (
        "ended",
        "escalated",
        "agents",
    )
    assert s.context["last_error"]["code"] == "failure"


def test_incidents_due_are_retried_by_the_loop(tmp_path: Path) -> None:
    from datetime import timedelta

    from engine import clock

    executor = LocalExecutor(actions={"test.raises": spec("test.raises", raises)}, ledger=no_ledger)
    sessions, s = fragile_sessions(tmp_path, "test.raises", executor)
    assert sessions.retry_due() == []  # not due yet: 30 s of back-off
    later = clock.now() + timedelta(seconds=31)
    with clock.using(lambda: later):
        retried = sessions.retry_due()
    assert [r.id for r in retried] == [s.id] and retried[0].incident["tries"] == 2  # type: ignore[index]


def test_an_action_that_is_not_registered(tmp_path: Path) -> None:
    executor = LocalExecutor(actions={}, ledger=no_ledger)
    s = run_fragile(tmp_path, "test.missing", executor)
    assert s.status == "incident" and s.incident is not None
    assert "'test.missing' is not a back-office action" in s.incident["message"]
