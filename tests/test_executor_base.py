"""The executor base: the pool, the pending work, run/run_after/drain and closing once."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from engine.adapters.execution.base import AFTER, BaseExecutor, Call
from engine.adapters.execution.local_actions import LocalExecutor
from engine.sessions.runtime import RunAction, RunAfter, Session
from engine.sessions.service import ActionOutcome

SESSION = Session(id="s1", journey="j", version=1, definition="d", motive="late")


class Recording(BaseExecutor):
    """Says how one call runs: records it, and waits for ``gate`` if given."""

    thread_name = "test-executor"

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[Call, str]] = []
        self.gate = gate
        self.released = 0

    def call(self, call: Call) -> ActionOutcome:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append((call, threading.current_thread().name))
        return ActionOutcome(result={"action": call.action})

    def release(self) -> None:
        self.released += 1


def action(wait: bool) -> RunAction:
    return RunAction("n1", "crm.log", {"a": 1}, wait, 2, 5.0, "s1:n1:1")


def test_a_call_carries_what_every_executor_needs() -> None:
    call = Call.of(action(True), SESSION)
    assert call == Call("crm.log", "s1:n1:1", {"a": 1}, 2, 5.0, "s1", "late", "n1")
    after = Call.after(RunAfter("crm.log", {"a": 1}, "s1:after:0", 1), SESSION)
    assert (after.node, after.timeout, after.retries) == (AFTER, None, 1)


def test_wait_true_runs_in_the_caller_thread_and_nothing_is_pending() -> None:
    executor = Recording()
    outcome = executor.run(action(True), SESSION)
    assert outcome.result == {"action": "crm.log"} and outcome.pending is None
    assert executor.calls[0][1] == threading.current_thread().name
    assert executor.pending == [] and executor.drain() == []


def test_wait_false_and_post_contact_go_to_the_pool_until_drained() -> None:
    gate = threading.Event()
    executor = Recording(gate)
    later = executor.run(action(False), SESSION)
    after = executor.run_after(RunAfter("crm.log", {}, "s1:after:0"), SESSION)
    assert isinstance(later.pending, Future) and isinstance(after.pending, Future)
    assert len(executor.pending) == 2 and executor.calls == []
    gate.set()
    outcomes = executor.drain()
    assert [o.result for o in outcomes] == [{"action": "crm.log"}] * 2
    assert {name.split("_")[0] for _, name in executor.calls} == {"test-executor"}
    assert executor.pending == []


def test_closing_happens_once_and_refuses_later_work() -> None:
    executor = Recording()
    executor.run(action(False), SESSION)
    executor.drain()
    executor.close()
    executor.close()
    assert executor.released == 1
    with pytest.raises(RuntimeError, match="closed"):
        executor.run(action(False), SESSION)


def test_the_local_executor_runs_everything_in_the_caller_thread() -> None:
    """No pool: wait: false and post-contact actions run at once, nothing is pending."""
    ran: list[str] = []

    def ledger(key: str, name: str, run: object) -> tuple[dict[str, object], bool]:
        ran.append(key)
        return {"ok": True}, False

    executor = LocalExecutor(ledger=ledger, actions={})
    assert executor.run(action(False), SESSION).failure  # not in the catalogue
    executor = LocalExecutor(ledger=ledger)
    outcome = executor.run_after(RunAfter("crm.log_contact", {}, "s1:after:0"), SESSION)
    assert outcome.pending is None and outcome.result == {"ok": True}
    assert ran == ["s1:after:0"] and executor.drain() == []
