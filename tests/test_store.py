"""The session store on real databases: a SQLite file and PostgreSQL on 127.0.0.1:5432.

Every test runs on both. The two-process conflict test and the SIGKILL crash test use real
processes against the same database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from engine.adapters.sql.store import SqlStore, StoreError
from engine.definitions.library import Library
from engine.errors import Conflict, StoreUnavailable, UnknownSession
from engine.insight.scenarios import StubExecutor
from engine.sessions.service import Sessions, replay
from tests.conftest import PG_DSN, ROOT, requires, throwaway_pg_database
from tests.workers.stepper import STUBS

JOURNEY = """
journey: crash
version: 1
title: A journey stepped by several processes
inputs:
  customer_id: {type: string}
start: ask_order
nodes:
  ask_order:
    kind: ask
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    next: track
  track:
    kind: action
    action: orders.get_tracking
    input: {order_id: =order_id}
    output: tracking
    on_error: sorry
    next: offer
  offer:
    kind: choose
    field: remedy
    options:
      - {value: refund, next: refund}
      - {value: nothing, next: ask_note}
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: =tracking.shipping_cost, reason: late}
    output: refund
    on_error: sorry
    next: ask_note
  ask_note:
    kind: ask
    field: note
    next: done
  sorry: {kind: handoff, queue: logistics}
  done: {kind: end, outcome: resolved}
"""


@pytest.fixture
def crash_library(tmp_path: Path) -> Path:
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "crash.yaml").write_text(JOURNEY)
    return folder


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    requires("postgresql")
    name = f"journeys_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_DSN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sessions.db'}"
        return
    yield from _pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database of its own, for the tests of PostgreSQL alone."""
    yield from _pg_database(pg_server)


def _pg_database(base: str) -> Iterator[str]:
    yield from throwaway_pg_database(f"{base}_{uuid.uuid4().hex[:6]}")


_OPENED: list[SqlStore] = []


def store_at(url: str) -> SqlStore:
    store = SqlStore(url)
    _OPENED.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().dispose()


def service(library: Path, url: str) -> Sessions:
    return Sessions(Library(library), store_at(url), StubExecutor(STUBS))


def test_a_step_is_saved_with_its_event(crash_library: Path, db_url: str) -> None:
    sessions = service(crash_library, db_url)
    s = sessions.start("crash", {"customer_id": "C001"}, channel="chat")
    s = sessions.answer(s.id, "ask_order", "10000001", seq=s.seq)
    again = store_at(db_url).load(s.id)  # a new process would see exactly this
    assert again.to_dict() == s.to_dict()
    assert (again.node, again.context["tracking"]["days_late"]) == ("offer", 7)
    kinds = [e["type"] for e in store_at(db_url).events(s.id)]
    assert kinds == ["start", "answer", "action"]


def test_replay_rebuilds_the_session(crash_library: Path, db_url: str) -> None:
    sessions = service(crash_library, db_url)
    store = sessions.store
    s = sessions.start("crash", {"customer_id": "C001"}, channel="chat")
    s = sessions.answer(s.id, "ask_order", "10000001")
    s = sessions.resume(s.id, "phone")
    s = sessions.answer(s.id, "offer", "refund")
    records = store.events(s.id)
    assert (
        replay(store.load_bundle(s.definition), records[0], records).to_dict()
        == store.load(s.id).to_dict()
    )


def test_stale_answer_is_refused_and_changes_nothing(crash_library: Path, db_url: str) -> None:
    sessions = service(crash_library, db_url)
    s = sessions.start("crash", {"customer_id": "C001"})
    stale = s.seq
    s = sessions.answer(s.id, "ask_order", "10000001", seq=stale)
    before = sessions.get(s.id).to_dict()
    with pytest.raises(Conflict, match="step"):
        sessions.answer(s.id, "offer", "refund", seq=stale)
    with pytest.raises(Conflict, match="waiting at 'offer'"):
        sessions.answer(s.id, "ask_order", "10000002")
    assert sessions.get(s.id).to_dict() == before
    assert len(sessions.store.events(s.id)) == 3


