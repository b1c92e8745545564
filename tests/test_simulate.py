"""Simulated traffic (engine/insight/simulate.py, `journeys simulate`): reproducible, every behaviour
present, times spread like a contact centre's, sessions whole (their events replay them)."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from cli import main
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.insight.simulate import ERRORS, SimulationError, Summary, simulate, survey_scores
from engine.sessions.service import replay
from tests.conftest import PG_DSN, SHIPPED, requires

END = datetime(2025, 3, 14, 18, 30, tzinfo=UTC)
DAYS = 14


@dataclass
class Run:
    url: str
    path: Path
    summary: Summary

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, args).fetchall()


def run(folder: Path, sessions: int, seed: int = 7, name: str = "s.db", end: datetime = END) -> Run:
    path = folder / name
    url = f"sqlite:///{path}"
    store = SqlStore(url)
    try:
        with store.batch():
            summary = simulate(Library(SHIPPED), store, sessions, days=DAYS, seed=seed, end=end)
    finally:
        store.dispose()
    return Run(url, path, summary)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A few hundred sessions over two weeks: enough for every behaviour to show."""
    return run(tmp_path_factory.mktemp("traffic"), 400)


def test_the_same_seed_gives_the_same_sessions(tmp_path: Path) -> None:
    first, again = run(tmp_path, 60, name="a.db"), run(tmp_path, 60, name="b.db")
    other = run(tmp_path, 60, seed=8, name="c.db")
    sessions = (
        "SELECT id, customer_id, motive, channel, state, created_at FROM sessions ORDER BY id"
    )
    events = "SELECT session_id, seq, type, data, at FROM events ORDER BY session_id, seq"
    assert first.rows(sessions) == again.rows(sessions)
    assert first.rows(events) == again.rows(events)
    assert first.summary == again.summary
    assert {r[0] for r in first.rows(sessions)}.isdisjoint(r[0] for r in other.rows(sessions))


def test_another_day_changes_the_times_only(tmp_path: Path) -> None:
    """Each contact draws from its own generators: run on another day, the same seed gives the
    same contacts at other times (a repeat contact that would come after the end is left out,
    and replaced by the next contact)."""
    today = run(tmp_path, 200, name="a.db")
    later = run(tmp_path, 200, name="b.db", end=END + timedelta(days=3, hours=5))
    what = "SELECT id, customer_id, motive, channel, outcome, json_extract(state, '$.path')"
    same = set(today.rows(f"{what} FROM sessions")) & set(later.rows(f"{what} FROM sessions"))
    assert len(same) >= 180


def test_the_same_seed_twice_in_one_database_is_refused(tmp_path: Path) -> None:
    done = run(tmp_path, 5)
    store = SqlStore(done.url)
    try:
        with pytest.raises(SimulationError, match="already holds the sessions of seed 7"):
            simulate(Library(SHIPPED), store, 5, seed=7, end=END)
    finally:
        store.dispose()


def test_every_session_has_its_customer_and_motive(traffic: Run) -> None:
    assert traffic.summary.sessions == 400
    assert traffic.rows("SELECT count(*) FROM sessions") == [(400,)]
    assert traffic.rows(
        "SELECT count(*) FROM sessions WHERE customer_id IS NULL OR motive IS NULL"
    ) == [(0,)]
    assert traffic.rows("SELECT count(*) FROM events") == [(traffic.summary.events,)]


def test_some_motives_are_far_more_frequent(traffic: Run) -> None:
    counts = dict(traffic.rows("SELECT motive, count(*) FROM sessions GROUP BY motive"))
    assert counts == dict(traffic.summary.motives)
    assert len(counts) >= 10
    assert max(counts.values()) >= 4 * min(counts.values())
    assert max(counts, key=lambda m: counts[m]) == "delivery.late"


def test_customers_come_back_on_the_same_motive(traffic: Run) -> None:
    """Repeat contacts: the same customer and motive again within hours or days (what keeps
    a contact from being once and done)."""
    again = traffic.rows(
        "SELECT a.id, b.id, b.started_ms - a.started_ms FROM sessions a JOIN sessions b"
        " ON a.customer_id = b.customer_id AND a.motive = b.motive AND b.started_ms > a.started_ms"
        " WHERE b.started_ms - a.started_ms <= 7 * 86400000"
    )
    assert traffic.summary.repeats >= 20
    assert len(again) >= traffic.summary.repeats * 0.8
    gaps = [gap / 3_600_000 for _a, _b, gap in again]
    assert any(h < 24 for h in gaps) and any(h > 48 for h in gaps)  # hours or days later
    # More often after a contact that did not resolve the motive.
    outcome = dict(traffic.rows("SELECT id, coalesce(outcome, 'abandoned') FROM sessions"))
    share = Counter(outcome.values())
    first = Counter(outcome[a] for a, _b, _gap in again)
    assert first["resolved"] / share["resolved"] < (first.total() - first["resolved"]) / (
        share.total() - share["resolved"]
    )


