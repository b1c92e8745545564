"""Benchmark of `journeys serve` over loopback: many concurrent sessions driven to the end.

Starts the real server (uvicorn) on a SQLite file and on PostgreSQL, each with 1 and with 2
processes (two processes share the database), runs N concurrent
sessions of a journey with three questions and a branch (start + 3 answers each) through the
HTTP API, and prints steps per second, p50/p99 latency and the error count per configuration.
Afterwards it checks the database: every session has exactly its steps, none lost, none
applied twice. Target (issue 5, this 2-core machine): >= 500 steps/s, p99 <= 50 ms, no errors.

With --actions, instead: every session runs two back-office actions (crm.get_customer, then
tickets.create) through the default executor (Prefect task runs via the action host), paced at
--rate, with Prefect's embedded server (SQLite) and with a Prefect server on PostgreSQL
(the README's scale-out set-up). Target (issue 11): at 200 steps/s, no error and p99 < 250 ms.

Usage: python bench/serving.py [--sessions 200] [--seconds 10] [--rate 500] [--actions] [--out bench/out/serving]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx  # only to wait for the server

if TYPE_CHECKING:
    import aiohttp  # the bench extra; imported when the load starts, so that --help needs none

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
# The same journey with two back-office actions per session (--actions): the customer's
# record after the first answer, a ticket after the last (real shipped actions, written to
# the demo back office through its idempotency ledger).
JOURNEY_ACTIONS = (
    JOURNEY.replace("journey: bench-http", "journey: bench-actions")
    .replace("title: Three questions and a branch", "title: Three questions, a branch, two actions")
    .replace("    next: ask_days\n", "    next: lookup\n", 1)
    .replace(
        "  ask_days:\n",
        "  lookup:\n    kind: action\n    action: crm.get_customer\n"
        "    input: {customer_id: =customer_id}\n    output: customer\n"
        "    on_error: done\n    next: ask_days\n  ask_days:\n",
    )
    .replace(
        "next: done}\n      - {value: refund, next: done}",
        "next: ticket}\n      - {value: refund, next: ticket}",
    )
    .replace("    else: done\n", "    else: ticket\n")
    .replace(
        "  done: {kind: end, outcome: resolved}\n",
        "  ticket:\n    kind: action\n    action: tickets.create\n"
        "    input: {queue: support, summary: late delivery, customer_id: =customer_id}\n"
        "    output: ticket\n    on_error: done\n    next: done\n"
        "  done: {kind: end, outcome: resolved}\n",
    )
)

STEPS = 1 + len(ANSWERS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/journeys", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
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


# ------------------------------------------------------ runs with back-office actions


def start_prefect_on_postgres(home: Path, database: str) -> tuple[subprocess.Popen[bytes], str]:
    """A Prefect server of its own with PostgreSQL behind it (the README's scale-out set-up)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        ),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    with (home / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(400):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    sys.exit(f"the Prefect server on PostgreSQL did not start; see {home / 'server.log'}")


def warm_up(url: str) -> tuple[float, str]:
    """One session to the end before the load, once the back office `journeys serve` starts
    (the embedded Prefect server and the action host) says ready. Seconds it took."""
    began = time.perf_counter()
    with httpx.Client(base_url=url, timeout=180) as client:
        # `journeys serve` starts the back office in the background: wait until it says ready
        # (a request before that is answered 503, nothing done), so the load measures actions.
        state = "?"
        for _ in range(600):
            state = str(client.get("/v1/health").json().get("backoffice"))
            if state == "ready":
                break
            time.sleep(0.5)
        else:
            sys.exit(f"the back office did not become ready in 300 s (it says {state!r})")
        body = client.post(
            "/v1/sessions", json={"journey": "bench-actions", "inputs": {"customer_id": "C001"}}
        ).json()
        for node, value in ANSWERS:
            r = client.post(
                f"/v1/sessions/{body['id']}/answers",
                json={"node": node, "value": value, "seq": body["seq"]},
            )
            if r.status_code != 200:
                sys.exit(f"the warm-up session failed at {node}: {r.status_code} {r.text[:200]}")
            body = r.json()
    if body.get("outcome") != "resolved":
        sys.exit(f"the warm-up session did not resolve: {str(body)[:300]}")
    return time.perf_counter() - began, str(body["id"])


def check_actions(db: str, ids: list[str]) -> str:
    """Each session ran its two actions once, both succeeded, each with its Prefect run."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT session_id, status, run_id FROM action_runs WHERE mode = 'wait'")
        ).all()
    engine.dispose()
    wanted = set(ids)
    mine = [r for r in rows if r[0] in wanted]
    good = [r for r in mine if r[1] == "succeeded" and r[2]]
    if len(good) != 2 * len(ids) or len(mine) != len(good):
        return f"{len(mine) - len(good)} action runs failed, {2 * len(ids) - len(good)} missing"
    return f"all {len(good)} actions ran"


def cpu_seconds(session: int) -> float:
    """CPU time (user + system) of the processes of one process session (a server and the
    processes it started), from /proc; 0 where /proc is not there."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat, counted after the name
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def back_office_sessions(home: Path, prefect: subprocess.Popen[bytes] | None) -> dict[str, int]:
    """The process sessions of the action host and of the Prefect server (each started in
    its own session)."""
    import json

    folder = home / "prefect"
    found = {"action host": int(json.loads((folder / "host.json").read_text())["pid"])}
    if prefect is not None:
        found["Prefect server"] = prefect.pid
    else:
        found["Prefect server"] = int(json.loads((folder / "server.json").read_text())["pid"])
    return found


def action_runs(args: argparse.Namespace, library: Path) -> bool:
    """--actions: every session runs two back-office actions through the default executor
    (Prefect task runs through the action host), paced at --rate, with Prefect's embedded
    server (SQLite) and with a Prefect server on PostgreSQL. True when all went well."""
    print(
        f"{args.sessions} concurrent sessions for {args.seconds:g} s per run, each driven to the "
        f"end ({STEPS} steps, two of them running a back-office action: crm.get_customer, "
        f"tickets.create) through the default executor (Prefect task runs via the action host), "
        f"paced at {args.rate:g} steps/s; sessions on a SQLite file.\n"
        f"Target (issue 11, at 200 steps/s): no error, p99 < 250 ms, on both Prefect databases."
    )
    print(
        f"{'Prefect database':34s} {'steps/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'server p50/p99':>15s} {'errors':>7s}  checks"
    )
    broken = False
    for label in ("SQLite (the embedded server)", "PostgreSQL (a server of its own)"):
        on_pg = label.startswith("PostgreSQL")
        tag = "pg" if on_pg else "sqlite"
        home = args.out / f"home-actions-{tag}"
        db = f"sqlite:///{args.out / f'sessions-actions-{tag}.db'}"
        env = {"JOURNEYS_BACKOFFICE_DB": f"sqlite:///{args.out / f'backoffice-{tag}.db'}"}
        env["JOURNEYS_EXECUTOR"] = "prefect"  # the default, said out loud
        prefect: subprocess.Popen[bytes] | None = None
        pg_name = None
        if on_pg:
            pg_name = pg_database()
            prefect, env["PREFECT_API_URL"] = start_prefect_on_postgres(
                args.out / "prefect-pg", pg_name
            )
        proc, url = start_server(library, db, 1, home, env)
        try:
            warm, first = warm_up(url)
            parts = {"journeys serve": proc.pid, **back_office_sessions(home, prefect)}
            before = {name: cpu_seconds(sid) for name, sid in parts.items()}
            began = time.perf_counter()
            run = asyncio.run(drive(url, args.sessions, args.seconds, args.rate, "bench-actions"))
            wall = time.perf_counter() - began  # the sessions under way end after the deadline
            spent = {name: cpu_seconds(sid) - before[name] for name, sid in parts.items()}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
            journeys = Path(sys.executable).with_name("journeys")
            subprocess.run(  # the embedded server and the action host the first action started
                [str(journeys), "prefect", "stop"],
                env={**os.environ, "JOURNEYS_HOME": str(home), **env},
                capture_output=True,
            )
            if prefect is not None:
                os.killpg(prefect.pid, signal.SIGTERM)
                prefect.wait(30)
            if pg_name:
                drop_pg(pg_name)
        check = check_database(db, [first, *run.ids]) + "; " + check_actions(db, run.ids)
        rate, p50, p99 = run.figures()
        server = "{:6.1f} /{:6.1f}".format(*run.server())
        print(
            f"{label:34s} {rate:8.0f} {p50:8.1f} {p99:8.1f} {server:>15s} {len(run.errors):7d}"
            f"  {check} (warm-up {warm:.1f} s)"
        )
        for error in run.errors[:3]:
            print(f"    {error}")
        # Why the floor is what it is: the CPU each part spent per action during the run
        # (the load is CPU-bound on a small machine: a core gives 1000 ms a second).
        actions = max(1, 2 * len(run.ids))
        print(
            f"{'':34s} CPU per action: "
            + ", ".join(f"{name} {spent[name] / actions * 1000:.1f} ms" for name in spent)
            + f" = {sum(spent.values()) / actions * 1000:.1f} ms"
            f" ({sum(spent.values()) / wall:.2f} cores over the {wall:.0f} s run)"
        )
        cores, per_step = os.cpu_count() or 1, sum(spent.values()) / max(1, STEPS * len(run.ids))
        print(
            f"{'':34s} so {cores} cores, all ours, step at most {cores / per_step:.0f} steps/s"
            " of this journey (more cores, or the host and Prefect on other machines, for more)"
        )
        whole = not run.errors and check.startswith("all") and "; all" in check
        broken = broken or not whole
        if args.rate == 200:
            met = whole and p99 < 250
            print(f"{'':34s} target {'met' if met else 'MISSED'}")
    return not broken


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rate", type=float, default=500.0, help="steps/s of the paced run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "serving")
    parser.add_argument(
        "--actions",
        action="store_true",
        help="instead: sessions that run two back-office actions each, through the default "
        "executor (Prefect), on Prefect's embedded server (SQLite) and on PostgreSQL "
        "(try --rate 200)",
    )
    args = parser.parse_args()
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        sys.exit(
            "aiohttp is not installed: pip install -e '.[bench]' (the load generator needs it)"
        )
    # The load generator's own pauses would count as the server's: its start-up objects are
    # set aside from the garbage collector (gc.freeze), as the server does.
    gc.collect()
    gc.freeze()
    if args.out.exists():
        shutil.rmtree(args.out)
    library = args.out / "library"
    library.mkdir(parents=True)
    (library / "bench-http.yaml").write_text(JOURNEY, encoding="utf-8")
    if args.actions:
        (library / "bench-actions.yaml").write_text(JOURNEY_ACTIONS, encoding="utf-8")
        if not action_runs(args, library):
            sys.exit("errors, failed actions, or sessions lost or applied twice: see above")
        return
    print(
        f"{args.sessions} concurrent sessions for {args.seconds:g} s per run, each new session "
        f"driven to the end ({STEPS} steps: start + {len(ANSWERS)} answers), over loopback.\n"
        f"flat out: each step sent when the previous returns (capacity; latency is queueing: "
        f"p50 ~ {args.sessions} / steps per second).\n"
        f"paced: a pause of {args.sessions / args.rate:.2f} s (+-50%) between a session's steps, "
        f"offering {args.rate:g} steps/s in all (latency under that load).\n"
        f"server: the time the server itself spent (its Server-Timing header).\n"
        f"Target: flat out >= 500 steps/s, paced p99 <= 50 ms, no error, nothing lost."
    )
    print(
        f"{'configuration':26s} {'run':9s} {'steps/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'server p50/p99':>15s} {'errors':>7s}  database check"
    )
    configs: list[tuple[str, str, int, str | None]] = [
        ("SQLite file, 1 process", f"sqlite:///{args.out / 'sessions.db'}", 1, None),
        ("SQLite file, 2 processes", f"sqlite:///{args.out / 'sessions2.db'}", 2, None),
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
    broken = False  # an error or a session not whole: the run fails (CI runs a small one)
    for label, db, workers, pg_name in configs:
        home = args.out / f"home-{workers}-{pg_name or 'sqlite'}"
        proc, url = start_server(library, db, workers, home)
        runs = {}
        try:
            for mode, rate in (("flat out", 0.0), ("paced", args.rate)):
                runs[mode] = asyncio.run(drive(url, args.sessions, args.seconds, rate))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        check = check_database(db, [i for run in runs.values() for i in run.ids])
        for mode, run in runs.items():
            rate, p50, p99 = run.figures()
            server = "{:6.1f} /{:6.1f}".format(*run.server())
            print(
                f"{label if mode == 'flat out' else '':26s} {mode:9s} {rate:8.0f} {p50:8.1f} "
                f"{p99:8.1f} {server:>15s} {len(run.errors):7d}  {check if mode == 'paced' else ''}"
            )
            for error in run.errors[:3]:
                print(f"    {error}")
        capacity = runs["flat out"].figures()[0]
        paced_p99 = runs["paced"].figures()[2]
        errors = sum(len(r.errors) for r in runs.values())
        whole = not errors and check.startswith("all")
        broken = broken or not whole
        if args.sessions == 200 and args.rate == 500:
            met = capacity >= 500 and paced_p99 <= 50 and whole
            print(f"{'':26s} target {'met' if met else 'MISSED'}")
        if pg_name:
            drop_pg(pg_name)
    if broken:
        sys.exit("errors, or sessions lost or applied twice: see above")


if __name__ == "__main__":
    main()
