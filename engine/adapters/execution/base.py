"""One base for the action executors, as Prefect's task runners have one: it owns the thread
pool, the background work still pending, ``run``/``run_after``/``drain`` and closing (once).
A concrete executor says only how one call runs (:meth:`BaseExecutor.call`), or, when
something else runs it (the Prefect dispatcher), how it is handed over (``submit``).

- ``run`` with ``wait: true`` makes the call in the caller's thread and returns its outcome.
- ``run`` with ``wait: false`` and ``run_after`` (post-contact) submit it and return at once
  with the pending future; ``drain`` waits for those (a command does before it exits).
- An executor with ``background = False`` (the in-process one) makes every call in the
  caller's thread: nothing is ever pending.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from engine.sessions.runtime import RunAction, RunAfter, Session
from engine.sessions.service import ActionOutcome

#: The node a post-contact action is reported under (it runs once the session has ended).
AFTER = "after"


class Call(NamedTuple):
    """One action to run, with what every executor needs to run and label it. (A named
    tuple: made for every action, at a fifth of a frozen dataclass's cost.)"""

    action: str
    key: str  # idempotency key: session, node, visit
    inputs: dict[str, Any]
    retries: int
    timeout: float | None = None  # none for post-contact actions
    session: str = ""
    motive: str | None = None
    node: str = ""

    @classmethod
    def of(cls, effect: RunAction, session: Session) -> Call:
        return cls(
            effect.action,
            effect.key,
            dict(effect.input),
            effect.retries,
            effect.timeout,
            session.id,
            session.motive,
            effect.node,
        )

    @classmethod
    def after(cls, effect: RunAfter, session: Session) -> Call:
        return cls(
            effect.action,
            effect.key,
            dict(effect.input),
            effect.retries,
            None,
            session.id,
            session.motive,
            AFTER,
        )


def done(outcome: ActionOutcome) -> Future[ActionOutcome]:
    """An outcome known at once, as a future (a call refused before it was handed over)."""
    future: Future[ActionOutcome] = Future()
    future.set_result(outcome)
    return future


class BaseExecutor(ABC):
    """The pool, the pending work, run/run_after/drain and close; subclasses make one call."""

    #: Calls not waited for go to the background (False: every call in the caller's thread).
    background = True
    #: Background calls at once, and the name of their threads.
    workers = 4
    thread_name = "journeys-action"
    #: How long ``drain`` waits for each pending call, in seconds.
    drain_timeout = 300.0

    def __init__(self) -> None:
        self.pending: list[Future[ActionOutcome]] = []  # wait: false and post-contact runs
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def call(self, call: Call) -> ActionOutcome:
        """Run one action and wait for its outcome."""

    def submit(self, call: Call) -> Future[ActionOutcome]:
        """Start one action without waiting: on the pool (made at the first one)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor is closed: it takes no more actions")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.thread_name)
            pool = self._pool
        return pool.submit(self.call, call)

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        call = Call.of(effect, session)
        if effect.wait or not self.background:
            return self.call(call)
        return self._pending(call)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        # Post-contact automation: in the background; its failure never changes the outcome.
        call = Call.after(effect, session)
        return self._pending(call) if self.background else self.call(call)

    def _pending(self, call: Call) -> ActionOutcome:
        future = self.submit(call)
        self.pending.append(future)
        return ActionOutcome(pending=future)

    def drain(self, timeout: float | None = None) -> list[ActionOutcome]:
        """Wait for the background runs (a command line waits before it exits)."""
        wait = self.drain_timeout if timeout is None else timeout
        outcomes = [f.result(timeout=wait) for f in self.pending]
        self.pending.clear()
        return outcomes

    def close(self) -> None:
        """Let the running calls finish and release what the executor holds; once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.release()

    def release(self) -> None:  # noqa: B027 (a hook: most executors hold nothing else)
        """What a subclass holds besides the pool (the Prefect dispatcher flow run)."""


def answered_outcome(data: Mapping[str, Any], run_id: Any) -> ActionOutcome:
    """The outcome another process answered as JSON (the action host, a Prefect worker)."""
    return ActionOutcome(
        result=data["result"],
        error=data["error"],
        code=data.get("code"),
        failure=data.get("failure"),
        attempts=int(data["attempts"]),
        run_id=run_id,
    )
