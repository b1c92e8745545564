"""The load generator of bench/serving.py: the journey its users answer, the server it starts,
concurrent users driving sessions to the end through the HTTP API, and the check afterwards
that the database holds every session whole."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx  # only to wait for the server

from bench.ports import free_port

if TYPE_CHECKING:
    import aiohttp  # the bench extra; imported when the load starts, so that --help needs none

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


def answers_ok(url: str, tries: int, pause: float) -> bool:
    """Whether ``url`` answers 200 within ``tries`` polls, ``pause`` seconds apart."""
    for _ in range(tries):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    return False


def start_server(
    library: Path, db: str, workers: int, home: Path, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "JOURNEYS_HOME": str(home), "JOURNEYS_EXECUTOR": "local"}
    env.pop("JOURNEYS_AGENT_KEYS", None)
    env.update(env_extra or {})
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
    if answers_ok(url + "/v1/journeys", 300, 0.1):
        return proc, url
    proc.kill()
    sys.exit("the server did not start")


@dataclass
class Run:
    """What one load run measured: per step, when it was sent, how long it took as the client
    saw it, and the server's own time (its Server-Timing header)."""

    # The window measured: from when all users have arrived until the deadline.
    steady: tuple[float, float] = (0.0, 0.0)
    steps: list[tuple[float, float, float | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def measured(self) -> list[tuple[float, float, float | None]]:
        """The steps sent in the steady window: not while users were still arriving, nor
        after the deadline, when sessions finish with fewer and fewer users."""
        begin, end = self.steady
        return [s for s in self.steps if begin <= s[0] < end]

    def figures(self) -> tuple[float, float, float]:
        """Steps per second sent in the steady window, p50 and p99 in milliseconds, as the
        client saw them."""
        begin, end = self.steady
        steps = self.measured()
        rate = len(steps) / (end - begin) if end > begin else 0.0
        return rate, *percentiles([s[1] for s in steps])

    def server(self) -> tuple[float, float]:
        return percentiles([s[2] for s in self.measured() if s[2] is not None])

    def print_row(self, head: str, tail: str) -> None:
        """The run's line of the table between ``head`` and ``tail`` (steps/s, p50, p99, the
        server's p50/p99, errors), and its first errors below it."""
        rate, p50, p99 = self.figures()
        server = "{:6.1f} /{:6.1f}".format(*self.server())
        print(
            f"{head} {rate:8.0f} {p50:8.1f} {p99:8.1f} {server:>15s} {len(self.errors):7d}  {tail}"
        )
        for error in self.errors[:3]:
            print(f"    {error}")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    if not ordered:
        return 0.0, 0.0
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def one_user(
    client: aiohttp.ClientSession,
    url: str,
    run: Run,
    deadline: float,
    pause: float,
    journey: str = "bench-http",
) -> None:
    """One agent or customer: sessions to the end, one after another, until the deadline.
    With `pause`, each step waits about that long after the previous one was sent (0.5x to
    1.5x, so that users do not march in step): a person reading and typing."""
    import aiohttp

    rng = random.Random()
    next_send = time.perf_counter() + rng.uniform(0, pause)  # users arrive spread out
    while time.perf_counter() < deadline:
        session: dict[str, Any] = {}
        for node, value in [("", None), *ANSWERS]:
            if pause:
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                next_send += rng.uniform(0.5 * pause, 1.5 * pause)
            began = time.perf_counter()
            if began >= deadline and not node:
                return  # no new session after the deadline
            if not node:
                request = client.post(
                    url + "/v1/sessions",
                    json={"journey": journey, "inputs": {"customer_id": "C001"}},
                )
            else:
                request = client.post(
                    f"{url}/v1/sessions/{session['id']}/answers",
                    json={"node": node, "value": value, "seq": session["seq"]},
                )
            try:
                async with request as r:
                    body = await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as err:
                run.errors.append(f"{node or 'start'}: {err!r}")
                return
            timing = r.headers.get("server-timing", "")
            server = (
                float(timing[len("app;dur=") :]) / 1000 if timing.startswith("app;dur=") else None
            )
            run.steps.append((began, time.perf_counter() - began, server))
            if r.status not in (200, 201):
                run.errors.append(f"{node or 'start'} {r.status}: {str(body)[:120]}")
                return
            if not node:
                run.ids.append(body["id"])
            session = {**session, **body}


async def drive(
    url: str, users: int, seconds: float, rate: float, journey: str = "bench-http"
) -> Run:
    """`users` concurrent sessions for `seconds`; with `rate`, paced to offer that many steps
    per second in all, else flat out (each step sent as soon as the previous one returns).
    One aiohttp client: httpx's pool costs milliseconds of CPU per request at 200
    connections, and the client shares this machine's two cores with the server."""
    import aiohttp

    run = Run()
    pause = users / rate if rate else 0.0
    connector = aiohttp.TCPConnector(limit=users)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as client:
        began = time.perf_counter()
        deadline = began + seconds
        # Users arrive over the first pause (and flat out, connections open in the first
        # moments): the figures count the steps sent from then on until the deadline.
        run.steady = (began + min(max(pause, 0.5), seconds / 4), deadline)
        await asyncio.gather(
            *(one_user(client, url, run, deadline, pause, journey) for _ in range(users))
        )
    return run


def check_database(db: str, ids: list[str]) -> str:
    """Every session ended with exactly its steps: none lost, none applied twice (counted in
    the database, not through the API that was measured)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    with engine.connect() as conn:
        resolved = {
            r[0] for r in conn.execute(text("SELECT id FROM sessions WHERE outcome = 'resolved'"))
        }
        answers: dict[str, int] = {
            r[0]: r[1]
            for r in conn.execute(
                text(
                    "SELECT session_id, count(*) FROM events WHERE type = 'answer' "
                    "GROUP BY session_id"
                )
            )
        }
        total = conn.execute(text("SELECT count(*) FROM sessions")).scalar_one()
    engine.dispose()
    bad = [i for i in ids if i not in resolved or answers.get(i) != len(ANSWERS)]
    if bad or total != len(ids):
        return f"{len(bad)} sessions wrong, {total - len(ids)} unexpected"
    return f"all {len(ids)} sessions whole"


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
