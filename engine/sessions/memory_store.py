"""Sessions in a dict: the :class:`~engine.sessions.service_ports.SessionStore` of scenario tests, the
in-memory benchmark and tests (a server uses the SQL store)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from engine import clock
from engine.definitions.library import Bundle
from engine.errors import Conflict, UnknownSession
from engine.sessions.authority import customer_breach
from engine.sessions.events import Reserve
from engine.sessions.rows import ActionRun, RecordedRun, WaitingSession
from engine.sessions.service_ports import Records, Runs
from engine.sessions.session import ENDED, INCIDENT, SURVEY, WAITING, Session


class MemoryStore:
    """Sessions in a dict: for scenario tests, the in-memory benchmark and tests."""

    def __init__(self) -> None:
        self.bundles: dict[str, Bundle] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.action_runs: list[dict[str, Any]] = []
        #: The grant ledger: {key, customer_id, action, param, amount, before, role,
        #: session_id, node, at}.
        self._granted: list[dict[str, Any]] = []
        self._ledger_lock = threading.Lock()
        self._run_ids = 0

    def _stamped(self, runs: Runs) -> list[dict[str, Any]]:
        stamped = []
        for run in runs:
            self._run_ids += 1
            stamped.append({**run, "id": self._run_ids, "at": clock.now().isoformat()})
        return stamped

    def save_bundle(self, bundle: Bundle) -> None:
        self.bundles.setdefault(bundle.hash, bundle)

    def granted(self, customer_id: str) -> list[dict[str, Any]]:
        """The grant ledger's rows of one customer, the oldest first."""
        return [dict(r) for r in self._granted if r["customer_id"] == customer_id]

    def release(self, key: str) -> None:
        with self._ledger_lock:
            for row in self._granted:
                if row["key"] == key and row["released"] is None:
                    row["released"] = clock.now()

    def reserve(self, request: Reserve) -> dict[str, float]:
        with self._ledger_lock:  # threads of one process: the one place totals are read
            done = [r for r in self._granted if r["key"] == request.key]
            if done:
                return {r["param"]: r["before"] for r in done if r["before"] is not None}
            now = clock.now()
            totals = {
                c.param: round(
                    sum(
                        r["amount"]
                        for r in self._granted
                        if (r["customer_id"], r["action"], r["param"])
                        == (request.customer_id, request.action, c.param)
                        and r["at"] > now - timedelta(seconds=c.over_s or 0)
                        and r["released"] is None
                    ),
                    9,
                )
                for c in request.claims
                if c.max is not None
            }
            if customer_breach(request.claims, totals) is None:
                self._granted += [
                    {
                        "key": request.key,
                        "customer_id": request.customer_id,
                        "action": request.action,
                        "param": c.param,
                        "amount": c.amount,
                        "before": totals.get(c.param),
                        "role": request.role,
                        "session_id": request.session_id,
                        "node": request.node,
                        "at": now,
                        "released": None,
                    }
                    for c in request.claims
                ]
            return totals

    def load_bundle(self, digest: str) -> Bundle:
        return self.bundles[digest]

    def create(self, session: Session, records: Records, runs: Runs = ()) -> None:
        self.action_runs += self._stamped(runs)
        self.sessions[session.id] = session.to_dict()
        self.logs[session.id] = [dict(r) for _seq, r in records]

    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        current = self.sessions.get(session.id)
        if current is None:
            raise UnknownSession(f"no session {session.id!r}")
        if current["seq"] != expected_seq:
            raise Conflict(
                f"session {session.id!r} moved on (step {current['seq']}, not {expected_seq}); reload it"
            )
        self.sessions[session.id] = session.to_dict()
        self.logs[session.id] += [dict(r) for _seq, r in records]
        self.action_runs += self._stamped(runs)

    def record_run(self, run: Mapping[str, Any]) -> None:
        """A repeated key updates the same run (its id stays), as in the SQL store."""
        for kept in self.action_runs:
            if kept["key"] == run["key"]:
                kept.update({**run, "id": kept["id"], "at": clock.now().isoformat()})
                return
        self.action_runs += self._stamped([run])

    def runs(self, session_id: str) -> list[ActionRun]:
        return [ActionRun.of(r) for r in self.action_runs if r["session_id"] == session_id]

    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[RecordedRun]:
        found = [
            RecordedRun.of(r)
            for r in reversed(self.action_runs)
            if r["status"] == "failed"
            and r["mode"] in ("background", "after")
            and session_id in (None, r["session_id"])
        ]
        return found[:limit]

    def run(self, run_id: int) -> RecordedRun | None:
        return next((RecordedRun.of(r) for r in self.action_runs if r["id"] == run_id), None)

    def load(self, session_id: str) -> Session:
        if session_id not in self.sessions:
            raise UnknownSession(f"no session {session_id!r}")
        return Session.from_dict(self.sessions[session_id])

    def events(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.logs.get(session_id, []))

    def contact_sessions(self, contact_id: str) -> list[Session]:
        found = [
            Session.from_dict(s) for s in self.sessions.values() if s["contact_id"] == contact_id
        ]
        return list(reversed(found))

    def open_sessions(self, customer_id: str, journey: str) -> list[Session]:
        return [
            Session.from_dict(s)
            for s in self.sessions.values()
            if s["customer_id"] == customer_id
            and s["journey"] == journey
            and s["status"] not in (ENDED, SURVEY)
        ]

    def due(self, now_ms: int, limit: int) -> list[str]:
        due = []
        for session_id in self.sessions:
            s = self.load(session_id)
            at = (s.incident or {}).get("retry_at") if s.status == INCIDENT else None
            if at and clock.to_ms(datetime.fromisoformat(at)) <= now_ms:
                due.append((at, session_id))
        return [session_id for _at, session_id in sorted(due)[:limit]]

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[WaitingSession]:
        found = [
            WaitingSession(
                id=s["id"],
                journey=s["journey"],
                definition=s["definition"],
                node=s["node"],
                contact_id=s["contact_id"],
                customer_id=s["customer_id"],
                waiting_since=self.logs[s["id"]][-1].get("at"),  # the step that got there
            )
            for s in self.sessions.values()
            if s["status"] == WAITING and s["channel"] == channel and s["node"] in nodes
        ]
        return sorted(found, key=lambda row: row.waiting_since or "")[:limit]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sessions)