def test_unknown_session(crash_library: Path, db_url: str) -> None:
    sessions = service(crash_library, db_url)
    with pytest.raises(UnknownSession, match="no session 'nope'"):
        sessions.answer("nope", "ask_order", "10000001")


def _answer_at_once(
    url: str, library: str, session_id: str, seq: int, barrier: object, results: object
) -> None:
    sessions = service(Path(library), url)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        sessions.answer(session_id, "ask_order", "10000001", seq=seq)
        results.put("applied")  # type: ignore[attr-defined]
    except Conflict:
        results.put("refused")  # type: ignore[attr-defined]


def test_two_processes_answering_at_once_exactly_one_applies(
    crash_library: Path, db_url: str
) -> None:
    context = multiprocessing.get_context("fork")
    sessions = service(crash_library, db_url)
    for _ in range(8):
        s = sessions.start("crash", {"customer_id": "C001"})
        barrier, results = context.Barrier(2), context.Queue()
        workers = [
            context.Process(
                target=_answer_at_once,
                args=(db_url, str(crash_library), s.id, s.seq, barrier, results),
            )
            for _ in range(2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in range(2))
        assert outcomes == ["applied", "refused"]
        events = sessions.store.events(s.id)
        assert [e["type"] for e in events].count("answer") == 1


def test_sigkill_at_any_moment_leaves_every_step_whole(crash_library: Path, db_url: str) -> None:
    """Kill a stepping process again and again; every session must equal its replayed events."""
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store_at(db_url)  # create the schema before the first kill
    for round_ in range(6):
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.workers.stepper",
                str(crash_library),
                db_url,
                str(round_),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the worker died by itself"
    store = store_at(db_url)
    ids = store.session_ids()
    assert len(ids) > 20
    for sid in ids:
        records = store.events(sid)
        seqs = [store.load(sid).seq]
        assert len(records) >= 1
        rebuilt = replay(store.load_bundle(store.load(sid).definition), records[0], records)
        assert rebuilt.to_dict() == store.load(sid).to_dict(), sid
        assert seqs[0] >= len(records)


def test_corrupt_database_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="not usable"):
        SqlStore("notadb://x")
    with pytest.raises(StoreError, match="cannot open"):
        SqlStore("postgresql+psycopg://postgres@127.0.0.1:1/nothing")


def test_an_old_schema_asks_for_an_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store_at(url)
    import sqlite3

    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    with pytest.raises(StoreError, match="journeys db upgrade"):
        store_at(url)


def test_db_upgrade_migrates_an_older_database(tmp_path: Path, crash_library: Path) -> None:
    """A database made by an older version is refused until `journeys db upgrade` runs."""
    from alembic import command
    from click.testing import CliRunner

    from cli import main
    from engine.adapters.sql.migrations import config
    from engine.adapters.sql.store import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    command.upgrade(config(engine), "0001")
    engine.dispose()
    with pytest.raises(StoreError, match=r"revision '0001'.*journeys db upgrade"):
        store_at(url)
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    sessions = service(crash_library, url)
    s = sessions.start("crash", {"customer_id": "C001"})
    assert sessions.get(s.id).node == "ask_order"


def test_every_action_run_is_recorded_with_the_session(crash_library: Path, db_url: str) -> None:
    sessions = service(crash_library, db_url)
    s = sessions.start("crash", {"customer_id": "C001"})
    s = sessions.answer(s.id, "ask_order", "10000001")
    s = sessions.answer(s.id, "offer", "refund")
    runs = sessions.store.runs(s.id)
    assert [(r["node"], r["action"], r["mode"], r["status"]) for r in runs] == [
        ("track", "orders.get_tracking", "wait", "succeeded"),
        ("refund", "payments.refund", "wait", "succeeded"),
    ]
    assert runs[1]["key"] == f"{s.id}:refund:1" and runs[1]["result"]["refund_id"] == "R1"