def test_some_customers_move_to_another_channel(traffic: Run) -> None:
    moves = traffic.rows(
        "SELECT json_extract(data, '$.from'), channel FROM events WHERE type = 'resume'"
    )
    assert len(moves) == traffic.summary.channel_changes >= 5
    assert all(before != after for before, after in moves)


def test_some_give_up_half_way(traffic: Run) -> None:
    waiting = traffic.rows("SELECT count(*) FROM sessions WHERE status = 'waiting'")[0][0]
    assert waiting == traffic.summary.outcomes["abandoned"] >= 5


def test_surveys_follow_the_outcome(traffic: Run) -> None:
    scores = traffic.rows("SELECT outcome, ces, nps FROM sessions WHERE ces IS NOT NULL")
    assert len(scores) == traffic.summary.surveys >= 50
    assert traffic.rows("SELECT count(*) FROM sessions WHERE nps IS NOT NULL")[0][0] >= 20
    kinds = Counter(t for (t,) in traffic.rows("SELECT type FROM events"))
    assert kinds["survey"] == traffic.summary.surveys and kinds["skip_survey"] >= 10
    assert mean(ces for outcome, ces, _nps in scores if outcome == "resolved") >= 5.5


def test_scores_follow_the_outcome_and_the_effort() -> None:
    rng = random.Random(1)

    def means(outcome: str | None, effort: float = 0) -> tuple[float, float]:
        drawn = [survey_scores(rng, outcome, effort) for _ in range(2000)]
        return mean(c for c, _n in drawn), mean(n for _c, n in drawn)

    resolved, escalated, unresolved = means("resolved"), means("escalated"), means("unresolved")
    assert resolved > escalated > unresolved
    assert resolved[0] > 5.5 and resolved[1] > 8 and unresolved[1] < 4
    assert means("resolved", effort=1) < resolved


def test_failed_actions_take_their_error_path(traffic: Run) -> None:
    library = Library(SHIPPED)
    failures = traffic.rows(
        "SELECT e.session_id, e.node, json_extract(e.data, '$.error'), s.state FROM events e"
        " JOIN sessions s ON s.id = e.session_id"
        " WHERE e.type = 'action' AND json_extract(e.data, '$.error') IS NOT NULL"
    )
    injected = [f for f in failures if f[2] in ERRORS]
    assert len(injected) >= traffic.summary.failures >= 5
    for _sid, node, _error, state in failures:
        path = json.loads(state)["path"]
        after = path[len(path) - 1 - path[::-1].index(node) + 1]
        prefix, _, local = node.rpartition("/")
        journey = library.journeys[json.loads(state)["journey"]]
        for caller in filter(None, prefix.split("/")):
            journey = library.journeys[journey.nodes[caller].journey or ""]
        assert after == (f"{prefix}/" if prefix else "") + (journey.nodes[local].on_error or "")


def test_times_spread_over_the_days_like_a_contact_centre(traffic: Run) -> None:
    start_ms = (END - timedelta(days=DAYS)).timestamp() * 1000
    started = [ms for (ms,) in traffic.rows("SELECT started_ms FROM sessions")]
    assert start_ms <= min(started) and max(started) <= END.timestamp() * 1000
    days = {datetime.fromtimestamp(ms / 1000, UTC).date() for ms in started}
    assert len(days) >= DAYS - 2
    hours = Counter(datetime.fromtimestamp(ms / 1000, UTC).hour for ms in started)
    assert sum(n for h, n in hours.items() if 8 <= h < 19) >= 0.7 * len(started)
    weekdays = Counter(datetime.fromtimestamp(ms / 1000, UTC).weekday() for ms in started)
    assert weekdays[0] > 2 * weekdays[6]  # more on Mondays than on Sundays


