"""Benchmark of `journeys report` on a history of 1,000,000 events, SQLite and PostgreSQL.

Fills a SQLite session database with `journeys simulate` (through the shipped library) until
it holds the events asked for, copies it into a scratch PostgreSQL database (COPY), then times
the whole `journeys report --format json` command (a fresh process, as a user runs it) on
each, best of 3. The report groups in the database; Python only adds up the rows returned.
Target (issue 6): <= 5 s on each database.

Usage: python bench/report.py [--events 1000000] [--out bench/out/report] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
JOURNEYS = Path(sys.executable).with_name("journeys")
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TABLES = ("definitions", "sessions", "events", "visits", "action_runs")


def count(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return n


def fill(db: Path, events: int) -> None:
    """Simulate sessions into ``db`` until it holds ``events`` events (reused if it does)."""
    url = f"sqlite:///{db}"
    have = count(url, "events") if db.exists() else 0
    per_session = 8.0
    batch = 0
    while have < events:
        sessions = max(500, int((events - have) / per_session * 1.02))
        print(f"  simulating {sessions:,} sessions ({have:,} events so far)...", flush=True)
        began = time.perf_counter()
        subprocess.run(
            [
                str(JOURNEYS),
                "simulate",
                "--sessions",
                str(sessions),
                "--db",
                url,
                "--seed",
                str(1000 + batch),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        now = count(url, "events")
        print(f"  {now - have:,} events in {time.perf_counter() - began:.0f} s", flush=True)
        per_session = max(1.0, (now - have) / sessions)
        have = now
        batch += 1


def copy_to_postgres(db: Path) -> str:
    """A scratch PostgreSQL database with the same history (schema made by journeys itself)."""
    name = f"journeys_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    subprocess.run(
        [str(JOURNEYS), "db", "upgrade", "--db", url],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    source = create_engine(f"sqlite:///{db}")
    with (
        source.connect() as src,
        psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as dst,
    ):
        for table in TABLES:
            columns = [r[1] for r in src.execute(text(f"PRAGMA table_info({table})"))]
            rows = src.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))
            with dst.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        dst.commit()
        dst.execute("ANALYZE")
        dst.commit()
    source.dispose()
    return name


def time_report(url: str, runs: int = 3) -> tuple[float, dict[str, object]]:
    best, data = float("inf"), {}
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run(
            [str(JOURNEYS), "report", "--format", "json", "--db", url],
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        best = min(best, time.perf_counter() - began)
        data = json.loads(done.stdout)
    return best, data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "report")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / f"history-{args.events}.db"
    os.environ.pop("JOURNEYS_DB", None)
    print(f"history: {db}")
    fill(db, args.events)
    sqlite_url = f"sqlite:///{db}"
    sizes = {t: count(sqlite_url, t) for t in ("sessions", "events", "visits")}
    print(
        f"history of {sizes['events']:,} events, {sizes['sessions']:,} sessions, "
        f"{sizes['visits']:,} node visits; {db.stat().st_size / 1e6:.0f} MB on SQLite"
    )
    print("copying into PostgreSQL...", flush=True)
    began = time.perf_counter()
    pg_name = copy_to_postgres(db)
    print(f"  copied in {time.perf_counter() - began:.0f} s")
    try:
        print(f"{'database':12s} {'report s':>9s}  {'sessions':>9s}  once-and-done  target <= 5 s")
        for label, url in (
            ("SQLite", sqlite_url),
            ("PostgreSQL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"),
        ):
            seconds, data = time_report(url)
            overall = data["overall"]
            assert isinstance(overall, dict)
            rate = overall["once_and_done_rate"]
            shown = f"{rate * 100:.1f}%" if isinstance(rate, float) else "-"
            print(
                f"{label:12s} {seconds:9.2f}  {overall['sessions']:9,}  {shown:>13s}  "
                f"{'met' if seconds <= 5 else 'MISSED'}"
            )
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
