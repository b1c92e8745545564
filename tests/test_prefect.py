"""Actions as real Prefect task runs inside the dispatcher flow run, against the embedded server
(started once per test run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from actions.backoffice import once
from engine.adapters.execution import prefect_server
from engine.definitions.library import Library
from engine.sessions.service import MemoryStore, Sessions
from tests.conftest import ROOT, SHIPPED


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded server in a scratch home, as `journeys run` starts it; stopped at the end."""
    base = str(tmp_path_factory.mktemp("journeys-home"))
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "JOURNEYS_HOME")}
    os.environ.pop("PREFECT_API_URL", None)
    url = prefect_server.ensure_api(base, progress=False)
    try:
        yield url
    finally:
        prefect_server.stop(base)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def backoffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'bo.db'}"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", url)
    return url


def flow_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def task_run(run_id: str, final: bool = True) -> Any:
    """The task run as the Prefect server recorded it. Task runs reach the server as events,
    a moment after the action returned: read until its state is final."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = client.read_task_run(UUID(run_id))
            except Exception:  # not recorded yet
                run = None
            if run is not None and (not final or (run.state and run.state.is_final())):
                return run
            assert time.monotonic() < deadline, f"task run {run_id} not recorded as ended"
            time.sleep(0.2)


def test_a_journey_runs_its_actions_as_prefect_task_runs(prefect_api: str, backoffice: str) -> None:
    """Each action is a task run named after the action and its key (session, node, visit),
    inside the host's dispatcher flow run."""
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    executor = PrefectExecutor(ledger=once)
    assert executor.api == prefect_api
    sessions = Sessions(Library(SHIPPED), MemoryStore(), executor)
    s = sessions.start("delivery-missing", {"customer_id": "C001"})
    s = sessions.answer(s.id, "ask_order", "10000001")
    assert s.context["tracking"]["days_late"] == 7
    s = sessions.answer(s.id, "offer", "refund")
    assert s.outcome == "resolved" and s.context["refund"]["amount"] == 59.9
    after = executor.drain()
    assert [o.error for o in after] == [None]  # crm.log_contact, in the background
    records = sessions.store.events(s.id)
    runs = [r for r in records if r["type"] == "action"]
    assert all(r["run_id"] for r in runs)
    [refund] = [r for r in sessions.store.runs(s.id) if r["action"] == "payments.refund"]
    run = task_run(refund["run_id"])
    assert run.state_type.value == "COMPLETED"
    assert run.name == f"payments.refund {refund['key']}" and s.id in run.name  # found by session
    dispatcher = flow_run(str(run.flow_run_id))
    assert dispatcher.name.startswith("action host ") and dispatcher.state_type.value == "RUNNING"
    executor.close()
    assert flow_run(str(run.flow_run_id)).state_type.value == "COMPLETED"


def test_a_business_error_is_not_retried_and_takes_on_error(
    prefect_api: str, backoffice: str, tmp_path: Path
) -> None:
    """The back office's answer (no such order) is final: one run, then on_error."""
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    library = tmp_path / "lib"
    library.mkdir()
    (library / "fails.yaml").write_text(
        "journey: fails\nversion: 1\ntitle: An order that does not exist\nstart: track\nnodes:\n"
        "  track:\n    kind: action\n    action: orders.get_tracking\n    input: {order_id: '99999999'}\n"
        "    output: tracking\n    retries: 2\n    on_error: sorry\n    next: done\n"
        '  sorry: {kind: handoff, queue: logistics, say: "{{ last_error.message }}"}\n'
        "  done: {kind: end, outcome: resolved}\n"
    )
    sessions = Sessions(Library(library), MemoryStore(), PrefectExecutor(ledger=once))
    s = sessions.start("fails", {})
    assert s.outcome == "escalated"
    assert "no order '99999999'" in s.messages[-1]
    assert s.context["last_error"]["code"] == "not_found"
    [run] = [r for r in sessions.store.events(s.id) if r["type"] == "action"]
    assert run["attempts"] == 1 and run["error"] and run["code"] == "not_found"
    assert task_run(run["run_id"]).run_count == 1