def test_steps_follow_each_other_at_human_pace(traffic: Run) -> None:
    stamps: dict[str, list[str]] = {}
    for sid, at in traffic.rows("SELECT session_id, at FROM events ORDER BY session_id, seq"):
        stamps.setdefault(sid, []).append(at)
    assert all(times == sorted(times) for times in stamps.values())
    answers = traffic.rows(
        "SELECT json_extract(data, '$.at'), session_id, seq FROM events WHERE type = 'answer'"
    )
    assert answers and all(at <= END.isoformat() for at, _sid, _seq in answers)
    lengths = [
        (datetime.fromisoformat(t[-1]) - datetime.fromisoformat(t[0])).total_seconds()
        for t in stamps.values()
        if len(t) > 3
    ]
    assert 20 <= sorted(lengths)[len(lengths) // 2] <= 15 * 60  # a median contact: minutes


def test_sessions_replay_from_their_events(traffic: Run) -> None:
    store = SqlStore(traffic.url)
    try:
        ids = [sid for (sid,) in traffic.rows("SELECT id FROM sessions ORDER BY id")][::10]
        for sid in ids:
            records = store.events(sid)
            stored = store.load(sid)
            rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
            assert rebuilt.to_dict() == stored.to_dict(), sid
    finally:
        store.dispose()


# ------------------------------------------------------------------------- the batch


def test_a_batch_commits_every_size_writes_and_at_the_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    store, reader = SqlStore(url), SqlStore(url)
    library = Library(SHIPPED)
    try:
        with store.batch(size=10_000):
            simulate(library, store, 5, seed=1, end=END)
            assert reader.session_ids() == []  # not committed yet
        assert len(reader.session_ids()) == 5
        with store.batch(size=1):
            simulate(library, store, 5, seed=2, end=END)
            assert len(reader.session_ids()) == 10  # each write committed at once
        with pytest.raises(RuntimeError, match="stop"), store.batch(size=10_000):
            simulate(library, store, 5, seed=3, end=END)
            raise RuntimeError("stop")
        assert len(reader.session_ids()) == 10  # rolled back
        assert len(store.session_ids()) == 10
    finally:
        store.dispose()
        reader.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"journeys_sim_{uuid.uuid4().hex[:8]}"
    requires("postgresql")
    dsn = PG_DSN
    admin = psycopg.connect(dsn, autocommit=True)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_batch_on_postgresql_pipelines_and_replays(pg_url: str) -> None:
    store = SqlStore(pg_url)
    try:
        with store.batch(size=50):
            summary = simulate(Library(SHIPPED), store, 80, seed=5, end=END)
        ids = store.session_ids()
        assert len(ids) == summary.sessions == 80
        for sid in ids[::8]:
            records = store.events(sid)
            stored = store.load(sid)
            rebuilt = replay(store.load_bundle(stored.definition), records[0], records)
            assert rebuilt.to_dict() == stored.to_dict(), sid
        with pytest.raises(RuntimeError), store.batch():
            simulate(Library(SHIPPED), store, 3, seed=6, end=END)
            raise RuntimeError("stop")
        assert len(store.session_ids()) == 80
    finally:
        store.dispose()


# --------------------------------------------------------------------------- the CLI


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["--library", str(SHIPPED), "simulate", *args])


def test_the_command_prints_a_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = invoke("--sessions", "40", "--days", "7", "--seed", "3", "--db", url)
    assert result.exit_code == 0, result.output
    assert "40 sessions" in result.output and "events written to " + url in result.output
    assert "outcomes: resolved" in result.output and "seed 3, over 7 days" in result.output
    assert "\nmotives: " in result.output and "repeat contacts " in result.output
    again = invoke("--sessions", "40", "--seed", "3", "--db", url)
    assert again.exit_code == 1
    assert "already holds the sessions of seed 3: give another --seed" in again.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sessions", "0"], "Invalid value for '--sessions': 0 is not in the range x>=1"),
        (["--sessions", "many"], "'many' is not a valid integer"),
        (["--sessions", "5", "--days", "0"], "Invalid value for '--days'"),
        ([], "Missing option '--sessions'"),
    ],
)
def test_bad_options_exit_2(args: list[str], says: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and says in result.output


def test_an_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    down = invoke("--sessions", "5", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    assert down.exit_code == 1 and "cannot open the session database" in down.output
    old = tmp_path / "old.db"
    SqlStore(f"sqlite:///{old}").dispose()
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    refused = invoke("--sessions", "5", "--db", f"sqlite:///{old}")
    assert refused.exit_code == 1 and "run 'journeys db upgrade'" in refused.output
    assert isinstance(refused.exception, SystemExit)  # a message, no traceback
