"""Sessions in a SQL database with SQLAlchemy 2: SQLite by default, PostgreSQL to scale out.

A step writes its session row, its events, visits and action runs in one transaction; the
row is updated only if its sequence number is the one the step started from, so of two
processes answering the same session at once exactly one is applied.

The store is split by concern: the tables (schema.py), the database, its tuning and
connections (database.py), the rows a step writes and their statements (rows.py),
the PostgreSQL one-statement step (postgres.py), the grant ledger (grants.py); this
module is the store's API (engine.sessions.service_ports.SessionStore). The names other modules import
from here stay importable from here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from engine import clock
from engine.adapters.sql import grants, postgres
from engine.adapters.sql.database import (
    SERVER_THREADS,
    SqlDatabase,
    StoreError,
    aware,
    default_url,
    make_engine,
    shown_url,
    sqlite_time,
    to_json,
)
from engine.adapters.sql.rows import (
    Statements,
    event_row,
    run_row,
    session_row,
    step_params,
    visit_rows,
)
from engine.adapters.sql.schema import (
    action_runs,
    authority_grants,
    definitions,
    events,
    metadata,
    sessions,
    visits,
)
from engine.clock import to_ms
from engine.definitions.library import Bundle
from engine.errors import Conflict, UnknownSession
from engine.sessions import records
from engine.sessions.rows import ActionRun, Grant, RecordedRun, WaitingSession
from engine.sessions.runtime import Reserve, Session
from engine.sessions.service import Records, Runs

__all__ = [
    "SERVER_THREADS",
    "SqlStore",
    "StoreError",
    "action_runs",
    "authority_grants",
    "default_url",
    "definitions",
    "events",
    "make_engine",
    "metadata",
    "sessions",
    "shown_url",
    "visits",
]


class _Moved(Exception):
    """The session row was not at the expected step: someone else answered first."""


class SqlStore(SqlDatabase):
    """The session store on a SQL database (see the module's docstring)."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        super().__init__(url, upgrade=upgrade)
        self._bundles: dict[str, Bundle] = {}
        self._statements = Statements(self.engine.dialect)

    # -- definitions

    def save_bundle(self, bundle: Bundle) -> None:
        if bundle.hash in self._bundles:
            return
        with self.engine.connect() as conn:
            found = conn.execute(
                select(definitions.c.hash).where(definitions.c.hash == bundle.hash)
            ).first()
        if found is None and self._in_batch():
            # Through the batch's transaction: on SQLite another connection would wait for it.
            now = clock.now()
            row = {
                "hash": bundle.hash,
                "journey": bundle.journey,
                "sources": to_json(dict(bundle.sources)),
                "created_at": sqlite_time(now) if self._sqlite else now,
            }
            with self._raw() as cursor:
                cursor.execute(*self._statements.row("insert_definition", row))
        elif found is None:
            # Another process may store the same bundle at the same moment: same content, kept
            # once (ON CONFLICT DO NOTHING: PostgreSQL's log gets no error line per server).
            statement = (pg_insert if not self._sqlite else sqlite_insert)(definitions).values(
                hash=bundle.hash,
                journey=bundle.journey,
                sources=dict(bundle.sources),
                created_at=clock.now(),
            )
            with self._tx() as conn:
                conn.execute(statement.on_conflict_do_nothing(index_elements=["hash"]))
        self._bundles[bundle.hash] = bundle

    def load_bundle(self, digest: str) -> Bundle:
        if digest not in self._bundles:
            with self.engine.connect() as conn:
                row = conn.execute(select(definitions).where(definitions.c.hash == digest)).first()
            if row is None:
                raise StoreError(
                    f"the definition {digest!r} of a session is missing from the database"
                )
            self._bundles[digest] = Bundle(row.hash, row.journey, dict(row.sources))
        return self._bundles[digest]

    # -- sessions: the hot path (create, append, load) runs the SQL that SQLAlchemy compiled
    # for this database once (sql_rows.Statements), on this thread's DBAPI connection:
    # SQLAlchemy's per-execution work cost 0.1 ms a statement, more than SQLite's own work.

    def create(self, session: Session, records: Records, runs: Runs = ()) -> None:
        now = clock.now()  # one time for all the rows of the step
        now_ms, at = to_ms(now), self._stamp(now)
        row = {"id": session.id, "created_at": at, **session_row(session, now_ms, at)}
        row["visited_ms"] = now_ms
        if not self._sqlite and not self._in_batch():
            self._create_at_once(session, row, records, runs, now_ms, at)
            return
        statements = self._statements
        try:
            with self._raw() as cursor:  # one transaction: all of it or nothing
                cursor.execute(*statements.row("insert_session", row))
                self._insert_events(cursor, session, records, at)
                self._insert_runs(cursor, runs, at)
                self._insert_visits(cursor, visit_rows(session, 0, now_ms, None, now_ms))
        except self._operational_error as err:  # SQLite locked too long, the disk full...
            raise self._unavailable(err, "the session was not started: try again") from None

    def _create_at_once(
        self,
        session: Session,
        row: Mapping[str, Any],
        records: Records,
        runs: Runs,
        now_ms: int,
        at: Any,
    ) -> None:
        """PostgreSQL: the start in one statement (postgres.py), once more on a new
        connection if the connection was lost since the last step."""
        try:
            postgres.create_at_once(self, session, row, records, runs, now_ms, at)
        except self._operational_error as err:
            if not self._lost(self._connection_or_none()):
                raise self._unavailable(err, "the session was not started: try again") from None
            # Should the first attempt have been saved after all, its id is taken: then it was.
            try:
                postgres.create_at_once(self, session, row, records, runs, now_ms, at)
            except self._integrity_error:
                return
            except self._operational_error as again:
                raise self._unavailable(again, "the session was not started: try again") from None

    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        """Save a step: the session moved from ``expected_seq``; ``visited_from`` is the length
        its path had before (the nodes after it are recorded as visits)."""
        now = clock.now()  # one time for all the rows of the step
        now_ms, at = to_ms(now), self._stamp(now)
        params = step_params(session, now_ms, at, expected_seq, visited_from)
        try:
            if not self._sqlite and not self._in_batch():
                done = postgres.append_at_once(
                    self, session, records, params, runs, visited_from, now_ms, at
                )
                if not done:
                    raise _Moved()
                return
            with self._raw() as cursor:
                self._step(cursor, session, records, params, runs, visited_from, now_ms, at)
        except _Moved:
            with self.engine.connect() as conn:
                raise self._conflict(conn, session.id, expected_seq) from None
        except self._operational_error as err:
            raise self._unavailable(
                err,
                "the answer may not have been saved: read the session again, and answer again "
                "if it still waits at the same step",
            ) from None
        except self._integrity_error:
            raise Conflict(
                f"session {session.id!r} was changed by someone else at the same moment; reload it"
            ) from None

    def _step(
        self,
        cursor: Any,
        session: Session,
        records: Records,
        params: Mapping[str, Any],
        runs: Runs,
        visited_from: int | None,
        now_ms: int,
        at: Any,
    ) -> None:
        """A step's statements, one after the other, in the caller's transaction."""
        statements = self._statements
        if visited_from is not None:  # when it reached the node it waited at
            cursor.execute(*statements.args("visited", params))
            last = cursor.fetchone()
        cursor.execute(*statements.args("update", params))
        found = cursor.fetchone()  # RETURNING started_ms: none if someone moved first
        if found is None:
            raise _Moved()
        if visited_from is not None:
            started = found[0] if found[0] is not None else now_ms
            last_ms = last[0] if last else None
            self._insert_visits(cursor, visit_rows(session, visited_from, now_ms, last_ms, started))
        self._insert_events(cursor, session, records, at)
        self._insert_runs(cursor, runs, at)

    def _insert_events(self, cursor: Any, session: Session, records: Records, at: Any) -> None:
        for seq, record in records:
            cursor.execute(
                *self._statements.row("insert_event", event_row(session, seq, record, at))
            )

    def _insert_runs(self, cursor: Any, runs: Runs, at: Any) -> None:
        for run in runs:
            cursor.execute(*self._statements.row("insert_run", run_row(run, at)))

    def _insert_visits(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._sqlite:
            cursor.executemany(*self._statements.rows("insert_visit", rows))
            return
        # PostgreSQL: one multi-row INSERT, one round trip (psycopg's executemany pipelines,
        # which costs more than it saves for a few rows).
        names = list(rows[0])
        values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(rows))
        cursor.execute(
            f"INSERT INTO visits ({', '.join(names)}) VALUES {values}",
            [r[c] for r in rows for c in names],
        )

    def _conflict(self, conn: Connection, session_id: str, expected: int) -> Exception:
        row = conn.execute(select(sessions.c.seq).where(sessions.c.id == session_id)).first()
        if row is None:
            return UnknownSession(f"no session {session_id!r}")
        return Conflict(
            f"session {session_id!r} moved on to step {row.seq} while this answer was for step "
            f"{expected}; reload it and answer the step it is at"
        )

    def load(self, session_id: str) -> Session:
        try:
            row = self._load_row(session_id)
        except self._operational_error as err:
            if not self._lost(self._connection_or_none()):
                raise self._unavailable(err, "nothing was changed: try again") from None
            try:  # the connection was lost since the last step: once more on a new one
                row = self._load_row(session_id)
            except self._operational_error as again:
                raise self._unavailable(again, "nothing was changed: try again") from None
        if row is None:
            raise UnknownSession(f"no session {session_id!r}")
        state = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
        return Session.from_dict(state, copy=False)

    def _load_row(self, session_id: str) -> Any:
        cursor = self._connection().cursor()
        try:
            cursor.execute(*self._statements.args("load", {"w_id": session_id}))
            return cursor.fetchone()
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def record_run(self, run: Mapping[str, Any]) -> None:
        """An action run, once it is over (a repeated key updates the same run)."""
        values = {**run, "at": clock.now()}
        with self._tx() as conn:
            done = conn.execute(
                update(action_runs).where(action_runs.c.key == run["key"]).values(**values)
            )
            if done.rowcount == 0:
                with contextlib.suppress(IntegrityError):
                    conn.execute(insert(action_runs).values(**values))

    def reserve(self, request: Reserve) -> dict[str, float]:
        """The grant ledger (engine/adapters/sql/grants.py): the customer's totals, read and
        added to atomically."""
        return grants.reserve(self, request)

    def release(self, key: str) -> None:
        grants.release(self, key)

    def events(self, session_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.data)
                .where(events.c.session_id == session_id)
                .order_by(events.c.seq)
            ).all()
        return [records.event_record(r.data) for r in rows]

    def contact_sessions(self, contact_id: str) -> list[Session]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sessions.c.state)
                .where(sessions.c.contact_id == contact_id)
                .order_by(sessions.c.created_at.desc())
            ).all()
        return [Session.from_dict(r.state) for r in rows]

    def open_sessions(self, customer_id: str, journey: str) -> list[Session]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sessions.c.state)
                .where(
                    sessions.c.customer_id == customer_id,
                    sessions.c.journey == journey,
                    sessions.c.status.not_in(("ended", "survey")),
                )
                .order_by(sessions.c.updated_at.desc())
            ).all()
        return [Session.from_dict(r.state) for r in rows]

    def due(self, now_ms: int, limit: int) -> list[str]:
        """The sessions due to go on by themselves (an incident's retry), the most overdue
        first (the partial index on ``due_ms``: only such rows are read)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sessions.c.id)
                .where(sessions.c.due_ms.is_not(None), sessions.c.due_ms <= now_ms)
                .order_by(sessions.c.due_ms)
                .limit(limit)
            ).all()
        return [r.id for r in rows]

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[WaitingSession]:
        """The sessions of ``channel`` waiting at one of ``nodes``, the longest waiting first
        (the row's columns only: no state is read)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    sessions.c.id,
                    sessions.c.journey,
                    sessions.c.definition,
                    sessions.c.node,
                    sessions.c.contact_id,
                    sessions.c.customer_id,
                    sessions.c.updated_at,
                )
                .where(
                    # Written out (not bound) so the partial index of the queue applies.
                    sessions.c.status == literal("waiting", literal_execute=True),
                    sessions.c.channel == literal(channel, literal_execute=True),
                    sessions.c.node.in_(list(nodes)),
                )
                .order_by(sessions.c.updated_at)
                .limit(limit)
            ).all()
        return [
            WaitingSession.of({**r._mapping, "waiting_since": aware(r.updated_at).isoformat()})
            for r in rows
        ]

    def granted(self, customer_id: str) -> list[Grant]:
        """The grant ledger's rows of one customer, the oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT key, action, param, amount, before, role, session_id, node, "
                    "granted_ms, released_ms FROM authority_grants WHERE customer_id = :c ORDER BY id"
                ),
                {"c": customer_id},
            ).all()
        return [Grant.of(r._mapping) for r in rows]

    def runs(self, session_id: str) -> list[ActionRun]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(action_runs)
                .where(action_runs.c.session_id == session_id)
                .order_by(action_runs.c.id)
            ).all()
        return [ActionRun.of(r._mapping) for r in rows]

    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[RecordedRun]:
        """The background runs (``wait: false``, ``after``) whose last run failed, the newest
        first, of one session or all (each with its ``id``, to run it again)."""
        query = select(action_runs).where(
            action_runs.c.status == "failed", action_runs.c.mode.in_(("background", "after"))
        )
        if session_id is not None:
            query = query.where(action_runs.c.session_id == session_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(action_runs.c.id.desc()).limit(limit)).all()
        return [_run(r) for r in rows]

    def run(self, run_id: int) -> RecordedRun | None:
        """One action run by its id (None if there is none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(action_runs).where(action_runs.c.id == run_id)).first()
        return _run(row) if row is not None else None

    def session_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [
                r.id
                for r in conn.execute(select(sessions.c.id).order_by(sessions.c.created_at)).all()
            ]

    def header(self, session_id: str) -> dict[str, Any]:
        """The session's first event: what replaying it starts from."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(events.c.data)
                .where(events.c.session_id == session_id)
                .order_by(events.c.seq)
                .limit(1)
            ).first()
        if row is None:
            raise UnknownSession(f"no session {session_id!r}")
        return records.event_record(row.data)


def _run(row: Any) -> RecordedRun:
    at = row.at
    return RecordedRun.of({**row._mapping, "at": aware(at).isoformat() if at else None})