def test_a_technical_failure_is_retried_then_an_incident(prefect_api: str, tmp_path: Path) -> None:
    """A system that keeps failing: 1 + retries attempts of its task run, then the session holds as an
    incident at the node; the journey's on_error (a business path) is not taken."""
    from actions.registry import ActionSpec, Param
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    def down(order_id: str) -> dict[str, str]:
        raise ConnectionError("the carrier's system is unreachable")

    spec = ActionSpec("test.down", "down", (Param("order_id", "string", True),), ("status",), down)
    executor = PrefectExecutor(
        actions={"test.down": spec}, ledger=lambda key, action, run: (dict(run()), False)
    )
    library = tmp_path / "lib"
    library.mkdir()
    (library / "down.yaml").write_text(
        "journey: down\nversion: 1\ntitle: A back office that is down\nstart: act\nnodes:\n"
        "  act:\n    kind: action\n    action: test.down\n    input: {order_id: '10000001'}\n"
        "    output: result\n    retries: 2\n    on_error: sorry\n    next: done\n"
        "  sorry: {kind: handoff, queue: support}\n  done: {kind: end, outcome: resolved}\n"
    )
    sessions = Sessions(Library(library), MemoryStore(), executor)
    s = sessions.start("down", {})
    assert (s.status, s.node, s.outcome) == ("incident", "act", None)
    assert s.incident is not None and "unreachable" in s.incident["message"]
    [run] = [r for r in sessions.store.events(s.id) if r["type"] == "action"]
    assert run["attempts"] == 3 and run["failure"]
    recorded = task_run(run["run_id"])
    assert recorded.run_count == 3 and recorded.state_type.value == "FAILED"


def test_a_second_command_reuses_the_embedded_server(prefect_api: str, tmp_path: Path) -> None:
    """The first command pays for the server start; the next one reaches its action at once."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYS_BACKOFFICE_DB": f"sqlite:///{tmp_path / 'bo.db'}",
    }
    code = (
        "import time; t = time.perf_counter();"
        "from actions.registry import ledger;"
        "from engine.adapters.execution.prefect_actions import PrefectExecutor; PrefectExecutor(ledger=ledger());"
        "print(time.perf_counter() - t)"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip()  # connected, no server started (see bench/actions.py for figures)
    assert "starting the embedded Prefect server" not in proc.stderr
    print(f"connect in a new process: {time.perf_counter() - started:.2f} s")


def test_an_unreachable_prefect_server_is_an_incident_never_customer_not_found(
    backoffice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    executor = PrefectExecutor(ledger=once)
    sessions = Sessions(Library(SHIPPED), MemoryStore(), executor)
    s = sessions.start("delivery-missing", {"customer_id": "C001"})
    assert s.status == "incident" and s.incident is not None  # held, not a business path
    assert "could not be run through Prefect" in s.incident["message"]
    assert "last_error" not in s.context and s.outcome is None


def test_journeys_run_uses_prefect_by_default(
    prefect_api: str, backoffice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No executor chosen: the actions of `journeys run` are Prefect task runs (action host)."""
    from click.testing import CliRunner

    from cli import main
    from engine.adapters.execution.action_host import stop_host

    monkeypatch.delenv("JOURNEYS_EXECUTOR", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("JOURNEYS_HOME", str(tmp_path / "home"))
    request_stop = stop_host
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(SHIPPED))
    answers = tmp_path / "answers.yaml"
    answers.write_text('ask_order: "10000001"\noffer: refund\n')
    try:
        second = _run_twice(main, CliRunner, answers, tmp_path)
    finally:
        request_stop()
    data, again = second
    assert data["outcome"] == "resolved"
    assert again["outcome"] == "escalated"  # the order was refunded by the first session
    from engine.adapters.sql.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    runs = [e for e in store.events(data["session"]) if e["type"] == "action"]
    store.dispose()
    assert runs and all(r["run_id"] for r in runs)
    assert task_run(runs[0]["run_id"]).state_type.value == "COMPLETED"


