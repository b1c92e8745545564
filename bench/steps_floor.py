"""The SQLite floors of bench/steps.py, with sqlite3 alone on one connection:

- (d) one SELECT, one UPDATE and one INSERT committed per step;
- (e) exactly the rows the store writes per step, in the store's own tables (created by its
  migrations), with the PRAGMAs it sets: the journey's steps are recorded once as (a) runs
  them, then replayed with new session ids, each step its session row (INSERT at the start,
  UPDATE checked on its seq after), its events, visits and action runs in one transaction,
  and before each answer the SELECT of the state that loads the session.

(b) does what (e) does plus SQLAlchemy-free bookkeeping and the step itself, which (a)
measures: (b) within 1.5x of (a) + (e) is the target of issue 13.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.steps_common import (
    INSERT_EVENT,
    STEPS_PER_SESSION,
    WARMUP,
    Result,
    Timer,
    connect,
    event_row,
    fresh_db,
)
from engine.sessions.runtime import Session
from engine.sessions.service import MemoryStore, Records, Runs


def bench_raw(out: Path, n: int, state: str) -> Result:
    """One SELECT, one UPDATE and one INSERT committed per step, on one connection; the row
    holds ``state``, a session's state as (b) stores it."""
    conn = connect(out / "raw.db")
    total = WARMUP + n
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO sessions (id, seq, state) VALUES (?, 0, ?)",
        [(f"s{i}", state) for i in range(total)],
    )
    conn.execute("COMMIT")

    def one(sid: str) -> None:
        conn.execute("BEGIN")
        seq, stored = conn.execute(
            "SELECT seq, state FROM sessions WHERE id = ?", (sid,)
        ).fetchone()
        conn.execute(
            "UPDATE sessions SET seq = ?, state = ? WHERE id = ? AND seq = ?",
            (seq + 1, stored, sid, seq),
        )
        conn.execute(INSERT_EVENT, event_row(sid, seq + 1, "answer", {"value": "12345678"}))
        conn.execute("COMMIT")

    warm = Timer(Result("warm-up"))
    for i in range(WARMUP):
        for _ in range(STEPS_PER_SESSION):
            warm.time(partial(one, f"s{i}"))
    result = Result("(d) raw sqlite3: SELECT+UPDATE+INSERT")
    with Timer(result) as timer:
        for i in range(WARMUP, total):
            for _ in range(STEPS_PER_SESSION):
                timer.time(partial(one, f"s{i}"))
    conn.close()
    result.notes.append(f"stored per session: state row {len(state) / 1000:.1f} kB, as in (b)")
    return result


# ------------------------------------------------------------ (e) the store's rows, raw


@dataclass(frozen=True)
class Saved:
    """One call of the store by a step, as (a) made it: what (e) writes again."""

    session: dict[str, Any]  # Session.to_dict() after the step
    records: list[tuple[int, dict[str, Any]]]
    runs: list[dict[str, Any]]
    expected_seq: int | None  # None: the start (create)
    visited_from: int | None


