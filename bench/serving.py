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
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

# The project root, so that the modules beside this script import as the package `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import (
    ANSWERS,
    JOURNEY,
    STEPS,
    Run,
    answers_ok,
    check_database,
    drive,
    drop_pg,
    pg_database,
    start_server,
)
from bench.ports import free_port

ROOT = Path(__file__).resolve().parents[1]

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
    if answers_ok(url + "/health", 400, 0.3):
        return proc, url
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
        whole = actions_on(label, args, library)
        broken = broken or not whole
    return not broken


@dataclass
class ActionsRun:
    """What a run with back-office actions measured, besides the load run itself."""

    run: Run
    warm: float  # seconds of the warm-up session
    first: str  # the warm-up session's id
    spent: dict[str, float]  # CPU seconds of each part (server, action host, Prefect)
    wall: float  # seconds from the load's start until its last session ended


def actions_on(label: str, args: argparse.Namespace, library: Path) -> bool:
    """One Prefect database (``label``): the run, its figures and checks. True when whole."""
    tag = "pg" if label.startswith("PostgreSQL") else "sqlite"
    db = f"sqlite:///{args.out / f'sessions-actions-{tag}.db'}"
    measured = measure_actions(args, library, tag, db)
    run = measured.run
    check = check_database(db, [measured.first, *run.ids]) + "; " + check_actions(db, run.ids)
    run.print_row(f"{label:34s}", f"{check} (warm-up {measured.warm:.1f} s)")
    print_cpu(measured)
    whole = not run.errors and check.startswith("all") and "; all" in check
    if args.rate == 200:
        met = whole and run.figures()[2] < 250
        print(f"{'':34s} target {'met' if met else 'MISSED'}")
    return whole


def measure_actions(args: argparse.Namespace, library: Path, tag: str, db: str) -> ActionsRun:
    """`journeys serve` with its back office, on the Prefect database of ``tag``: a warm-up
    session, then the load, with the CPU each part spent; everything stopped afterwards."""
    home = args.out / f"home-actions-{tag}"
    env = {"JOURNEYS_BACKOFFICE_DB": f"sqlite:///{args.out / f'backoffice-{tag}.db'}"}
    env["JOURNEYS_EXECUTOR"] = "prefect"  # the default, said out loud
    prefect: subprocess.Popen[bytes] | None = None
    pg_name = None
    if tag == "pg":
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
    return ActionsRun(run, warm, first, spent, wall)


def print_cpu(measured: ActionsRun) -> None:
    """Why the floor is what it is: the CPU each part spent per action during the run (the
    load is CPU-bound on a small machine: a core gives 1000 ms a second)."""
    spent, wall = measured.spent, measured.wall
    actions = max(1, 2 * len(measured.run.ids))
    print(
        f"{'':34s} CPU per action: "
        + ", ".join(f"{name} {spent[name] / actions * 1000:.1f} ms" for name in spent)
        + f" = {sum(spent.values()) / actions * 1000:.1f} ms"
        f" ({sum(spent.values()) / wall:.2f} cores over the {wall:.0f} s run)"
    )
    cores = os.cpu_count() or 1
    per_step = sum(spent.values()) / max(1, STEPS * len(measured.run.ids))
    print(
        f"{'':34s} so {cores} cores, all ours, step at most {cores / per_step:.0f} steps/s"
        " of this journey (more cores, or the host and Prefect on other machines, for more)"
    )


# ------------------------------------------------------------------ the HTTP runs


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
    if not http_runs(args, library):
        sys.exit("errors, or sessions lost or applied twice: see above")


def http_runs(args: argparse.Namespace, library: Path) -> bool:
    """Each configuration flat out then paced. True when no error and every session whole."""
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
    broken = False  # an error or a session not whole: the run fails (CI runs a small one)
    for label, db, workers, pg_name in configurations(args.out):
        whole = http_run(args, library, label, db, workers, pg_name)
        broken = broken or not whole
    return not broken


def configurations(out: Path) -> list[tuple[str, str, int, str | None]]:
    """(label, database URL, processes, PostgreSQL database name) of each configuration;
    the PostgreSQL databases are created here."""
    configs: list[tuple[str, str, int, str | None]] = [
        ("SQLite file, 1 process", f"sqlite:///{out / 'sessions.db'}", 1, None),
        ("SQLite file, 2 processes", f"sqlite:///{out / 'sessions2.db'}", 2, None),
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
    return configs


def http_run(
    args: argparse.Namespace,
    library: Path,
    label: str,
    db: str,
    workers: int,
    pg_name: str | None,
) -> bool:
    """One configuration: a server, a run flat out and a paced one, their figures and the
    database check. True when no error and every session whole."""
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
        run.print_row(
            f"{label if mode == 'flat out' else '':26s} {mode:9s}",
            check if mode == "paced" else "",
        )
    capacity = runs["flat out"].figures()[0]
    paced_p99 = runs["paced"].figures()[2]
    errors = sum(len(r.errors) for r in runs.values())
    whole = not errors and check.startswith("all")
    if args.sessions == 200 and args.rate == 500:
        met = capacity >= 500 and paced_p99 <= 50 and whole
        print(f"{'':26s} target {'met' if met else 'MISSED'}")
    if pg_name:
        drop_pg(pg_name)
    return whole


if __name__ == "__main__":
    main()
