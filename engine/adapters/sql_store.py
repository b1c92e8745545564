"""Sessions in a SQL database with SQLAlchemy 2: SQLite by default, PostgreSQL to scale out.

Three tables (and the grant ledger of engine/adapters/sql_grants.py): ``definitions`` (each pinned bundle of journey sources, stored once),
``sessions`` (one small row per session: its current state) and ``events`` (append-only: who,
channel, node, answer, when). A step writes its session row and its event in one transaction;
the row is updated only if its sequence number is the one the step started from, so of two
processes answering the same session at once exactly one is applied.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from engine import clock
from engine.adapters import sql_grants
from engine.clock import to_ms
from engine.errors import (
    Conflict,
    StoreUnavailable,
    Unavailable,
    UnknownSession,
)
from engine.library import Bundle
from engine.runtime import INCIDENT, Reserve, Session
from engine.service import Records, Runs

_JSON = JSON().with_variant(JSONB(), "postgresql")
# Written at every step and only ever read back whole: PostgreSQL's json keeps the text as
# it is, where jsonb would take it apart at every write (migration 0004).
_JSON_TEXT = JSON()

metadata = MetaData()

definitions = Table(
    "definitions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("journey", String(200), nullable=False),
    Column("sources", _JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("journey", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("definition", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("node", String(400)),
    Column("outcome", String(20)),
    Column("seq", Integer, nullable=False),
    Column("customer_id", String(200), index=True),
    Column("contact_id", String(200), index=True),
    Column("channel", String(40)),
    Column("agent", String(200)),
    Column("motive", String(200)),
    Column("state", _JSON_TEXT, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # What reports group by (migration 0004): times in ms since 1970 (portable arithmetic),
    # the last node reached (where a session stopped), nodes visited, survey scores.
    Column("started_ms", BigInteger),
    Column("ended_ms", BigInteger),
    Column("last_node", String(400)),
    Column("steps", Integer),
    Column("ces", SmallInteger),
    Column("nps", SmallInteger),
    Column("visited_ms", BigInteger),  # when its last node was entered
    # When the session goes on by itself (an incident's next retry): the retry loop reads the
    # due rows through a partial index, so its cost does not grow with the sessions stored.
    Column("due_ms", BigInteger),
    Index("ix_sessions_started_ms", "started_ms"),
    Index(
        "ix_sessions_due",
        "due_ms",
        sqlite_where=text("due_ms IS NOT NULL"),
        postgresql_where=text("due_ms IS NOT NULL"),
    ),
    Index("ix_sessions_repeat", "customer_id", "motive", "started_ms"),
    # The agents' queue (self-care sessions waiting): a partial index holds those rows only,
    # so the steps of all other sessions never write to it.
    Index(
        "ix_sessions_selfcare_waiting",
        "updated_at",
        sqlite_where=text("status = 'waiting' AND channel = 'selfcare'"),
        postgresql_where=text("status = 'waiting' AND channel = 'selfcare'"),
    ),
)

# One row per node a session passed through, in order: funnels, drop-off and time per node
# come from here by grouping in the database (the session's path is in its state as well).
visits = Table(
    "visits",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("journey", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("motive", String(200)),
    Column("node", String(400), nullable=False),
    Column("from_node", String(400)),  # the node before it (none for the first)
    Column("first", SmallInteger, nullable=False),  # 1 the first time the session is here
    Column("spent_ms", BigInteger),  # time spent at from_node (unknown: none)
    Column("entered_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    # Funnels group by these: an index in their order, holding the columns they read, lets
    # SQLite walk it in order instead of sorting a million rows (created on SQLite only:
    # PostgreSQL hashes as fast without it; migration 0004).
    Index(
        "ix_visits_funnel",
        "journey",
        "from_node",
        "node",
        "started_ms",
        "motive",
        "first",
        "spent_ms",
    ),
    sqlite_with_rowid=False,  # stored in its key's order: one B-tree less to write per visit
)

events = Table(
    "events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("session_id", String(64), nullable=False),  # indexed by the unique constraint
    Column("seq", Integer, nullable=False),
    Column("type", String(20), nullable=False),
    Column("node", String(400)),
    Column("channel", String(40)),
    Column("actor", String(200)),
    Column("data", _JSON_TEXT, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("session_id", "seq", name="events_session_seq"),
)


action_runs = Table(
    "action_runs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("session_id", String(64), nullable=False, index=True),
    Column("node", String(400), nullable=False),
    Column("action", String(200), nullable=False),
    Column("key", String(500), nullable=False),
    Column("mode", String(20), nullable=False),  # wait, background, after
    Column("status", String(20), nullable=False),  # succeeded, failed
    Column("attempts", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("error", Text),
    Column("result", _JSON),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("key", name="action_runs_key"),
)

# The statements of the hot path, built once: building them per call (coercing each value,
# computing cache keys) cost more than the database work itself.
_ROW = (
    "journey",
    "version",
    "definition",
    "status",
    "node",
    "outcome",
    "seq",
    "customer_id",
    "contact_id",
    "channel",
    "agent",
    "motive",
    "state",
    "updated_at",
    "started_ms",
    "last_node",
    "steps",
    "ces",
    "nps",
    "due_ms",
)
# A step changes only these: the indexed columns (journey, customer, contact) stay as they
# were at the start, so SQLite need not rewrite their index entries at every step.
_STEP = (
    "status",
    "node",
    "outcome",
    "seq",
    "channel",
    "agent",
    "state",
    "updated_at",
    "last_node",
    "steps",
    "ces",
    "nps",
    "due_ms",
)
_EVENT = ("session_id", "seq", "type", "node", "channel", "actor", "data", "at")
_UPDATE_SESSION = (
    update(sessions)
    .where(sessions.c.id == bindparam("w_id"), sessions.c.seq == bindparam("w_seq"))
    .values(
        {
            **{c: bindparam(f"v_{c}") for c in _STEP},
            # The first time the session is seen finished (a later survey changes nothing).
            "ended_ms": func.coalesce(sessions.c.ended_ms, bindparam("v_ended_ms")),
            "visited_ms": func.coalesce(bindparam("v_visited_ms"), sessions.c.visited_ms),
        }
    )
    .returning(sessions.c.started_ms)
)
_INSERT_SESSION = insert(sessions).values(
    {c: bindparam(f"v_{c}") for c in ("id", "created_at", "ended_ms", "visited_ms", *_ROW)}
)
_VISIT = (
    "session_id",
    "idx",
    "journey",
    "version",
    "motive",
    "node",
    "from_node",
    "first",
    "spent_ms",
    "entered_ms",
    "started_ms",
)
_INSERT_VISIT = insert(visits).values({c: bindparam(f"v_{c}") for c in _VISIT})
_INSERT_EVENT = insert(events).values({c: bindparam(f"v_{c}") for c in _EVENT})
_INSERT_DEFINITION = insert(definitions).values(
    {c: bindparam(f"v_{c}") for c in ("hash", "journey", "sources", "created_at")}
)
_INSERT_RUN = insert(action_runs).values(
    {
        c: bindparam(f"v_{c}")
        for c in (
            "session_id",
            "node",
            "action",
            "key",
            "mode",
            "status",
            "attempts",
            "run_id",
            "error",
            "result",
            "at",
        )
    }
)
_LOAD_STATE = select(sessions.c.state).where(sessions.c.id == bindparam("w_id"))
_LOAD_VISITED = select(sessions.c.visited_ms).where(sessions.c.id == bindparam("w_id"))


#: How SQLAlchemy writes a DateTime in SQLite (naive UTC text); the raw path writes the same.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _params(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items()}


class _Moved(Exception):
    """The session row was not at the expected step: someone else answered first."""


class StoreError(Unavailable):
    """The session database cannot be used as it is: what, and what to do."""


# Threads a server runs steps on. More threads than this on two cores only wait for the GIL
# or, on SQLite, for the one writer; each holds a database connection.
SERVER_THREADS = 8


def default_url(home: str | None = None) -> str:
    """``sessions.db`` in the journeys home (absolute: see engine/adapters/home.py)."""
    from engine.adapters.home import sessions_url

    return sessions_url(home)


def make_engine(url: str) -> Engine:
    """An engine for the URL, with SQLite tuned for many small transactions (WAL)."""
    try:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        # Connections are pooled (kept open): opening a SQLite connection costs its PRAGMAs,
        # and closing the last one checkpoints the WAL, several milliseconds per step.
        engine = create_engine(
            url,
            connect_args={"timeout": 30} if url.startswith("sqlite") else {},
            json_serializer=_to_json,
            # Each thread keeps one connection for the hot path (see _connection): the pool
            # holds one per server thread (SERVER_THREADS) plus a few for the other reads.
            # Kept small: two servers on one PostgreSQL must stay under its max_connections.
            **(
                {"poolclass": NullPool}
                if url == "sqlite:///:memory:"
                else {
                    "pool_size": SERVER_THREADS + 4,
                    "max_overflow": 8,
                    # A connection taken from the pool is checked first (one round trip, off
                    # the hot path): after PostgreSQL restarts, the pool opens new ones.
                    "pool_pre_ping": not url.startswith("sqlite"),
                }
            ),
        )
    except (ArgumentError, NoSuchModuleError) as err:
        raise StoreError(
            f"the database URL {shown_url(url)!r} is not usable ({err}); write it like "
            "sqlite:///path/sessions.db or postgresql+psycopg://user@host/dbname"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(
        "PRAGMA synchronous=NORMAL"
    )  # WAL + NORMAL: durable at checkpoints, atomic always
    cursor.execute("PRAGMA busy_timeout=30000")
    # The step that fills the WAL copies it back into the database (a checkpoint, with an
    # fsync) while the other writers wait. Every 16 MB rather than SQLite's 4 MB: a step
    # writes to a dozen pages (sessions, events, visits and the funnel index), mostly the same
    # ones from step to step, so a checkpoint four times rarer copies far fewer than four
    # times the pages. Measured (bench/steps.py): p99 of a step 6 ms -> 0.7 ms.
    cursor.execute("PRAGMA wal_autocheckpoint=4000")
    cursor.close()


def shown_url(url: str) -> str:
    """The URL as shown to people: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _now() -> datetime:
    # engine.clock, not the wall clock: simulated history gets simulated record times too.
    return clock.now()