def test_a_start_that_runs_an_action_saves_everything_at_once(tmp_path: Path, db_url: str) -> None:
    """A session whose first node is an action: its start writes the session, its events, the
    action run and a visit per node it passed, all in one write (one statement on PostgreSQL)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "eager.yaml").write_text(
        JOURNEY.replace("journey: crash", "journey: eager")
        .replace("start: ask_order", "start: track")
        .replace("input: {order_id: =order_id}", "input: {order_id: '10000001'}")
    )
    sessions = service(folder, db_url)
    s = sessions.start("eager", {"customer_id": "C001"}, channel="chat")
    assert s.path == ["track", "offer"] and s.node == "offer"
    store = store_at(db_url)  # another process's view
    assert store.load(s.id).to_dict() == s.to_dict()
    assert [e["type"] for e in store.events(s.id)] == ["start", "action"]
    [run] = store.runs(s.id)
    assert (run["node"], run["status"], run["result"]["order_id"]) == (
        "track",
        "succeeded",
        "10000001",
    )
    with store.engine.connect() as conn:
        visits = conn.exec_driver_sql(
            f"SELECT idx, node, from_node FROM visits WHERE session_id = '{s.id}' ORDER BY idx"
        ).all()
    assert [tuple(v) for v in visits] == [(0, "track", None), (1, "offer", "track")]
    # And it goes on from there as any session.
    s = sessions.answer(s.id, "offer", "nothing", seq=s.seq)
    assert store.load(s.id).node == "ask_note"


def _cut_off(db: str, allow: bool | None = None) -> None:
    """Drop every connection to the database ``db``, as a PostgreSQL restart does; with
    ``allow`` False, refuse new ones too (a database that cannot be reached)."""
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        if allow is not None:
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(allow).lower()}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db],
        )


def test_connections_lost_under_a_running_store_are_made_again(
    crash_library: Path, pg_url: str
) -> None:
    """PostgreSQL restarted under a server: the next steps work on new connections; while
    it cannot be reached, a clear StoreUnavailable (503), and nothing half done."""
    db = pg_url.rsplit("/", 1)[1]
    sessions = service(crash_library, pg_url)
    first = sessions.start("crash", {"customer_id": "C001"})
    _cut_off(db)
    second = sessions.start("crash", {"customer_id": "C002"})  # a write first
    _cut_off(db)
    first = sessions.answer(first.id, "ask_order", "10000001", seq=first.seq)  # a read first
    assert first.node == "offer" and sessions.get(second.id).node == "ask_order"

    _cut_off(db, allow=False)
    try:
        with pytest.raises(StoreUnavailable, match=r"cannot be used just now.*try again"):
            sessions.get(first.id)
        with pytest.raises(StoreUnavailable, match="the session was not started"):
            sessions.start("crash", {"customer_id": "C003"})
    finally:
        _cut_off(db, allow=True)
    assert sessions.answer(first.id, "offer", "nothing", seq=first.seq).node == "ask_note"
    assert [e["type"] for e in sessions.store.events(first.id)] == [
        "start",
        "answer",
        "action",
        "answer",
    ]


def test_a_sqlite_database_that_refuses_writes_is_a_clear_error(
    crash_library: Path, tmp_path: Path
) -> None:
    """SQLite locked for longer than its timeout, or its disk full, is an OperationalError:
    a StoreUnavailable (503) that says what was saved, never a traceback."""
    sessions = service(crash_library, f"sqlite:///{tmp_path / 'sessions.db'}")
    first = sessions.start("crash", {"customer_id": "C001"})
    store = sessions.store
    assert isinstance(store, SqlStore)
    connection = store._connection()  # this thread's: made read-only, as a full disk refuses
    connection.execute("PRAGMA query_only = 1")
    try:
        with pytest.raises(StoreUnavailable, match=r"readonly.*the session was not started"):
            sessions.start("crash", {"customer_id": "C002"})
        with pytest.raises(StoreUnavailable, match="the answer may not have been saved"):
            sessions.answer(first.id, "ask_order", "10000001", seq=first.seq)
    finally:
        connection.execute("PRAGMA query_only = 0")
    assert sessions.get(first.id).seq == first.seq  # nothing half done
    assert sessions.answer(first.id, "ask_order", "10000001", seq=first.seq).node == "offer"


def test_records_carry_their_format_and_unversioned_ones_are_read(
    crash_library: Path, db_url: str
) -> None:
    """Written today: the stored state and events carry their format and read back equal.
    Stored before formats were numbered (the number removed from the rows): read the same."""
    from engine.sessions.records import EVENT_FORMAT, FORMAT, SESSION_FORMAT

    sessions = service(crash_library, db_url)
    s = sessions.start("crash", {"customer_id": "C001"}, channel="chat")
    s = sessions.answer(s.id, "ask_order", "10000001")
    store = store_at(db_url)
    state, events = store.load(s.id).to_dict(), store.events(s.id)
    assert state == s.to_dict() and state[FORMAT] == SESSION_FORMAT
    assert [e["type"] for e in events] == ["start", "answer", "action"]
    assert all(FORMAT not in e for e in events)  # the service reads records, not formats
    with store.engine.begin() as conn:
        stored = conn.exec_driver_sql(f"SELECT data FROM events WHERE session_id = '{s.id}'")
        assert {json.loads(d)[FORMAT] if isinstance(d, str) else d[FORMAT] for (d,) in stored} == {
            EVENT_FORMAT
        }
        # Back to format 1: no number (json_remove on SQLite, the - operator on PostgreSQL).
        drop = (
            "json_remove({c}, '$.format')"
            if conn.dialect.name == "sqlite"
            else "({c}::jsonb - 'format')::json"
        )
        conn.exec_driver_sql(f"UPDATE sessions SET state = {drop.format(c='state')}")
        conn.exec_driver_sql(f"UPDATE events SET data = {drop.format(c='data')}")
        [(old,)] = conn.exec_driver_sql("SELECT state FROM sessions").all()
        assert FORMAT not in (json.loads(old) if isinstance(old, str) else old)
    again = store_at(db_url)
    assert again.load(s.id).to_dict() == state and again.events(s.id) == events
    assert again.header(s.id) == events[0]
    s = Sessions(Library(crash_library), again, StubExecutor(STUBS)).answer(s.id, "offer", "refund")
    assert s.node == "ask_note" and store_at(db_url).load(s.id).to_dict() == s.to_dict()


def test_every_recorded_time_is_the_engines_clock(crash_library: Path, db_url: str) -> None:
    """A simulated clock (engine.clock.using, as `journeys simulate`) stamps every row the
    store writes: no time in the database comes from the wall clock."""
    from datetime import UTC, datetime

    from engine import clock

    then = datetime(2025, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)
    with clock.using(lambda: then):
        sessions = service(crash_library, db_url)
        s = sessions.start("crash", {"customer_id": "C001"}, channel="chat")
        s = sessions.answer(s.id, "ask_order", "10000001")
        sessions.store.record_run({**sessions.store.runs(s.id)[0], "attempts": 2})
    ms = clock.to_ms(then)
    with sessions.store.engine.connect() as conn:
        times = conn.exec_driver_sql(
            "SELECT created_at, updated_at FROM sessions UNION ALL "
            "SELECT at, at FROM events UNION ALL SELECT at, at FROM action_runs UNION ALL "
            "SELECT created_at, created_at FROM definitions"
        ).all()
        millis = conn.exec_driver_sql(
            "SELECT started_ms, visited_ms FROM sessions UNION ALL "
            "SELECT entered_ms, started_ms FROM visits"
        ).all()
    read = {
        t if isinstance(t, datetime) else datetime.fromisoformat(t) for row in times for t in row
    }
    # SQLite keeps naive UTC text, PostgreSQL an aware time
    assert {t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in read} == {then}
    assert {m for row in millis for m in row} == {ms}