def _run_twice(
    main: object, runner: type, answers: Path, tmp_path: Path
) -> tuple[dict[str, object], dict[str, object]]:
    """Two `journeys run` in a row: the second reuses the action host the first started."""
    import json

    out = []
    for extra in ([], ["--new"]):
        result = runner().invoke(
            main,
            [
                "run",
                "delivery-missing",
                *extra,
                "--input",
                "customer_id=C001",
                "--answers",
                str(answers),
                "--format",
                "json",
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        out.append(json.loads(result.stdout))
    host = json.loads((tmp_path / "home" / "prefect" / "host.json").read_text())
    assert host["url"] and host["token"]
    return out[0], out[1]


def test_an_action_hanging_past_its_timeout_fails(prefect_api: str, tmp_path: Path) -> None:
    """`timeout: 1` on the node becomes the task's timeout: a technical failure, an incident."""
    import time as clock

    from actions.registry import ActionSpec, Param
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    def hangs(order_id: str) -> dict[str, str]:
        clock.sleep(5)
        return {"status": "late"}

    spec = ActionSpec(
        "test.hangs", "hangs", (Param("order_id", "string", True),), ("status",), hangs
    )
    executor = PrefectExecutor(
        actions={"test.hangs": spec}, ledger=lambda key, action, run: (dict(run()), False)
    )
    library = tmp_path / "lib"
    library.mkdir()
    (library / "slow.yaml").write_text(
        "journey: slow\nversion: 1\ntitle: A back office that hangs\nstart: act\nnodes:\n"
        "  act:\n    kind: action\n    action: test.hangs\n    input: {order_id: '10000001'}\n"
        "    output: result\n    timeout: 1\n    on_error: sorry\n    next: done\n"
        "  sorry: {kind: handoff, queue: support}\n  done: {kind: end, outcome: resolved}\n"
    )
    s = Sessions(Library(library), MemoryStore(), executor).start("slow", {})
    assert s.status == "incident" and s.incident is not None
    assert (
        "timed out" in s.incident["message"].lower() or "timeout" in s.incident["message"].lower()
    )


def test_background_and_post_contact_runs_are_recorded_when_they_end(
    prefect_api: str, backoffice: str, tmp_path: Path
) -> None:
    from engine.adapters.execution.prefect_actions import PrefectExecutor
    from engine.adapters.sql.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    executor = PrefectExecutor(ledger=once)
    sessions = Sessions(Library(SHIPPED), store, executor)
    s = sessions.start("delivery-missing", {"customer_id": "C001"})
    s = sessions.answer(s.id, "ask_order", "10000001")
    s = sessions.answer(s.id, "offer", "refund")
    sessions.drain()
    runs = store.runs(s.id)
    store.dispose()
    after = [r for r in runs if r["mode"] == "after"]
    assert [(r["action"], r["status"]) for r in after] == [("crm.log_contact", "succeeded")]
    assert after[0]["run_id"] and after[0]["result"]["contact_id"]
    assert all(r["run_id"] for r in runs)


def test_workers_run_the_actions_of_a_session(
    prefect_api: str, backoffice: str, tmp_path: Path
) -> None:
    """Scale-out: `journeys worker` in its own process runs the actions; the engine waits."""
    import signal as signals

    from engine.adapters.execution.prefect_workers import WorkerExecutor

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PYTHONPATH": str(ROOT)}
    journeys = Path(sys.executable).with_name("journeys")
    with subprocess.Popen(
        [str(journeys), "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            executor = WorkerExecutor()
            sessions = Sessions(Library(SHIPPED), MemoryStore(), executor)
            s = sessions.start("delivery-missing", {"customer_id": "C001"})
            assert s.node == "ask_order", s.context.get("last_error")
            s = sessions.answer(s.id, "ask_order", "10000001")
            s = sessions.answer(s.id, "offer", "refund")
            assert (s.outcome, s.context["refund"]["amount"]) == ("resolved", 59.9)
            executor.drain()
            runs = sessions.store.runs(s.id)
            assert runs and all(r["status"] == "succeeded" and r["run_id"] for r in runs)
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                task_run = client.read_task_run(UUID(runs[0]["run_id"]))
            assert f"session:{s.id}" in task_run.tags
        finally:
            worker.send_signal(signals.SIGINT)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _echo_executor() -> Any:
    from actions.registry import ActionSpec, Param
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    spec = ActionSpec(
        "test.echo",
        "echo",
        (Param("text", "string", True),),
        ("echo",),
        lambda text: {"echo": text},
    )
    return PrefectExecutor(
        actions={"test.echo": spec}, ledger=lambda key, action, run: (dict(run()), False)
    )


def _echo(executor: Any, n: int) -> Any:
    from engine.sessions.runtime import RunAction, Session

    session = Session(id=f"s{n}", journey="j", version=1, definition="d")
    effect = RunAction("act", "test.echo", {"text": f"hi {n}"}, True, 0, None, f"s{n}:act:1")
    return executor.run(effect, session)


def test_dispatcher_flow_runs_rotate_and_each_completes(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ROTATE_AFTER actions a new dispatcher flow run takes over; the old one finishes
    its actions and completes; no action is lost on the way."""
    from engine.adapters.execution import prefect_dispatch

    monkeypatch.setattr(prefect_dispatch, "ROTATE_AFTER", 3)
    executor = _echo_executor()
    flow_runs: list[str] = []
    # The next flow run opens in the background (actions go on in the old one meanwhile): on
    # a busy machine that takes a while, so actions keep coming until it has taken over.
    deadline = time.monotonic() + 90
    n = 0
    while len(flow_runs) < 2 and time.monotonic() < deadline:
        outcome = _echo(executor, n)
        assert outcome.result == {"echo": f"hi {n}"}
        run = str(task_run(str(outcome.run_id)).flow_run_id)
        if run not in flow_runs:
            flow_runs.append(run)
        n += 1
        time.sleep(0.05)
    assert len(flow_runs) == 2, f"no second dispatcher flow run after {n} actions"
    deadline = time.monotonic() + 30
    while flow_run(flow_runs[0]).state_type.value != "COMPLETED":
        assert time.monotonic() < deadline, "the first dispatcher flow run did not complete"
        time.sleep(0.2)
    executor.close()


def _die_while_running() -> None:
    """The host that dies (run in a subprocess): an action still running when it is SIGKILLed,
    once the server has recorded its task run as running."""
    import signal

    from actions.registry import ActionSpec, Param
    from engine.adapters.execution.prefect_actions import PrefectExecutor
    from engine.sessions.runtime import RunAction, Session

    def slow(text: str) -> dict[str, str]:
        time.sleep(60)
        return {"echo": text}

    spec = ActionSpec("test.slow", "slow", (Param("text", "string", True),), ("echo",), slow)
    executor = PrefectExecutor(
        actions={"test.slow": spec}, ledger=lambda key, action, run: (dict(run()), False)
    )
    session = Session(id="s1", journey="j", version=1, definition="d")
    effect = RunAction("act", "test.slow", {"text": "hi"}, False, 0, None, "s1:act:1")
    executor.run(effect, session)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = _task_runs_named("test.slow s1:act:1")
        if runs and runs[0].state_type.value == "RUNNING":
            print(runs[0].id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.2)


def _task_runs_named(name: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        return list(
            client.read_task_runs(
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name]))
            )
        )


def test_a_dispatcher_left_open_by_a_dead_host_is_marked_crashed(
    prefect_api: str, tmp_path: Path
) -> None:
    """A host killed (SIGKILL) with an action running: its dispatcher flow run and that task
    run stay Running in Prefect; the next dispatcher on this machine marks both Crashed."""
    from engine.adapters.execution.prefect_dispatch import mark_crashed

    code = "from tests.test_prefect import _die_while_running; _die_while_running()"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == -9, proc.stderr
    running = task_run(proc.stdout.split()[0], final=False)
    left = str(running.flow_run_id)
    assert flow_run(left).state_type.value == "RUNNING"  # what the dead host left behind
    assert left in mark_crashed(prefect_api)
    assert flow_run(left).state_type.value == "CRASHED"
    assert task_run(str(running.id)).state_type.value == "CRASHED"
    assert left not in mark_crashed(prefect_api)  # once


def test_with_prefect_an_outage_holds_then_goes_on_and_background_runs_are_redone(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The back-office database unreachable, actions run as Prefect task runs: the waited action
    is an incident, the background ones fail after their retries and are recorded; back up,
    the incident goes on where it was and a failed background run is run again once."""
    from engine.adapters.execution.prefect_actions import PrefectExecutor
    from engine.adapters.sql.store import SqlStore
    from tests.test_background_failures import DOWN, GOODWILL

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "goodwill.yaml").write_text(GOODWILL, encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    executor = PrefectExecutor(ledger=once)
    background = Sessions(Library(lib), store, executor)
    s = background.start("goodwill", {"customer_id": "C001"})
    s = background.answer(s.id, "ask_order", "10000001")
    background.drain()
    assert s.outcome == "resolved"
    failed = {r["action"]: r for r in store.failed_runs(s.id)}
    assert set(failed) == {"payments.refund", "notify.send"}
    assert all(r["attempts"] == 2 and r["run_id"] for r in failed.values())  # retries: 1
    held = Sessions(Library(SHIPPED), store, executor)
    h = held.start("delivery-missing", {"customer_id": "C001"})
    assert h.status == "incident" and "last_error" not in h.context

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    assert held.retry(h.id).node == "ask_order"
    run, ran = background.rerun(failed["payments.refund"]["id"])
    assert ran and run["status"] == "succeeded" and run["result"]["refund_id"]
    assert task_run(run["run_id"]).name.startswith("payments.refund ")
    assert [r["action"] for r in store.failed_runs(s.id)] == ["notify.send"]
    store.dispose()