class SqlStore:
    """The session store on a SQL database (see the module's docstring)."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._bundles: dict[str, Bundle] = {}
        self._check_schema(upgrade)
        self._prepare()
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()
        # SQLite has one writer at a time: threads of this process take turns here rather than
        # in SQLite's busy handler, which sleeps in steps of up to 100 ms (seconds of p99).
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )

    def _check_schema(self, upgrade: bool) -> None:
        from engine.adapters.migrations import current_revision, head_revision, upgrade_to_head

        try:
            with self.engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
                revision = current_revision(conn)
        except OperationalError as err:
            raise StoreError(
                f"cannot open the session database {shown_url(self.url)!r}: {err.orig}"
            ) from None
        if not tables - {"alembic_version"} and upgrade:
            upgrade_to_head(self.engine)  # a new database: create the tables
            return
        if revision != head_revision():
            raise StoreError(
                f"the session database {shown_url(self.url)!r} is at schema revision {revision!r}, "
                f"this version of journeys needs {head_revision()!r}: run 'journeys db upgrade'"
            )

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

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
            values = {
                "hash": bundle.hash,
                "journey": bundle.journey,
                "sources": _to_json(dict(bundle.sources)),
                "created_at": _now().strftime(_SQLITE_TIME) if self._sqlite else _now(),
            }
            with self._raw() as cursor:
                cursor.execute(*self._args("insert_definition", _params(values)))
        elif found is None:
            # Another process may store the same bundle at the same moment: same content, kept
            # once (ON CONFLICT DO NOTHING: PostgreSQL's log gets no error line per server).
            statement = (pg_insert if not self._sqlite else sqlite_insert)(definitions).values(
                hash=bundle.hash,
                journey=bundle.journey,
                sources=dict(bundle.sources),
                created_at=_now(),
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

    # -- sessions

    def _row(self, session: Session, now_ms: int) -> dict[str, Any]:
        survey = session.survey
        return {
            "journey": session.journey,
            "version": session.version,
            "definition": session.definition,
            "status": session.status,
            "node": session.node,
            "outcome": session.outcome,
            "seq": session.seq,
            "customer_id": session.customer_id,
            "contact_id": session.contact_id,
            "channel": session.channel,
            "agent": session.agent,
            "motive": session.motive,
            "state": _to_json(session.to_dict(copy=False)),
            "updated_at": self._stamp(),
            "started_ms": now_ms,  # used when the row is created only
            "ended_ms": now_ms if session.finished else None,
            "last_node": session.path[-1] if session.path else None,
            "steps": len(session.path),
            "ces": survey.get("ces"),
            "nps": survey.get("nps"),
            "due_ms": _due_ms(session),
        }

    def _insert_visits(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._sqlite:
            sql, order = self._sql["insert_visit"]  # qmark: the parameters in order
            cursor.executemany(sql, [[r[n[2:]] for n in order or ()] for r in rows])
            return
        # PostgreSQL: one multi-row INSERT, one round trip (psycopg's executemany pipelines,
        # which costs more than it saves for a few rows).
        values = ", ".join(["(" + ", ".join(["%s"] * len(_VISIT)) + ")"] * len(rows))
        cursor.execute(
            f"INSERT INTO visits ({', '.join(_VISIT)}) VALUES {values}",
            [r[c] for r in rows for c in _VISIT],
        )

    def _event(self, session: Session, seq: int, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "session_id": session.id,
            "seq": seq,
            "type": record["type"],
            "node": record.get("node"),
            "channel": record.get("channel") or session.channel,
            "actor": record.get("actor"),
            "data": _to_json(record),
            "at": self._stamp(),
        }

    # The hot path (create, append, load) runs the SQL that SQLAlchemy compiled for this
    # database once, on a pooled DBAPI connection: SQLAlchemy's per-execution work (parameter
    # processing, result objects) cost 0.1 ms a statement, more than SQLite's own work.

    def _prepare(self) -> None:
        dialect = self.engine.dialect
        self._sql = {}
        for name, statement in (
            ("insert_session", _INSERT_SESSION),
            ("update", _UPDATE_SESSION),
            ("insert_event", _INSERT_EVENT),
            ("load", _LOAD_STATE),
            ("visited", _LOAD_VISITED),
            ("insert_run", _INSERT_RUN),
            ("insert_visit", _INSERT_VISIT),
            ("insert_definition", _INSERT_DEFINITION),
        ):
            compiled = statement.compile(dialect=dialect)
            self._sql[name] = (compiled.string, compiled.positiontup)
        self._sqlite = dialect.name == "sqlite"
        # PostgreSQL's casts of every column, for the one-statement step (see _append_at_once).
        self._casts = {
            table.name: {c.name: c.type.compile(dialect=dialect) for c in table.columns}
            for table in (events, visits, action_runs)
        }
        self._stamped: tuple[datetime | None, str] = (None, "")
        self._integrity_error = dialect.loaded_dbapi.IntegrityError
        self._operational_error = dialect.loaded_dbapi.OperationalError

    def _args(self, name: str, params: Mapping[str, Any]) -> tuple[str, Any]:
        sql, order = self._sql[name]
        return sql, [params[n] for n in order] if order else params

    def _stamp(self) -> Any:
        """Now, as the column takes it: SQLAlchemy's naive UTC text on SQLite, else the object.
        The text of the last time is kept: a simulated clock gives one time to a whole step."""
        now = clock.now()
        if not self._sqlite:
            return now
        last = self._stamped
        if last[0] != now:
            last = self._stamped = (now, now.strftime(_SQLITE_TIME))
        return last[1]

    def _connection(self) -> Any:
        """This thread's DBAPI connection, kept for its life: checking one out of the pool
        and back at every call cost more than the statements of a step."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._lost(conn):  # the server restarted, say: a new one
            self._forget(conn)
            conn = None
        if conn is None or self._local.pid != os.getpid():  # a forked child gets its own
            conn = self.engine.raw_connection()
            if not self._sqlite:
                # Reads need no transaction (one round trip, not BEGIN/SELECT/ROLLBACK);
                # writes open theirs in _raw.
                conn.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def _lost(self, conn: Any) -> bool:
        """Whether this thread's connection was lost (PostgreSQL restarted or dropped it)."""
        return conn is not None and not self._sqlite and bool(conn.driver_connection.closed)

    def _forget(self, conn: Any) -> None:
        self._local.conn = None
        with self._opened_lock:
            if conn in self._opened:
                self._opened.remove(conn)
        with contextlib.suppress(Exception):
            conn.invalidate()  # the pool makes a new one rather than reuse it

    def _unavailable(self, err: Exception, saved: str) -> StoreUnavailable:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return StoreUnavailable(
            f"the session database {shown_url(self.url)!r} cannot be used just now ({reason}); "
            f"{saved}"
        )

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        """A cursor on this thread's connection in one transaction: committed, or rolled back
        on error. (psycopg's pipeline mode was measured slower here: its Python side costs
        more than the round trips it saves on loopback.)"""
        conn = self._connection()
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None:
            with batch.write(conn) as cursor:
                yield cursor
            return
        if self._sqlite:
            with self._writer:
                try:
                    yield conn.cursor()
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            return
        pg = conn.driver_connection
        with pg.transaction():
            yield pg.cursor()

    @contextmanager
    def batch(self, size: int = 500) -> Iterator[None]:
        """Within the block, this thread's writes (``create``, ``append``) share one
        transaction, committed every ``size`` writes and at the end; an error rolls back the
        writes since the last commit (the block fails, and a write after an error that was
        caught is refused). Reads on this thread see the uncommitted writes.

        For bulk writers that own their sessions, like ``journeys simulate``. A live contact
        needs its commit per step (an answer given is kept whatever happens next), but a commit
        costs as much as the step's own work: on SQLite it appends every page the step touched
        (a dozen, in the tables and their indexes) to the WAL, to be checkpointed back later;
        on PostgreSQL it is a round trip and a WAL flush. A batch writes each page once per
        ``size`` steps: twice the steps per second on SQLite for a simulation of 20,000
        sessions. A crash loses at most the writes since the last commit, each step still
        whole or absent. On SQLite the database's write lock is held from a chunk's first
        write to its commit: other writers wait that long (their busy timeout is 30 s; a chunk
        takes a fraction of a second).
        """
        if size <= 0:
            raise ValueError(f"the batch size must be positive, not {size!r}")
        if self._in_batch():
            yield  # within a batch already: its transaction goes on
            return
        conn = self._connection()
        pg = None if self._sqlite else conn.driver_connection
        if pg is not None:
            pg.autocommit = False  # psycopg begins the transaction at the first statement
        restore = self._sqlite_settings(conn, _BATCH_PRAGMAS) if self._sqlite else {}
        # On PostgreSQL the statements are pipelined: sent without waiting for their results
        # until one is read (the check of a step's seq, a load), one round trip per step
        # rather than one per statement (1.7 times the events per second on loopback).
        self._local.batch = batch = _Batch(size)
        try:
            with pg.pipeline() if pg is not None else contextlib.nullcontext():
                yield
            if batch.failed:  # the error was caught within the block: still, not all is saved
                raise batch.refused()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self._local.batch = None
            if pg is not None:
                pg.autocommit = True
            self._sqlite_settings(conn, restore)

    @staticmethod
    def _sqlite_settings(conn: Any, settings: Mapping[str, int]) -> dict[str, int]:
        """Set SQLite PRAGMAs of this connection; returns their values before."""
        cursor = conn.cursor()
        before = {}
        for name, value in settings.items():
            before[name] = cursor.execute(f"PRAGMA {name}").fetchone()[0]
            cursor.execute(f"PRAGMA {name} = {int(value)}")
        cursor.close()
        return before

    def _in_batch(self) -> bool:
        return getattr(self._local, "batch", None) is not None

    def create(self, session: Session, records: Records, runs: Runs = ()) -> None:
        now_ms = clock.now_ms()
        row = {
            "id": session.id,
            "created_at": self._stamp(),
            **self._row(session, now_ms),
            "visited_ms": now_ms,
        }
        if not self._sqlite and not self._in_batch():
            try:
                self._create_at_once(session, row, records, runs, now_ms)
            except self._operational_error as err:
                if not self._lost(self._connection_or_none()):
                    raise self._unavailable(err, "the session was not started: try again") from None
                # Lost since the last step: once more on a new connection. Should the first
                # attempt have been saved after all, its id is taken: then it was saved.
                try:
                    self._create_at_once(session, row, records, runs, now_ms)
                except self._integrity_error:
                    return
                except self._operational_error as again:
                    raise self._unavailable(
                        again, "the session was not started: try again"
                    ) from None
            return
        try:
            with self._raw() as cursor:  # one transaction: all of it or nothing
                cursor.execute(*self._args("insert_session", _params(row)))
                for seq, record in records:
                    cursor.execute(
                        *self._args("insert_event", _params(self._event(session, seq, record)))
                    )
                self._insert_runs(cursor, runs)
                self._insert_visits(cursor, _visit_rows(session, 0, now_ms, None, now_ms))
        except self._operational_error as err:  # SQLite locked too long, the disk full...
            raise self._unavailable(err, "the session was not started: try again") from None

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
        now_ms = clock.now_ms()
        row = self._row(session, now_ms)
        params = {
            "w_id": session.id,
            "w_seq": expected_seq,
            **_params({c: row[c] for c in _STEP}),
            "v_ended_ms": row["ended_ms"],
            # Moved on to new nodes: they were entered now (else the last one stays as it was).
            "v_visited_ms": now_ms
            if visited_from is not None and len(session.path) > visited_from
            else None,
        }
        try:
            if not self._sqlite and getattr(self._local, "batch", None) is None:
                if not self._append_at_once(session, records, params, runs, visited_from, now_ms):
                    raise _Moved()
                return
            with self._raw() as cursor:
                if visited_from is not None:  # when it reached the node it waited at
                    cursor.execute(*self._args("visited", {"w_id": session.id}))
                    last = cursor.fetchone()
                cursor.execute(*self._args("update", params))
                found = cursor.fetchone()  # RETURNING started_ms: none if someone moved first
                if found is None:
                    raise _Moved()
                if visited_from is not None:
                    started = found[0] if found[0] is not None else now_ms
                    last_ms = last[0] if last else None
                    rows = _visit_rows(session, visited_from, now_ms, last_ms, started)
                    self._insert_visits(cursor, rows)
                for seq, record in records:
                    cursor.execute(
                        *self._args("insert_event", _params(self._event(session, seq, record)))
                    )
                self._insert_runs(cursor, runs)
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

    def _append_at_once(
        self,
        session: Session,
        records: Records,
        params: dict[str, Any],
        runs: Runs,
        visited_from: int | None,
        now_ms: int,
    ) -> bool:
        """A step on PostgreSQL in one statement, so one round trip and its own transaction:
        the session's UPDATE and the INSERTs of its events, visits and action runs as
        data-modifying WITH queries. The INSERTs select from the UPDATE's result: if the
        session had moved on (no row updated), nothing is written and no row comes back.
        Five round trips or more (BEGIN, UPDATE, INSERTs, COMMIT) cost more than the step's
        own work on the database."""
        ctes = [
            "old AS (SELECT visited_ms FROM sessions WHERE id = %(w_id)s)",
            f"u AS ({self._sql['update'][0]})",
        ]
        values: dict[str, Any] = dict(params)
        for i, (seq, record) in enumerate(records):
            ctes.append(
                self._cte_insert(
                    "events", f"e{i}", self._event(session, seq, record), values, "u, old"
                )
            )
        if visited_from is not None:
            # The text of the statement depends on the step's shape only (how many events,
            # visits and runs; the times are parameters): PostgreSQL prepares it once and
            # reuses its plan, where a text that changed every step was planned every step.
            values["now_ms"] = now_ms
            for i, row in enumerate(_visit_rows(session, visited_from, now_ms, None, None)):
                # The start and the time it reached the node it waited at come from the row.
                computed = {"started_ms": "COALESCE(u.started_ms, CAST(%(now_ms)s AS BIGINT))"}
                if row["idx"] == visited_from:
                    computed["spent_ms"] = "CAST(%(now_ms)s AS BIGINT) - old.visited_ms"
                ctes.append(self._cte_insert("visits", f"v{i}", row, values, "u, old", computed))
        ctes += self._cte_runs(runs, values, "u, old")
        sql = f"WITH {', '.join(ctes)} SELECT u.started_ms FROM u"
        cursor = self._connection().driver_connection.cursor()  # autocommit: one transaction
        cursor.execute(sql, values)
        return cursor.fetchone() is not None

    def _create_at_once(
        self,
        session: Session,
        row: Mapping[str, Any],
        records: Records,
        runs: Runs,
        now_ms: int,
    ) -> None:
        """A new session on PostgreSQL in one statement, as a step is (see _append_at_once):
        the session's INSERT, then its first events, visits and action runs selected from it."""
        values: dict[str, Any] = _params(row)
        ctes = [f"s AS ({self._sql['insert_session'][0]} RETURNING id)"]
        for i, (seq, record) in enumerate(records):
            ctes.append(
                self._cte_insert("events", f"e{i}", self._event(session, seq, record), values, "s")
            )
        for i, visit in enumerate(_visit_rows(session, 0, now_ms, None, now_ms)):
            ctes.append(self._cte_insert("visits", f"v{i}", visit, values, "s"))
        ctes += self._cte_runs(runs, values, "s")
        cursor = self._connection().driver_connection.cursor()  # autocommit: one transaction
        cursor.execute(f"WITH {', '.join(ctes)} SELECT id FROM s", values)

    def _cte_insert(
        self,
        table: str,
        name: str,
        row: Mapping[str, Any],
        values: dict[str, Any],
        source: str,
        computed: Mapping[str, str] = {},
    ) -> str:
        """An INSERT of ``row`` as a WITH query named ``name``, selected from ``source`` (so
        that nothing is written when the source has no row); its parameters go in ``values``,
        ``computed`` columns are SQL over the source."""
        selected = []
        for c in row:
            if c in computed:
                selected.append(computed[c])
            else:
                values[f"{name}_{c}"] = row[c]
                selected.append(f"CAST(%({name}_{c})s AS {self._casts[table][c]})")
        return (
            f"{name} AS (INSERT INTO {table} ({', '.join(row)}) "
            f"SELECT {', '.join(selected)} FROM {source})"
        )

    def _cte_runs(self, runs: Runs, values: dict[str, Any], source: str) -> list[str]:
        ctes = []
        for i, run in enumerate(runs):
            result = run.get("result")
            row = {**run, "result": _to_json(result) if result is not None else None}
            ctes.append(
                self._cte_insert(
                    "action_runs", f"r{i}", {**row, "at": self._stamp()}, values, source
                )
            )
        return ctes

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
            cursor.execute(*self._args("load", {"w_id": session_id}))
            return cursor.fetchone()
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _connection_or_none(self) -> Any:
        return getattr(self._local, "conn", None)

    def events(self, session_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.data)
                .where(events.c.session_id == session_id)
                .order_by(events.c.seq)
            ).all()
        return [dict(r.data) for r in rows]

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

    def waiting_at(self, channel: str, nodes: Sequence[str], limit: int) -> list[dict[str, Any]]:
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
            {
                **{k: v for k, v in r._mapping.items() if k != "updated_at"},
                "waiting_since": _aware(r.updated_at).isoformat(),
            }
            for r in rows
        ]

    def _insert_runs(self, cursor: Any, runs: Runs) -> None:
        for run in runs:
            values = {
                **run,
                "result": _to_json(run["result"]) if run.get("result") is not None else None,
                "at": self._stamp(),
            }
            cursor.execute(*self._args("insert_run", _params(values)))

    def record_run(self, run: Mapping[str, Any]) -> None:
        """An action run, once it is over (a repeated key updates the same run)."""
        values = {**run, "at": _now()}
        with self._tx() as conn:
            done = conn.execute(
                update(action_runs).where(action_runs.c.key == run["key"]).values(**values)
            )
            if done.rowcount == 0:
                with contextlib.suppress(IntegrityError):
                    conn.execute(insert(action_runs).values(**values))

    def reserve(self, request: Reserve) -> dict[str, float]:
        """The grant ledger (engine/adapters/sql_grants.py): the customer's totals, read and
        added to atomically."""
        return sql_grants.reserve(self, request)

    def release(self, key: str) -> None:
        sql_grants.release(self, key)

    def granted(self, customer_id: str) -> list[dict[str, Any]]:
        """The grant ledger's rows of one customer, the oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT key, action, param, amount, before, role, session_id, node, "
                    "granted_ms, released_ms FROM authority_grants WHERE customer_id = :c ORDER BY id"
                ),
                {"c": customer_id},
            ).all()
        return [dict(r._mapping) for r in rows]

    def runs(self, session_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(action_runs)
                .where(action_runs.c.session_id == session_id)
                .order_by(action_runs.c.id)
            ).all()
        return [{k: v for k, v in r._mapping.items() if k not in ("id", "at")} for r in rows]

    def failed_runs(self, session_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The background runs (``wait: false``, ``after``) whose last run failed, the newest
        first, of one session or all (each with its ``id``, to run it again)."""
        query = select(action_runs).where(
            action_runs.c.status == "failed", action_runs.c.mode.in_(("background", "after"))
        )
        if session_id is not None:
            query = query.where(action_runs.c.session_id == session_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(action_runs.c.id.desc()).limit(limit)).all()
        return [_run_row(r) for r in rows]

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One action run by its id (None if there is none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(action_runs).where(action_runs.c.id == run_id)).first()
        return _run_row(row) if row is not None else None

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
        return dict(row.data)

    def dispose(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                with contextlib.suppress(Exception):
                    conn.close()
            self._opened.clear()
        self.engine.dispose()


#: SQLite settings during a batch: a cache of 256 MiB (the indexes of a million events do
#: not fit in the default 2 MiB: each write then reads its pages again), and a WAL
#: checkpointed every 40 MB rather than 4 MB (a page written again and again is copied
#: back to the database once). 15-20% more steps per second on 250,000 events.
_BATCH_PRAGMAS = {"cache_size": -262_144, "wal_autocheckpoint": 10_000}


class _Batch:
    """The writes of one ``SqlStore.batch``: counted, committed every ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.writes = 0
        self.failed = False
        self.cursor: Any = None  # one for all the writes

    def refused(self) -> StoreError:
        return StoreError(
            "a write of this batch failed and its writes since the last commit were rolled "
            "back: nothing more is written in it"
        )

    @contextmanager
    def write(self, conn: Any) -> Iterator[Any]:
        if self.failed:
            raise self.refused()
        try:
            self.cursor = self.cursor or conn.cursor()
            yield self.cursor
            self.writes += 1
            if self.writes % self.size == 0:
                conn.commit()
        except BaseException:
            self.failed = True
            conn.rollback()
            raise


def _aware(moment: datetime) -> datetime:
    """A time read back from the database, in UTC (SQLite gives it without its zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Built once: json.dumps with options builds an encoder per call (3% of a simulated step).
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _visit_rows(
    session: Session, first: int, now_ms: int, last_ms: int | None, started_ms: int | None
) -> list[dict[str, Any]]:
    """The visits of the nodes of the path from index ``first`` on (those a step passed
    through, all entered now); ``last_ms``: when the node before them was entered."""
    path = session.path
    return [
        {
            "session_id": session.id,
            "idx": idx,
            "journey": session.journey,
            "version": session.version,
            "motive": session.motive,
            "node": path[idx],
            "from_node": path[idx - 1] if idx else None,
            "first": 0 if path[idx] in path[:idx] else 1,
            # Time at the node before: where the session waited, then none for the nodes
            # the step went through at once.
            "spent_ms": (None if last_ms is None else now_ms - last_ms) if idx == first else 0,
            "entered_ms": now_ms,
            "started_ms": started_ms,
        }
        for idx in range(first, len(path))
    ]


def _run_row(row: Any) -> dict[str, Any]:
    run = dict(row._mapping)
    run["at"] = _aware(run["at"]).isoformat() if run.get("at") else None
    return run


def _to_json(data: Any) -> str:
    return _ENCODE(data)


def _due_ms(session: Session) -> int | None:
    """When the session goes on by itself: an incident's next automatic retry."""
    if session.status != INCIDENT or not session.incident:
        return None
    retry_at = session.incident.get("retry_at")
    return to_ms(datetime.fromisoformat(retry_at)) if retry_at else None
