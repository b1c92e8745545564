"""Benchmark of the HTTP server's CPU per step, against the same steps done in process.

Starts the real `journeys serve` (uvicorn, one process) on a SQLite file on a random loopback
port, drives N sessions of bench/serving.py's journey to the end over HTTP (start + 3 answers
each) at a fixed concurrency, and prints:

- the server's CPU seconds per step, from /proc (utime + stime of every process of the
  server's process session, and the children it has reaped), read before and after the run;
- the Server-Timing p50/p99 (the server's own time per request);
- the reference, measured in the same run (the machine is shared, and machines differ 3x):
  the CPU per step of the same steps done in process, through the ``Sessions`` service on the
  same store, without HTTP; and the ratio HTTP CPU / in-process CPU. The sessions go in
  rounds, HTTP then in process, so that each ratio compares neighbours: the median is given.

Afterwards it checks the database: every session has exactly its steps, none lost, none
applied twice. Target (issue 13): half the HTTP server's CPU per step of before.

The file is not called bench/http.py: run as a script, it would hide the standard library's
http package (tests/test_bench.py).

Usage: python bench/http_cpu.py [--sessions 1000] [--concurrency 8] [--warm-up 50] [--rounds 5] [--out bench/out/http_cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import (  # noqa: E402  (after the path that finds them)
    ANSWERS,
    JOURNEY,
    STEPS,
    Run,
    check_database,
    percentiles,
    start_server,
)
from bench.serving import cpu_seconds  # noqa: E402

if TYPE_CHECKING:
    import aiohttp

JOURNEY_ID = "bench-http"
INPUTS = {"customer_id": "C001"}


def server_cpu(pid: int) -> float:
    """CPU seconds of the server started as `pid` in a process session of its own: its
    processes alive now, and the children it has waited for (counted in its own stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16, 17 of stat)
    return cpu_seconds(pid) + reaped / os.sysconf("SC_CLK_TCK")


def server_seconds(timing: str) -> float | None:
    """The server's own time from its header ``Server-Timing: app;dur=MS``."""
    return float(timing[len("app;dur=") :]) / 1000 if timing.startswith("app;dur=") else None


async def one_session(client: aiohttp.ClientSession, url: str, run: Run) -> None:
    """One session to the end: its start, then each answer with the seq the server gave."""
    session: dict[str, Any] = {}
    for node, value in [("", None), *ANSWERS]:
        if node:
            request = client.post(
                f"{url}/v1/sessions/{session['id']}/answers",
                json={"node": node, "value": value, "seq": session["seq"]},
            )
        else:
            request = client.post(
                url + "/v1/sessions", json={"journey": JOURNEY_ID, "inputs": INPUTS}
            )
        began = time.perf_counter()
        async with request as r:
            body = await r.json(content_type=None)
            timing = r.headers.get("server-timing", "")
        run.steps.append((began, time.perf_counter() - began, server_seconds(timing)))
        if r.status not in (200, 201):
            run.errors.append(f"{node or 'start'} {r.status}: {str(body)[:120]}")
            return
        if not node:
            run.ids.append(body["id"])
        session = {**session, **body}


async def drive(url: str, sessions: int, concurrency: int) -> Run:
    """`sessions` sessions to the end, `concurrency` of them under way at any moment."""
    import aiohttp

    run = Run()
    left = iter(range(sessions))

    async def user(client: aiohttp.ClientSession) -> None:
        for _ in left:  # shared: each session is taken by one user
            await one_session(client, url, run)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
    return run


@dataclass
class Served:
    """What the run measured, summed over its rounds."""

    run: Run = field(default_factory=Run)  # the HTTP steps measured
    cpu: float = 0.0  # the server's CPU seconds over them
    local_cpu: float = 0.0  # this process's CPU seconds over the in-process steps
    local_steps: int = 0
    ratios: list[float] = field(default_factory=list)  # HTTP / in process, per round
    check: str = ""


class InProcess:
    """The same sessions through the ``Sessions`` service, built as the server builds it, on
    the same SQLite file, in this process (one thread; the server is idle meanwhile)."""

    def __init__(self, library: Path, db: str) -> None:
        from actions.registry import account_actions, catalogue
        from engine.adapters.sql.store import SqlStore
        from engine.definitions.library import Library, refusals
        from engine.insight.scenarios import StubExecutor
        from engine.sessions.identity import IdentityGate
        from engine.sessions.service import Sessions

        lib, actions = Library(library), catalogue()
        self.store = SqlStore(db)
        gate = IdentityGate(**account_actions(actions))
        self.service = Sessions(lib, self.store, StubExecutor({}), refusals(lib, actions), gate)
        self.ids: list[str] = []

    def sessions(self, n: int) -> float:
        """CPU seconds of `n` sessions to the end."""
        began = time.process_time()
        for _ in range(n):
            session = self.service.start(JOURNEY_ID, INPUTS, actor="local agent", role="agent")
            for node, value in ANSWERS:
                session = self.service.answer(
                    session.id, node, value, seq=session.seq, actor="local agent", role="agent"
                )
            self.ids.append(session.id)
        return time.process_time() - began


