"""The back office as a server keeps it: started in the background, said when not ready.

`journeys serve` starts the back-office processes (the action host and, through it, the
embedded Prefect server) at its own start, without waiting: the API answers at once.
``GET /v1/health`` tells "starting", "ready" or "down". An action asked for while the back
office is starting is not waited for: the request is answered at once with
:class:`BackofficeStarting` (HTTP 503 with ``Retry-After``), nothing of it saved, and the
client sends it again (the console does by itself). One that finds it down starts it again.
When `journeys serve` stops, it stops what it started (``stop_started``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import NotReady
from engine.sessions.runtime import RunAction, RunAfter, Session
from engine.sessions.service import ActionExecutor, ActionOutcome

STATES = ("ready", "starting", "down")
RETRY_AFTER = 3  # seconds: the console's next try
CACHE_SECONDS = 1.0  # "ready" is believed this long without asking the host again
FAILED_PAUSE = 30.0  # after a start that failed, actions fail (incidents) this long


class BackofficeStarting(NotReady):
    """The back office is starting: the request was not carried out; send it again."""

    def __init__(self, retry_after: int = RETRY_AFTER) -> None:
        self.retry_after = retry_after
        self.message = (
            "the back office is starting (the action host and the Prefect server); nothing "
            f"was done or saved for this request: send it again in {retry_after} s"
        )
        super().__init__(self.message)


def _host_state(base: str | None) -> str:
    from engine.adapters.execution.action_host import host_status
    from engine.adapters.execution.prefect_server import home
    from engine.adapters.processes import alive, read_pid

    record, health = host_status(base)
    if health is not None:
        return str(health["state"])
    # A host launched that does not answer yet (it imports), or a server process about to
    # launch it (its marker): both starting, whichever process of the server asks.
    if record and alive(int(record.get("pid") or 0)):
        return "starting"
    return "starting" if alive(read_pid(home(base) / STARTING)) else "down"


STARTING = "starting.pid"  # in <home>/prefect while a server starts the back office


class Keeper:
    """The back-office processes of one executor kind: ``prefect`` needs the action host,
    ``workers`` too unless ``PREFECT_API_URL`` is set (for the embedded server it keeps)."""

    def __init__(
        self,
        kind: str,
        base: str | None = None,
        probe: Callable[[], str] | None = None,
        launch: Callable[[], object] | None = None,
        believe: float = CACHE_SECONDS,
    ) -> None:
        self.kind = kind
        self.believe = believe
        self.base = base
        self._probe = probe or (lambda: _host_state(base))
        self._launch = launch or self._ensure
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._known: tuple[float, str] = (0.0, "down")
        self._failed: tuple[float, str] | None = None
        self._closed = False

    @property
    def needed(self) -> bool:
        """``local`` runs actions in-process; ``workers`` against a Prefect API of its own
        needs nothing started either."""
        if self.kind == "workers":
            return not os.environ.get("PREFECT_API_URL")
        return self.kind != "local"

    def _ensure(self) -> object:
        from engine.adapters.execution.action_host import ensure_host, touch

        record = ensure_host(self.base, progress=False, wait=True)
        touch(record, os.getpid())  # kept while this server lives, used or not
        return record

    def start(self, after: Callable[[], bool] | None = None) -> None:
        """Start the back office in the background, unless it is starting already; once
        ``after()`` is true, if given (e.g. once the API answers: on two cores, the Prefect
        server's start would otherwise slow the API's own)."""
        if not self.needed:
            return
        with self._lock:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            if self._launch == self._ensure:
                self._marker().parent.mkdir(parents=True, exist_ok=True)
                self._marker().write_text(str(os.getpid()), encoding="utf-8")
            self._thread = threading.Thread(
                target=self._start_now, args=(after,), name="journeys-backoffice-start", daemon=True
            )
            self._thread.start()

    def _start_now(self, after: Callable[[], bool] | None = None) -> None:
        deadline = time.monotonic() + 30
        while after is not None and not after() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            if self._closed:
                return
            self._launch()
            self._failed = None
        except Exception as err:  # said by state() as "down", and by the failing actions
            self._failed = (time.monotonic(), str(err))
        finally:
            self._marker().unlink(missing_ok=True)

    def _marker(self) -> Path:
        from engine.adapters.execution.prefect_server import home

        return home(self.base) / STARTING

    def starting(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def state(self) -> str:
        """ready, starting or down, asked of the host (and believed a second when ready)."""
        if not self.needed:
            return "ready"
        seen, state = self._known
        if state == "ready" and time.monotonic() - seen < self.believe:
            return state
        state = self._probe()
        if state == "down" and self.starting():
            state = "starting"
        self._known = (time.monotonic(), state)
        return state

    def require(self) -> None:
        """Return if the back office is ready; else start it if needed and raise
        BackofficeStarting. After a failed start, the action goes on and fails (an
        incident, retried by itself) until the next start is tried."""
        state = self.state()
        if state == "ready":
            return
        if state == "down":
            if self._failed and time.monotonic() - self._failed[0] < FAILED_PAUSE:
                return
            self.start()
        raise BackofficeStarting()

    def stop_started(self) -> bool:
        """Stop the back office if this server started it (its record names this process);
        return once it is gone. A back office it reused stops after its idle time."""
        from engine.adapters.execution.action_host import host_status, stop_host
        from engine.adapters.execution.prefect_server import home
        from engine.adapters.processes import locked

        if not self.needed:
            return False
        with self._lock:
            self._closed = True
        with locked(home(self.base) / "host.lock"):  # a launch under way finishes first
            record, _health = host_status(self.base)
        if record and record.get("owner") == os.getpid():
            return stop_host(self.base)
        return False


class GatedExecutor:
    """An executor that runs an action only once the back office is ready (else raises
    BackofficeStarting before anything is dispatched)."""

    def __init__(self, inner: ActionExecutor, keeper: Keeper) -> None:
        self.inner = inner
        self.keeper = keeper

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        self.keeper.require()
        return self.inner.run(effect, session)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        self.keeper.require()
        return self.inner.run_after(effect, session)

    def drain(self) -> list[ActionOutcome]:
        return self.inner.drain()
