"""A long-lived Prefect flow run inside which every action is a task run.

A flow run per action costs 100-300 ms of API round trips (create the run, propose each state).
A task run inside a flow run that is already running is orchestrated in this process and
reported to Prefect through events: about 5 ms. So the executor keeps one *dispatcher* flow
run open (``journeys.actions``, named after this host and process) and submits each action to
it from a queue; the flow's thread pool runs them side by side.

- Rotation: a dispatcher closes after ``ROTATE_AFTER`` actions or ``ROTATE_SECONDS`` and a new
  one takes over (opened in the background first, so no action waits for it). That keeps a
  flow run's page readable in the Prefect UI, and bounds what Prefect remembers per flow run
  in this process (every task result is linked to its state for the flow's lifetime).
- Stopping: :meth:`Dispatcher.close` (at exit, on SIGTERM) stops taking actions, waits for
  those running, and completes the flow run.
- Crash recovery: a host killed with its dispatcher open leaves that flow run (and the task
  runs it was running) "Running" in Prefect. The next dispatcher on the same machine marks
  them Crashed. The actions themselves are safe: their callers got no answer, so the sessions
  hold them as incidents and run them again under the same idempotency key, which the back
  office recognises (no effect is doubled).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Unavailable

FLOW_NAME = "journeys.actions"
ROTATE_AFTER = 1000  # actions per dispatcher flow run
ROTATE_SECONDS = 3600.0
MAX_PARALLEL = 64  # actions running at once in one dispatcher (threads of its task runner)
START_TIMEOUT = 60.0
HEARTBEAT_SECONDS = 30  # lets a Prefect automation spot a dispatcher whose host died
HEALTH_SECONDS = 2.0  # how long a healthy answer of the Prefect API counts


class DispatcherUnavailable(Unavailable, RuntimeError):
    """The dispatcher flow run could not be opened (Prefect unreachable): why."""


@dataclass
class Job:
    """One action to run: the Prefect task, its parameters and tags, and what the caller
    waits on (``convert`` turns the task run's final state into the caller's value)."""

    task: Any
    parameters: dict[str, Any]
    labels: list[str]
    convert: Callable[[Any, str], Any]
    done: Future[Any] = field(default_factory=Future)


_STOP = object()


class _Run:
    """One dispatcher flow run, on its own thread."""

    def __init__(self, api: str, number: int) -> None:
        self.api = api
        self.number = number
        self.jobs: queue.Queue[Any] = queue.Queue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.flow_run_id: str | None = None
        self.count = 0
        self.opened = time.monotonic()
        self.thread = threading.Thread(
            target=self._main, name=f"journeys-dispatcher-{number}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(START_TIMEOUT):
            raise DispatcherUnavailable(
                f"the dispatcher flow run did not start within {START_TIMEOUT:.0f} s"
            )
        if self.error is not None:
            raise DispatcherUnavailable(_describe(self.error))

    def due(self) -> bool:
        return self.count >= ROTATE_AFTER or time.monotonic() - self.opened >= ROTATE_SECONDS

    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def put(self, job: Job) -> None:
        self.count += 1
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(_STOP)

    def _main(self) -> None:
        from prefect import flow
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            temporary_settings,
        )
        from prefect.task_runners import ThreadPoolTaskRunner

        host, pid = socket.gethostname(), os.getpid()
        runner: Any = ThreadPoolTaskRunner(max_workers=MAX_PARALLEL)
        dispatcher = flow(
            name=FLOW_NAME,
            flow_run_name="action host {host} pid {pid} #{number}",
            description="The back-office actions run by one journeys action host: one task run each.",
            task_runner=runner,
            validate_parameters=False,
            persist_result=False,
            log_prints=False,
        )(self._loop)
        settings = {PREFECT_API_URL: self.api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}
        try:
            with temporary_settings(updates=settings):
                dispatcher(host=host, pid=pid, number=self.number)
        except BaseException as err:  # the flow run could not be created or ended badly
            self.error = err
        finally:
            self.ready.set()
            self._fail_waiting("the dispatcher flow run ended before this action was taken")

    def _loop(self, host: str, pid: int, number: int) -> None:
        """The dispatcher flow's body: submit each job as a task run until told to stop,
        then wait for those still running (the task runner cancels what is left at exit)."""
        from prefect import tags
        from prefect.runtime import flow_run

        self.flow_run_id = str(flow_run.id)
        self.ready.set()
        running: set[Future[Any]] = set()
        while (job := self.jobs.get()) is not _STOP:
            try:
                with tags(*job.labels):
                    future = job.task.submit(**job.parameters)
            except Exception as err:  # e.g. the parameters could not be resolved
                job.done.set_exception(err)
                continue
            running.add(future.wrapped_future)
            future.wrapped_future.add_done_callback(_settle(job, running, str(future.task_run_id)))
        wait_all(list(running))

    def _fail_waiting(self, why: str) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP and not job.done.done():
                job.done.set_exception(DispatcherUnavailable(why))


def _settle(job: Job, running: set[Future[Any]], run_id: str) -> Callable[[Future[Any]], None]:
    def settle(wrapped: Future[Any]) -> None:
        running.discard(wrapped)
        try:
            job.done.set_result(job.convert(wrapped.result(), run_id))
        except BaseException as err:
            job.done.set_exception(err)

    return settle


class Dispatcher:
    """Hands actions to the current dispatcher flow run, opening and rotating them."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._current: _Run | None = None
        self._rotating = False
        self._opened = 0
        self._closed = False
        self._healthy_at = -HEALTH_SECONDS
        _dispatchers.add(self)

    def submit(self, job: Job) -> Future[Any]:
        self._check_api()
        with self._lock:
            if self._closed:
                raise DispatcherUnavailable("the action host is stopping")
            run = self._current
            if run is None or not run.alive():
                run = self._current = self._open()  # the first action waits for it, once
            elif run.due() and not self._rotating:
                self._rotating = True
                threading.Thread(target=self._rotate, daemon=True).start()
            run.put(job)
        return job.done

    def warm(self) -> None:
        """Open the dispatcher flow run now, so the first action does not wait for it;
        DispatcherUnavailable if Prefect does not let it open."""
        self._check_api()
        with self._lock:
            if self._current is None and not self._closed:
                self._current = self._open()

    def _check_api(self) -> None:
        """A task run reports to Prefect through events, which no one waits for: so that an
        action is never run unseen while Prefect is down, its API must have answered in the
        last HEALTH_SECONDS (one cheap request, not one per action)."""
        import urllib.error
        import urllib.request

        if time.monotonic() - self._healthy_at < HEALTH_SECONDS:
            return
        try:
            with urllib.request.urlopen(f"{self.api}/health", timeout=5.0) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DispatcherUnavailable(
                f"the Prefect API does not answer ({_describe(err)})"
            ) from err
        self._healthy_at = time.monotonic()

    def _open(self) -> _Run:
        self._opened += 1
        run = _Run(self.api, self._opened)
        run.start()
        if self._opened == 1:
            threading.Thread(target=mark_crashed, args=(self.api,), daemon=True).start()
        return run

    def _rotate(self) -> None:
        try:
            with self._lock:
                number = self._opened = self._opened + 1
            fresh = _Run(self.api, number)
            fresh.start()  # outside the lock: actions go on in the old run meanwhile
        except DispatcherUnavailable:
            return  # the old run goes on; tried again at the next due action
        finally:
            self._rotating = False
        with self._lock:
            old, self._current = self._current, fresh
        if old is not None:
            old.stop()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking actions, let the running ones finish, complete the flow run."""
        run = self._stop()
        if run is not None:
            run.thread.join(timeout)

    def _stop(self) -> _Run | None:
        with self._lock:
            self._closed = True
            run, self._current = self._current, None
        if run is not None:
            run.stop()
        return run


_dispatchers: set[Dispatcher] = set()  # to close at exit, even when no one holds them


@atexit.register
def _close_all(timeout: float = 10.0) -> None:
    """At exit, every open dispatcher at once, for a bounded time (the Prefect server may be
    gone already; then the next host marks its flow run Crashed)."""
    runs = [run for d in list(_dispatchers) if (run := d._stop()) is not None]
    deadline = time.monotonic() + timeout
    for run in runs:
        run.thread.join(max(0.0, deadline - time.monotonic()))


# ------------------------------------------------------------------- crash recovery


def mark_crashed(api: str) -> list[str]:
    """Mark Crashed the dispatcher flow runs of this machine left Running by a process that
    is gone, with their unfinished task runs; the ids of the flow runs marked."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    unfinished = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED]
    marked = []
    with (
        contextlib.suppress(Exception),  # a clean-up: never in an action's way
        temporary_settings(updates={PREFECT_API_URL: api}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=unfinished))
            ),
        )
        for run in runs:
            params = run.parameters or {}
            if params.get("host") != socket.gethostname() or not _gone(params.get("pid")):
                continue
            why = (
                f"the action host (pid {params.get('pid')}) stopped while this run was open; "
                "its callers had no answer and run their actions again under the same "
                "idempotency key"
            )
            offset = 0
            while batch := client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                offset=offset,
                limit=200,
            ):
                offset += len(batch)
                for task_run in batch:  # those the dead host was running
                    if task_run.state is None or not task_run.state.is_final():
                        client.set_task_run_state(task_run.id, Crashed(message=why), force=True)
            client.set_flow_run_state(run.id, Crashed(message=why), force=True)
            marked.append(str(run.id))
    return marked


def _gone(pid: object) -> bool:
    from engine.adapters.execution.prefect_server import alive

    return isinstance(pid, int) and pid != os.getpid() and not alive(pid)


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
