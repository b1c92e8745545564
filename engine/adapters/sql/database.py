"""The session database itself: its engine (SQLite tuned for many small transactions, or
PostgreSQL), one DBAPI connection per thread for the hot path, transactions, batches and
the errors of a database that cannot be used.

:class:`SqlDatabase` is what :class:`engine.adapters.sql.store.SqlStore` (and the grant ledger
of engine/adapters/sql/grants.py) write and read through.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from engine import clock
from engine.errors import StoreUnavailable, Unavailable


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
            json_serializer=to_json,
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


#: SQLite settings during a batch: a cache of 256 MiB (the indexes of a million events do
#: not fit in the default 2 MiB: each write then reads its pages again), and a WAL
#: checkpointed every 40 MB rather than 4 MB (a page written again and again is copied
#: back to the database once). 15-20% more steps per second on 250,000 events.
BATCH_PRAGMAS = {"cache_size": -262_144, "wal_autocheckpoint": 10_000}


class Batch:
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


def aware(moment: datetime) -> datetime:
    """A time read back from the database, in UTC (SQLite gives it without its zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Built once: json.dumps with options builds an encoder per call (3% of a simulated step).
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


def to_json(data: Any) -> str:
    return _ENCODE(data)


def sqlite_time(moment: datetime) -> str:
    """A time as SQLAlchemy writes a DateTime in SQLite (naive text, "%Y-%m-%d %H:%M:%S.%f"):
    what the raw statements write too. (isoformat: a fifth of strftime's time.)"""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


class SqlDatabase:
    """A session database: its engine, a connection per thread, transactions and batches."""

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._check_schema(upgrade)
        dialect = self.engine.dialect
        self._sqlite = dialect.name == "sqlite"
        self._integrity_error = dialect.loaded_dbapi.IntegrityError
        self._operational_error = dialect.loaded_dbapi.OperationalError
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()
        # SQLite has one writer at a time: threads of this process take turns here rather than
        # in SQLite's busy handler, which sleeps in steps of up to 100 ms (seconds of p99).
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        self._stamped: tuple[datetime | None, str] = (None, "")

    def _check_schema(self, upgrade: bool) -> None:
        from engine.adapters.sql.migrations import current_revision, head_revision, upgrade_to_head

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

    def _stamp(self, now: datetime | None = None) -> Any:
        """Now (or ``now``), as the column takes it: SQLAlchemy's naive UTC text on SQLite,
        else the object. The text of the last time is kept: a simulated clock gives one time
        to a whole step."""
        now = now or clock.now()
        if not self._sqlite:
            return now
        last = self._stamped
        if last[0] != now:
            last = self._stamped = (now, sqlite_time(now))
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
        batch: Batch | None = getattr(self._local, "batch", None)
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
        restore = self._sqlite_settings(conn, BATCH_PRAGMAS) if self._sqlite else {}
        # On PostgreSQL the statements are pipelined: sent without waiting for their results
        # until one is read (the check of a step's seq, a load), one round trip per step
        # rather than one per statement (1.7 times the events per second on loopback).
        self._local.batch = batch = Batch(size)
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

    def _connection_or_none(self) -> Any:
        return getattr(self._local, "conn", None)

    def dispose(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                with contextlib.suppress(Exception):
                    conn.close()
            self._opened.clear()
        self.engine.dispose()
