"""Benchmark of `journeys serve` over loopback: many concurrent sessions driven to the end.

Starts the real server (uvicorn, 1 or 2 processes) on SQLite or PostgreSQL, runs N concurrent
sessions of a journey with three questions and a branch (start + 3 answers each) through the
HTTP API, and prints steps per second, p50/p99 latency and the error count per configuration.
Afterwards it checks the database: every session has exactly its steps, none lost, none
applied twice. Target (issue 5, this 2-core machine): >= 500 steps/s, p99 <= 50 ms, no errors.

Usage: python bench/http.py [--sessions 200] [--out bench/out/http]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file, named http.py,
# would hide the standard library's http package: the project root goes first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
import uuid

import httpx

ROOT = Path(__file__).resolve().parents[1]

JOURNEY = """journey: bench-http
version: 1
title: Three questions and a branch
inputs:
  customer_id: {type: string}
start: ask_order
nodes:
  ask_order:
    kind: ask
    say: "Which order?"
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    next: ask_days
  ask_days:
    kind: ask
    say: "How many days late?"
    field: days
    schema: {type: integer, minimum: 0}
    next: route
  route:
    kind: decide
    branches:
      - {if: days > 5, next: offer}
    else: done
  offer:
    kind: choose
    say: "What would you prefer?"
    field: remedy
    options:
      - {value: voucher, next: done}
      - {value: refund, next: done}
  done: {kind: end, outcome: resolved}
"""
ANSWERS = [("ask_order", "10000001"), ("ask_days", 7), ("offer", "voucher")]
STEPS = 1 + len(ANSWERS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    library: Path, db: str, workers: int, home: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "JOURNEYS_HOME": str(home), "JOURNEYS_EXECUTOR": "local"}
    env.pop("JOURNEYS_AGENT_KEYS", None)
    journeys = Path(sys.executable).with_name("journeys")
    proc = subprocess.Popen(
        [
            str(journeys),
            "--library",
            str(library),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--db",
            db,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/journeys", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start")


async def one_session(
    client: httpx.AsyncClient, latencies: list[float], errors: list[str], ids: list[str]
) -> None:
    began = time.perf_counter()
    r = await client.post(
        "/v1/sessions", json={"journey": "bench-http", "inputs": {"customer_id": "C001"}}
    )
    latencies.append(time.perf_counter() - began)
    if r.status_code != 201:
        errors.append(f"start {r.status_code}")
        return
    session = r.json()
    ids.append(session["id"])
    for node, value in ANSWERS:
        began = time.perf_counter()
        r = await client.post(
            f"/v1/sessions/{session['id']}/answers",
            json={"node": node, "value": value, "seq": session["seq"]},
        )
        latencies.append(time.perf_counter() - began)
        if r.status_code != 200:
            errors.append(f"{node} {r.status_code}: {r.text[:120]}")
            return
        session = {**session, **r.json()}


async def drive(url: str, sessions: int) -> tuple[float, list[float], list[str], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    ids: list[str] = []
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(
            *(one_session(client, latencies, errors, ids) for _ in range(sessions))
        )
        elapsed = time.perf_counter() - began
    return elapsed, latencies, errors, ids


def check_database(db: str, ids: list[str]) -> str:
    """Every session ended with exactly its steps: none lost, none applied twice."""
    from engine.adapters.sql_store import SqlStore

    store = SqlStore(db)
    bad = []
    for sid in ids:
        session = store.load(sid)
        answers = [e for e in store.events(sid) if e["type"] == "answer"]
        if session.outcome != "resolved" or len(answers) != len(ANSWERS):
            bad.append(sid)
    store.dispose()
    return "every session whole" if not bad else f"{len(bad)} sessions wrong"


def pg_database() -> str:
    import psycopg

    name = f"journeys_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "http")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    library = args.out / "library"
    library.mkdir(parents=True)
    (library / "bench-http.yaml").write_text(JOURNEY, encoding="utf-8")
    print(
        f"{args.sessions} concurrent sessions, {STEPS} steps each (start + {len(ANSWERS)} answers), over loopback"
    )
    print(
        f"{'configuration':38s} {'steps/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}  database check"
    )
    configs: list[tuple[str, str, int, str | None]] = [
        ("SQLite file, 1 process", f"sqlite:///{args.out / 'sessions.db'}", 1, None),
    ]
    for workers in (1, 2):
        name = pg_database()
        configs.append(
            (
                f"PostgreSQL, {workers} process{'es' if workers > 1 else ''}",
                f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                workers,
                name,
            )
        )
    for label, db, workers, pg_name in configs:
        home = args.out / f"home-{len(label)}-{workers}"
        proc, url = start_server(library, db, workers, home)
        try:
            elapsed, latencies, errors, ids = asyncio.run(drive(url, args.sessions))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        steps = len(latencies)
        ordered = sorted(latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = steps / elapsed
        verdict = "met" if rate >= 500 and p99 <= 50 and not errors else "MISSED"
        print(
            f"{label:38s} {rate:8.0f} {p50:8.1f} {p99:8.1f} {len(errors):7d}  {check_database(db, ids)}  (target: {verdict})"
        )
        for error in errors[:3]:
            print(f"    {error}")
        if pg_name:
            drop_pg(pg_name)


if __name__ == "__main__":
    main()
