"""What the service needs from the outside: a session store (with its grant ledger) and an
action executor, and what an action run came to (:class:`ActionOutcome`). Adapters implement
these: the SQL store, the memory store, the Prefect and local executors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from engine.definitions.library import Bundle
from engine.sessions.events import Reserve, RunAction, RunAfter
from engine.sessions.rows import ActionRun, RecordedRun, WaitingSession
from engine.sessions.session import Session

#: The events of one call, each with the session's sequence number after it.
Records = Sequence[tuple[int, Mapping[str, Any]]]
#: The action runs of one call (session, node, action, key, mode, status, attempts, run id...).
Runs = Sequence[Mapping[str, Any]]


class GrantLedger(Protocol):
    """What each customer was granted, per action and parameter, and when: the totals that
    ``per_customer`` limits bound."""

    def reserve(self, request: Reserve) -> dict[str, float]:
        """Atomically, against every other session of any process: the customer's totals
        (param -> sum granted over each bounded claim's period, counted back from now), and,
        when ``authority.customer_breach`` finds them within every limit, the claims recorded
        as granted now. A request whose key was recorded already returns the totals it was
        granted on, and records nothing more (a step done again after a crash)."""

    def release(self, key: str) -> None:
        """The back office refused the action of the reservation ``key`` (a business error):
        its amounts no longer count in the customer's totals (they stay on record)."""


class SessionStore(GrantLedger, Protocol):
    def save_bundle(self, bundle: Bundle) -> None: ...
    def load_bundle(self, digest: str) -> Bundle: ...
    def create(self, session: Session, records: Records, runs: Runs = ()) -> None: ...
    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        """Save the session and its new event at once; Conflict if its seq moved on.
        ``visited_from``: the length of its path before the step (the rest was visited now)."""

    def load(self, session_id: str) -> Session: ...
    def events(self, session_id: str) -> list[dict[str, Any]]: ...
    def open_sessions(self, customer_id: str, journey: str) -> list[Session]: ...
    def contact_sessions(self, contact_id: str) -> list[Session]:
        """The sessions of a contact, the newest first."""

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[WaitingSession]:
        """The sessions of ``channel`` waiting at one of ``nodes``, the longest waiting first:
        ``id, journey, definition, node, contact_id, customer_id, waiting_since`` (ISO text)."""

    def due(self, now_ms: int, limit: int) -> list[str]:
        """The ids of the sessions due to go on by themselves (an incident's next retry)."""

    def record_run(self, run: Mapping[str, Any]) -> None: ...
    def runs(self, session_id: str) -> list[ActionRun]: ...
    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[RecordedRun]:
        """The background runs whose last run failed, the newest first, each with its ``id``
        and ``at`` (ISO text)."""

    def run(self, run_id: int) -> RecordedRun | None:
        """One action run by its id, with ``id`` and ``at``."""


@dataclass(frozen=True)
class ActionOutcome:
    """What an action run came to: a result, a business error (``error`` with its ``code``:
    the back office's answer), or a technical ``failure`` (down, timed out, crashed)."""

    result: Mapping[str, Any] | None = None
    error: str | None = None
    code: str | None = None
    failure: str | None = None
    attempts: int = 1
    run_id: str | None = None
    #: A run still going on in the background (wait: false, post-contact): it resolves to
    #: the final ActionOutcome.
    pending: Future[ActionOutcome] | None = None


class ActionExecutor(Protocol):
    def run(self, effect: RunAction, session: Session) -> ActionOutcome: ...
    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome: ...
    def drain(self) -> list[ActionOutcome]:
        """Wait for the runs still going on in the background; their final outcomes."""
