"""Actions that go wrong: the session takes its on_error path with a clear reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actions.registry import ActionSpec, Param
from engine.adapters.local_actions import LocalExecutor
from engine.library import Library
from engine.service import MemoryStore, Sessions

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


def run_fragile(tmp_path: Path, action: str, executor: Any) -> Any:
    library = tmp_path / "lib"
    library.mkdir(exist_ok=True)
    (library / "fragile.yaml").write_text(JOURNEY.format(action=action))
    sessions = Sessions(Library(library), MemoryStore(), executor)
    return sessions.start("fragile", {})


def raises(order_id: str) -> dict[str, Any]:
    raise ConnectionError("the order system is down")


def wrong_shape(order_id: str) -> dict[str, Any]:
    return {"state": "shipped"}


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        ("test.raises", raises, "the order system is down"),
        ("test.wrong_shape", wrong_shape, "returned no 'status' (declared outputs)"),
    ],
)
def test_a_failing_action_takes_on_error_with_the_reason(
    tmp_path: Path, name: str, body: Callable[..., Any], says: str
) -> None:
    executor = LocalExecutor(actions={name: spec(name, body)}, ledger=no_ledger)
    s = run_fragile(tmp_path, name, executor)
    assert (s.status, s.outcome) == ("ended", "escalated")
    assert says in s.context["last_error"]["message"]
    assert s.messages == [s.context["last_error"]["message"]]  # what the agent is told
    assert "result" not in s.context  # nothing half-applied


def test_an_action_that_is_not_registered(tmp_path: Path) -> None:
    executor = LocalExecutor(actions={}, ledger=no_ledger)
    s = run_fragile(tmp_path, "test.missing", executor)
    assert "'test.missing' is not a back-office action" in s.context["last_error"]["message"]
