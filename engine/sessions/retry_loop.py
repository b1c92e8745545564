"""The retry loop: incidents retried by themselves while the server runs.

A session held by an incident (a back-office action that failed technically after its
retries) carries the time of its next automatic retry, 30 s after the failure and twice as
long each time after that (``engine.sessions.runtime.retry_time``). A server runs one loop: every few
seconds it asks the store which incidents are due and runs their action again, so a session
goes on by itself once the back office is back, and nobody has to watch it.

A plain thread, not a task of the server's event loop: a retry runs a back-office action,
which may take as long as the action's timeout, and must never hold up the requests. Several
server processes may each run a loop: a retry another process did first is skipped
(``Sessions.retry_due``), and the action's idempotency key keeps the back office from acting
twice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

from engine import clock
from engine.errors import NotReady
from engine.sessions.runtime import INCIDENT
from engine.sessions.service import Sessions

log = logging.getLogger("journeys.retry")

#: Seconds between two looks at the incidents due (``JOURNEYS_RETRY_INTERVAL``; 0: no loop).
DEFAULT_INTERVAL = 5.0


def interval_from_environment() -> float:
    """``JOURNEYS_RETRY_INTERVAL`` in seconds (default 5; 0 turns the loop off)."""
    text = os.environ.get("JOURNEYS_RETRY_INTERVAL", "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"JOURNEYS_RETRY_INTERVAL={text!r} is not a number of seconds; write for example 5 "
            "(or 0 to turn automatic retries off)"
        ) from None
    if value < 0 or value != value:  # NaN is not a duration either
        raise ValueError(f"JOURNEYS_RETRY_INTERVAL={text!r} must be 0 or more seconds")
    return value


class RetryLoop:
    """Calls ``sessions.retry_due()`` every ``interval`` seconds on a thread of its own, until
    :meth:`stop`. ``now``: the clock the loop reads (the real one; a test may move it on)."""

    def __init__(
        self,
        sessions: Sessions,
        interval: float = DEFAULT_INTERVAL,
        batch: int = 20,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.interval = interval
        self.batch = batch
        self.now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetryLoop:
        if self.interval > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="journeys-retry", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the retry under way, if any (its action is never cut off midway)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.now is None:
                self.once()
            else:
                with clock.using(self.now):
                    self.once()

    def once(self) -> int:
        """One look: retry what is due (a batch at most); how many were retried."""
        try:
            retried = self.sessions.retry_due(self.batch)
        except NotReady:  # the back office is starting: its incidents wait for the next look
            log.info("the retry loop waits for the back office to be ready")
            return 0
        except Exception:  # the session database down: the next look tries again
            log.warning("the retry loop could not read the incidents due", exc_info=True)
            return 0
        for session in retried:
            if session.status == INCIDENT and session.incident:
                log.warning(
                    "session %s: %s still failing (%s, try %s); next retry at %s",
                    session.id,
                    session.incident.get("action"),
                    session.incident.get("message"),
                    session.incident.get("tries"),
                    session.incident.get("retry_at"),
                )
            else:
                log.info("session %s: the incident is over; the session went on", session.id)
        return len(retried)