def measure(args: argparse.Namespace, library: Path, db: str) -> Served:
    """The server started and warmed up, then rounds of HTTP sessions and of in-process
    ones in turn (the machine's load drifts: each round's ratio is of neighbours); the
    server stopped, the database checked."""
    served, local = Served(), InProcess(library, db)
    proc, url = start_server(library, db, 1, args.out / "home")
    try:
        warm = asyncio.run(drive(url, args.warm_up, args.concurrency))
        local.sessions(args.warm_up)
        for size in rounds(args.sessions, args.rounds):
            before = server_cpu(proc.pid)
            run = asyncio.run(drive(url, size, args.concurrency))
            spent = server_cpu(proc.pid) - before
            here = local.sessions(size)
            served.ratios.append((spent / max(1, len(run.steps))) / (here / (size * STEPS)))
            served.cpu, served.local_cpu = served.cpu + spent, served.local_cpu + here
            served.local_steps += size * STEPS
            served.run.steps += run.steps
            served.run.ids += run.ids
            served.run.errors += run.errors
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        local.store.dispose()
    served.check = check_database(db, [*warm.ids, *served.run.ids, *local.ids])
    served.run.errors[:0] = warm.errors
    return served


def rounds(sessions: int, count: int) -> list[int]:
    """`sessions` split into `count` rounds (at least one session each)."""
    count = max(1, min(count, sessions))
    return [sessions // count + (1 if i < sessions % count else 0) for i in range(count)]


def report(args: argparse.Namespace, served: Served) -> None:
    run = served.run
    http = served.cpu / max(1, len(run.steps)) * 1000
    here = served.local_cpu / max(1, served.local_steps) * 1000
    p50, p99 = percentiles([s[2] for s in run.steps if s[2] is not None])
    c50, c99 = percentiles([s[1] for s in run.steps])
    print(
        f"journeys serve (uvicorn, 1 process, SQLite file): {args.sessions} sessions x {STEPS} "
        f"steps (start + {len(ANSWERS)} answers), {args.concurrency} at a time, over loopback, "
        f"in {len(served.ratios)} rounds, each followed by as many in process "
        f"(after {args.warm_up} of each to warm up)"
    )
    print(
        f"{'HTTP server':12s} CPU {http:6.3f} ms/step ({served.cpu:.2f} s for {len(run.steps)} "
        f"steps, from /proc); Server-Timing p50 {p50:.2f} ms, p99 {p99:.2f} ms; client p50 "
        f"{c50:.2f} ms, p99 {c99:.2f} ms; errors {len(run.errors)}; {served.check}"
    )
    print(
        f"{'in process':12s} CPU {here:6.3f} ms/step ({served.local_cpu:.2f} s for "
        f"{served.local_steps} steps, the Sessions service on the same SQLite file, no HTTP)"
    )
    ratios = " ".join(f"{r:.2f}" for r in served.ratios)
    middle = statistics.median(served.ratios) if served.ratios else float("nan")
    print(f"ratio HTTP CPU / in-process CPU: {middle:.2f} (median of the rounds: {ratios})")
    for error in run.errors[:3]:
        print(f"    {error}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=1000, help="sessions measured")
    parser.add_argument("--concurrency", type=int, default=8, help="sessions under way at once")
    parser.add_argument("--warm-up", type=int, default=50, help="sessions before measuring")
    parser.add_argument("--rounds", type=int, default=5, help="HTTP and in-process in turn")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "http_cpu")
    args = parser.parse_args()
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        sys.exit(
            "aiohttp is not installed: pip install -e '.[bench]' (the load generator needs it)"
        )
    if not Path("/proc/self/stat").exists():
        sys.exit("the server's CPU is read from /proc: Linux only")
    gc.collect()
    gc.freeze()  # as the server does: no full collection of the start-up objects mid-run
    if args.out.exists():
        shutil.rmtree(args.out)
    library = args.out / "library"
    library.mkdir(parents=True)
    (library / f"{JOURNEY_ID}.yaml").write_text(JOURNEY, encoding="utf-8")
    db = f"sqlite:///{args.out / 'sessions.db'}"
    served = measure(args, library, db)
    report(args, served)
    if served.run.errors or not served.check.startswith("all"):
        sys.exit("errors, or sessions lost or applied twice: see above")


if __name__ == "__main__":
    main()
