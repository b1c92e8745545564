"""Benchmark of authority limits that add up: what a total per customer costs a step.

Runs N sessions of a one-voucher journey (answer: the amount; the step runs
``payments.issue_voucher``, stubbed) for N different customers, each step loading the session
from the store and saving it, as a server does, under three policies:

- per call: ``amount: {max: 30}`` (the reference: no total),
- per session: ``{max: 30, per_session: 30}`` (the session's own totals, no extra query),
- per customer: ``{max: 30, per_customer: {max: 30, over: 30d}}`` (one locked reservation in
  the grant ledger before the action runs),

on SQLite (a file, WAL) and on PostgreSQL when ``--pg`` gives a server URL (a database is
created and dropped). Prints p50/p99 of the answer step in ms and the ratio of each to the
per-call reference.

Usage: python bench/limits.py [--sessions 300] [--pg postgresql+psycopg://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MOTIVES = """motives:
  order.goodwill:
    title: {en: Goodwill}
    category: payments
    journey: goodwill
"""

JOURNEY = """journey: goodwill
version: 1
title: One goodwill voucher
motives: [order.goodwill]
inputs:
  customer_id: {type: string}
start: ask_amount
nodes:
  ask_amount:
    kind: ask
    field: amount
    schema: {type: number}
    next: voucher
  voucher:
    kind: action
    action: payments.issue_voucher
    input: {customer_id: =customer_id, amount: =amount}
    next: done
  done:
    kind: end
    outcome: resolved
"""

POLICIES = {
    "per call": "{max: 30}",
    "per session": "{max: 30, per_session: 30}",
    "per customer": "{max: 30, per_customer: {max: 30, over: 30d}}",
}


def library(folder: Path, rule: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "motives.yaml").write_text(MOTIVES)
    (folder / "goodwill.yaml").write_text(JOURNEY)
    (folder / "policies.yaml").write_text(
        f"roles:\n  agent:\n    payments.issue_voucher:\n      amount: {rule}\n"
    )
    return folder


def run(url: str, folder: Path, sessions: int) -> list[float]:
    from engine.adapters.sql.store import SqlStore
    from engine.definitions.library import Library
    from engine.insight.scenarios import StubExecutor
    from engine.sessions.service import Sessions

    store = SqlStore(url)
    stubs = StubExecutor({"payments.issue_voucher": {"voucher_code": "V1", "amount": 10}})
    service = Sessions(Library(folder), store, stubs)
    started = [service.start("goodwill", {"customer_id": f"C{i:05d}"}) for i in range(sessions)]
    times = []
    for s in started:
        t0 = time.perf_counter()
        done = service.answer(s.id, "ask_amount", 10)
        times.append((time.perf_counter() - t0) * 1000)
        if done.outcome != "resolved":
            raise SystemExit(f"the voucher of {s.id} was not granted: {done.handoff}")
    store.dispose()
    return times


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--pg", help="a PostgreSQL server URL without database name")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-limits-"))

    def sqlite_url(name: str) -> str:
        return f"sqlite:///{work / name}.db"

    databases: list[tuple[str, Callable[[str], str], Callable[[str], None] | None]] = [
        ("sqlite", sqlite_url, None)
    ]
    if args.pg:
        import psycopg

        admin_dsn = args.pg.replace("postgresql+psycopg://", "postgresql://") + "/postgres"

        def pg_url(name: str) -> str:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            return f"{args.pg}/{name}"

        def pg_drop(name: str) -> None:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        databases.append(("postgresql", pg_url, pg_drop))
    print(f"{args.sessions} answer steps each (one voucher, a new customer each time)")
    for kind, make_url, drop in databases:
        reference = None
        for label, rule in POLICIES.items():
            name = f"limits_{uuid.uuid4().hex[:8]}"
            folder = library(work / name, rule)
            times = run(make_url(name), folder, args.sessions)
            if drop is not None:
                drop(name)
            p50 = statistics.median(times)
            reference = reference or p50
            print(
                f"  {kind:<10} {label:<13} p50 {p50:6.2f} ms  p99 {p99(times):6.2f} ms"
                f"  x{p50 / reference:.2f} of per call"
            )


if __name__ == "__main__":
    main()