class RecordingStore(MemoryStore):
    """A MemoryStore that keeps the calls of the last session it saw started."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[Saved] = []

    def create(self, session: Session, records: Records, runs: Runs = ()) -> None:
        super().create(session, records, runs)
        self.saved = [Saved(session.to_dict(), _copied(records), _runs(runs), None, None)]

    def append(
        self,
        session: Session,
        records: Records,
        expected_seq: int,
        runs: Runs = (),
        visited_from: int | None = None,
    ) -> None:
        super().append(session, records, expected_seq, runs, visited_from)
        saved = Saved(session.to_dict(), _copied(records), _runs(runs), expected_seq, visited_from)
        self.saved.append(saved)


def _copied(records: Records) -> list[tuple[int, dict[str, Any]]]:
    return [(seq, dict(record)) for seq, record in records]


def _runs(runs: Runs) -> list[dict[str, Any]]:
    return [dict(run) for run in runs]


_SESSION = (
    "id, journey, version, definition, status, node, outcome, seq, customer_id, contact_id, "
    "channel, agent, motive, state, created_at, updated_at, started_ms, ended_ms, last_node, "
    "steps, ces, nps, visited_ms, due_ms"
)
INSERT_SESSION = f"INSERT INTO sessions ({_SESSION}) VALUES ({', '.join(['?'] * 24)})"
UPDATE_SESSION = (
    "UPDATE sessions SET status = ?, node = ?, outcome = ?, seq = ?, channel = ?, agent = ?, "
    "state = ?, updated_at = ?, last_node = ?, steps = ?, ces = ?, nps = ?, due_ms = ?, "
    "ended_ms = coalesce(ended_ms, ?), visited_ms = coalesce(?, visited_ms) "
    "WHERE id = ? AND seq = ? RETURNING started_ms"
)
INSERT_VISIT = (
    "INSERT INTO visits (session_id, idx, journey, version, motive, node, from_node, first, "
    "spent_ms, entered_ms, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_STORE_EVENT = (
    "INSERT INTO events (session_id, seq, type, node, channel, actor, data, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_RUN = (
    "INSERT INTO action_runs (session_id, node, action, key, mode, status, attempts, run_id, "
    "error, result, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":")).encode


class StoreRows:
    """(e): the rows of the store's steps, written with sqlite3 on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def step(self, sid: str, saved: Saved) -> None:
        state = {**saved.session, "id": sid}
        now = datetime.now(UTC)
        at, now_ms = now.replace(tzinfo=None).isoformat(" "), int(now.timestamp() * 1000)
        conn = self.conn
        if saved.expected_seq is not None:  # the load before the step
            row = conn.execute("SELECT state FROM sessions WHERE id = ?", (sid,)).fetchone()
            json.loads(row[0])
        conn.execute("BEGIN")
        if saved.expected_seq is None:
            conn.execute(INSERT_SESSION, self._created(sid, state, at, now_ms))
            started, last_ms = now_ms, None
        else:
            (last_ms,) = conn.execute(
                "SELECT visited_ms FROM sessions WHERE id = ?", (sid,)
            ).fetchone()
            (started,) = conn.execute(
                UPDATE_SESSION, self._stepped(sid, state, saved, at, now_ms)
            ).fetchone()
        first = saved.visited_from or 0
        conn.executemany(INSERT_VISIT, _visits(state, first, now_ms, last_ms, started))
        for seq, record in saved.records:
            conn.execute(
                INSERT_STORE_EVENT,
                (
                    sid,
                    seq,
                    record["type"],
                    record.get("node"),
                    record.get("channel") or state["channel"],
                    record.get("actor"),
                    _ENCODE(record),
                    at,
                ),
            )
        for run in saved.runs:
            result = run.get("result")
            conn.execute(INSERT_RUN, _run_values(run, sid, result, at))
        conn.execute("COMMIT")

    @staticmethod
    def _columns(state: Mapping[str, Any]) -> tuple[Any, ...]:
        path, survey = state["path"], state["survey"]
        return (path[-1] if path else None, len(path), survey.get("ces"), survey.get("nps"))

    def _created(self, sid: str, state: dict[str, Any], at: str, now_ms: int) -> tuple[Any, ...]:
        last_node, steps, ces, nps = self._columns(state)
        s = state
        return (
            sid,
            s["journey"],
            s["version"],
            s["definition"],
            s["status"],
            s["node"],
            s["outcome"],
            s["seq"],
            s["customer_id"],
            s["contact_id"],
            s["channel"],
            s["agent"],
            s["motive"],
            _ENCODE(s),
            at,
            at,
            now_ms,
            now_ms if s["status"] in ("survey", "ended") else None,
            last_node,
            steps,
            ces,
            nps,
            now_ms,
            None,
        )

    def _stepped(
        self, sid: str, state: dict[str, Any], saved: Saved, at: str, now_ms: int
    ) -> tuple[Any, ...]:
        last_node, steps, ces, nps = self._columns(state)
        s = state
        moved = saved.visited_from is not None and len(s["path"]) > saved.visited_from
        return (
            s["status"],
            s["node"],
            s["outcome"],
            s["seq"],
            s["channel"],
            s["agent"],
            _ENCODE(s),
            at,
            last_node,
            steps,
            ces,
            nps,
            None,
            now_ms if s["status"] in ("survey", "ended") else None,
            now_ms if moved else None,
            sid,
            saved.expected_seq,
        )


def _visits(
    state: Mapping[str, Any], first: int, now_ms: int, last_ms: int | None, started: int
) -> list[tuple[Any, ...]]:
    path = state["path"]
    return [
        (
            state["id"],
            idx,
            state["journey"],
            state["version"],
            state["motive"],
            path[idx],
            path[idx - 1] if idx else None,
            0 if path[idx] in path[:idx] else 1,
            (None if last_ms is None else now_ms - last_ms) if idx == first else 0,
            now_ms,
            started,
        )
        for idx in range(first, len(path))
    ]


def _run_values(run: Mapping[str, Any], sid: str, result: Any, at: str) -> tuple[Any, ...]:
    return (
        sid,
        run["node"],
        run["action"],
        f"{sid}{run['key'][len(run['session_id']) :]}",
        run["mode"],
        run["status"],
        run["attempts"],
        run.get("run_id"),
        run.get("error"),
        _ENCODE(result) if result is not None else None,
        at,
    )


def store_database(path: Path) -> sqlite3.Connection:
    """The store's own tables (its migrations), then sqlite3 alone with the store's PRAGMAs."""
    from engine.adapters.sql.store import SqlStore

    SqlStore(f"sqlite:///{fresh_db(path)}").dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=30000",
        "wal_autocheckpoint=4000",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def bench_store_rows(out: Path, n: int, saved: list[Saved]) -> Result:
    """(e): the steps of one session of (a), written again for ``n`` sessions."""
    if len(saved) != STEPS_PER_SESSION:
        raise ValueError(f"(e) needs the {STEPS_PER_SESSION} steps of a session, not {saved}")
    conn = store_database(out / "rows.db")
    rows = StoreRows(conn)
    warm = Timer(Result("warm-up"))
    for i in range(WARMUP):
        for one in saved:
            warm.time(partial(rows.step, f"w{i}", one))
    result = Result("(e) raw sqlite3: the store's rows")
    with Timer(result) as timer:
        for i in range(n):
            for one in saved:
                timer.time(partial(rows.step, f"s{i}", one))
    with contextlib.closing(conn):
        counts = [
            conn.execute(f"SELECT count(*) FROM {t} WHERE session_id = 's0'").fetchone()[0]
            for t in ("events", "visits", "action_runs")
        ]
    result.notes.append(
        "per session, as (b): 1 session row (INSERT, then UPDATE checked on its seq), "
        f"{counts[0]} events, {counts[1]} visits, {counts[2]} action runs; "
        "a SELECT of the state before each answer"
    )
    return result
