"""The thin CLI: the decisions `journeys` used to make itself are engine functions, tested
here without click (engine/sessions/resume.py, terminal.converse, triggers.raise_each,
scenarios.run_scenarios), and an engine error leaves the CLI with its class's exit code."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from engine import errors
from engine.adapters.cli.common import Failure, command, json_errors
from engine.adapters.terminal import NEXT_MOTIVE, converse
from engine.definitions.library import Library
from engine.insight.scenarios import StubExecutor, run_scenarios
from engine.sessions.resume import check_startable, continue_session, resume_or_start
from engine.sessions.runtime import INCIDENT
from engine.sessions.service import ActionOutcome, MemoryStore, Sessions
from engine.sessions.triggers import raise_each
from tests.conftest import FIXTURES, ROOT
from tests.test_triggers import LATE_OFFER, MOTIVES, OTHER

STUBS = {
    "crm.get_customer": {"customer_id": "C001", "name": "Ada Martin"},
    "orders.get_tracking": {"order_id": "10000001", "status": "in_transit", "days_late": 7},
}


@pytest.fixture
def sessions() -> Sessions:
    return Sessions(Library(FIXTURES / "base"), MemoryStore(), StubExecutor(STUBS))


# ----------------------------------------------------------------- resume or start


def test_a_customer_with_a_waiting_session_resumes_it(sessions: Sessions) -> None:
    first = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    assert first.resumed is None and first.session.node == "ask_order"
    again = resume_or_start(sessions, "order-status", {"customer_id": "C001"}, channel="chat")
    assert again.resumed is not None and again.resumed.id == first.session.id
    assert (again.session.id, again.session.channel) == (first.session.id, "chat")
    other = resume_or_start(sessions, "order-status", {"customer_id": "C001"}, force_new=True)
    assert other.resumed is None and other.session.id != first.session.id


def test_without_a_customer_a_session_always_starts(sessions: Sessions) -> None:
    one = resume_or_start(sessions, "order-status", {})
    two = resume_or_start(sessions, "order-status", {})
    assert one.session.id != two.session.id and two.resumed is None


def test_a_journey_with_errors_is_refused_with_the_reason() -> None:
    check_startable({"other": "has 2 errors"}, "order-status")
    with pytest.raises(errors.JourneyHasErrors, match="has 1 error"):
        check_startable({"order-status": "has 1 error"}, "order-status")


def test_a_finished_session_cannot_be_continued(sessions: Sessions) -> None:
    session = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    done = sessions.answer(session.session.id, "ask_order", "10000001")
    done = sessions.answer(done.id, "offer", "no")
    assert done.finished
    with pytest.raises(errors.Conflict, match=r"has ended \(outcome 'resolved'\)"):
        continue_session(sessions, done.id)


class _DownThenUp(StubExecutor):
    """orders.get_tracking fails technically once (an incident), then answers."""

    def __init__(self) -> None:
        super().__init__(STUBS)
        self.down = True

    def run(self, effect: Any, session: Any) -> ActionOutcome:
        if effect.action == "orders.get_tracking" and self.down:
            self.down = False
            return ActionOutcome(failure="connection refused")
        return super().run(effect, session)


def test_continuing_an_incident_runs_its_action_again() -> None:
    sessions = Sessions(Library(FIXTURES / "base"), MemoryStore(), _DownThenUp())
    opened = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    held = sessions.answer(opened.session.id, "ask_order", "10000001")
    assert held.status == INCIDENT
    told: list[Any] = []
    session = continue_session(
        sessions, held.id, before_retry=lambda incident: told.append(incident)
    )
    assert [t["action"] for t in told] == ["orders.get_tracking"]
    assert (session.status, session.node) == ("waiting", "offer")


# ------------------------------------------------------------------ the terminal


def _replies(*texts: str) -> Any:
    queue: Iterator[str] = iter(texts)

    def ask(prompt: str) -> str:
        asked.append(prompt)
        try:
            return next(queue)
        except StopIteration:
            raise EOFError from None

    asked: list[str] = []
    ask.asked = asked  # type: ignore[attr-defined]
    return ask


def test_converse_goes_on_with_the_next_motive_of_the_same_contact(sessions: Sessions) -> None:
    opened = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    said: list[str] = []
    ask = _replies("10000001", "2", "demo.order", "10000002", "2", "")
    talk = converse(sessions, opened.session, ask, said.append)
    assert not talk.interrupted
    assert talk.session.id != opened.session.id and talk.session.outcome == "resolved"
    assert talk.session.contact_id == opened.session.contact_id
    assert ask.asked.count(NEXT_MOTIVE) == 2
    assert [line for line in said if line.startswith("Outcome:")] == ["Outcome: resolved"] * 2
    assert any(line.endswith("(same contact)") for line in said)


def test_converse_stopped_leaves_the_session_waiting_as_saved(sessions: Sessions) -> None:
    opened = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    talk = converse(sessions, opened.session, _replies("10000001"), lambda _text: None)
    assert talk.interrupted
    assert (talk.session.status, talk.session.node) == ("waiting", "offer")


def test_converse_a_wrong_motive_finishes_cleanly(sessions: Sessions) -> None:
    opened = resume_or_start(sessions, "order-status", {"customer_id": "C001"})
    said: list[str] = []
    talk = converse(sessions, opened.session, _replies("10000001", "2", "nope"), said.append)
    assert not talk.interrupted and talk.session.id == opened.session.id
    assert any(line.startswith("  ✗ no journey or motive 'nope'") for line in said)


# -------------------------------------------------------------------- the scan


@pytest.fixture
def late_offers(tmp_path: Path) -> Sessions:
    root = tmp_path / "lib"
    root.mkdir()
    for name, text in {"motives": MOTIVES, "late-offer": LATE_OFFER, "other": OTHER}.items():
        (root / f"{name}.yaml").write_text(text)
    return Sessions(Library(root), MemoryStore(), StubExecutor({}))


def test_a_scan_raises_each_event_and_records_those_that_started_sessions(
    late_offers: Sessions,
) -> None:
    found = [
        {"customer_id": "C001", "order_id": "10000001", "days_late": 5},
        {"customer_id": "C002", "order_id": "10000002", "days_late": 1},  # no trigger matches
        {"customer_id": "C003", "order_id": "bad", "days_late": 4},  # refused: the order id
    ]
    alerted: list[tuple[str, list[str]]] = []
    raised = raise_each(
        late_offers,
        "order.delayed",
        found,
        alerted=lambda data, started: alerted.append(
            (data["order_id"], [s.journey for s in started])
        ),
    )
    assert alerted == [("10000001", ["late-offer"])]
    assert [len(r.started) for r in raised] == [1, 0, 0]
    assert raised[1].nothing and "matched" in raised[1].nothing and raised[1].error is None
    assert raised[2].error and "order_id" in raised[2].error


def test_a_scan_stops_at_a_journey_that_may_not_start(late_offers: Sessions) -> None:
    def refuse(journey: str) -> None:
        raise errors.JourneyHasErrors(f"the journey {journey!r} has errors")

    with pytest.raises(errors.JourneyHasErrors):
        raise_each(
            late_offers,
            "order.delayed",
            [{"customer_id": "C001", "order_id": "10000001", "days_late": 5}],
            alerted=lambda *_: pytest.fail("nothing may be recorded"),
            before_start=refuse,
        )


# ---------------------------------------------------------------- the coverage


def test_coverage_is_reported_for_the_journeys_tested_and_their_sub_journeys() -> None:
    library = Library(FIXTURES / "base")
    who_only = run_scenarios(library, [FIXTURES / "base" / "who.test.yaml"])
    assert {r.journey for r in who_only.results} == {"who"}
    assert set(who_only.coverage) == {"who"}
    both = run_scenarios(library, [FIXTURES / "base" / "order-status.test.yaml"])
    assert set(both.coverage) == {"order-status", "who"}  # who runs inside order-status
    assert both.below(None) == [] and both.below(101.0) == list(both.coverage.values())


# ------------------------------------------------------------ errors and exits


ERROR_CLASSES = sorted(
    (
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.JourneysError)
    ),
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_an_engine_error_exits_with_its_class_exit_code(kind: type[errors.JourneysError]) -> None:
    @command()
    def fails() -> None:
        raise kind("what went wrong")

    result = CliRunner().invoke(fails, [])
    assert result.exit_code == kind.exit_code, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Error: what went wrong" in result.stderr
    assert ("Usage:" in result.stderr) == (kind.exit_code == 2)  # as click shows its own


def test_the_exit_codes_the_commands_have_always_had() -> None:
    """1 for a failure of any kind (the store, Prefect or Graphviz down included), 2 usage;
    3 is `journeys run`'s "waiting for an answer", never an error's."""
    assert {c.__name__: c.exit_code for c in ERROR_CLASSES if c.exit_code != 1} == {"UsageError": 2}


def test_json_errors_are_the_answer_and_usage_errors_stay_click_s() -> None:
    @command()
    @click.option("--format", "fmt", default="text")
    @click.option("--usage", is_flag=True)
    def fails(fmt: str, usage: bool) -> None:
        with json_errors(fmt):
            raise (errors.UsageError if usage else errors.Conflict)("no")

    as_json = CliRunner().invoke(fails, ["--format", "json"])
    assert (as_json.exit_code, json.loads(as_json.stdout)) == (1, {"error": "no"})
    usage = CliRunner().invoke(fails, ["--format", "json", "--usage"])
    assert (usage.exit_code, usage.stdout) == (2, "")
    assert "Error: no" in usage.stderr and "Usage:" in usage.stderr
    text = CliRunner().invoke(fails, [])
    assert (text.exit_code, text.stdout, text.stderr) == (1, "", "Error: no\n")


def test_an_invalid_answer_names_its_node() -> None:
    shown = Failure(errors.InvalidAnswer("not a number", "ask_order"))
    assert (shown.message, shown.exit_code) == ("invalid answer at 'ask_order': not a number", 1)


def test_every_command_module_is_under_the_size_limits_and_exits_through_click() -> None:
    modules = [ROOT / "cli.py", *sorted((ROOT / "engine" / "adapters" / "cli").glob("*.py"))]
    for path in modules:
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 500, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno is not None
                assert node.end_lineno - node.lineno < 60, f"{path}:{node.name}"
            if isinstance(node, ast.Name) and node.id == "SystemExit":
                pytest.fail(f"{path}:{node.lineno}: exit with ctx.exit or an error class")
    text = (ROOT / "cli.py").read_text(encoding="utf-8")
    assert text.rstrip().endswith('if __name__ == "__main__":\n    main()')


def test_the_core_does_not_import_click() -> None:
    from tests.test_imports import CORE, imported

    assert [p.name for p in CORE if "click" in imported(p)] == []
