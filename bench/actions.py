"""Benchmark of back-office actions run in Prefect.

Prints, in one run:
- what Prefect costs per action, each way of recording it (issue 11, item 8): a flow run per
  action (the way before), a task run outside any flow (with and without its cache and
  result storage), a task run in the dispatcher flow run with a new set of tags per session,
  and the way journeys runs them now (a task run in the dispatcher flow run, tags from small
  sets), in process and through the action host: p50/p95 and the ratio to the way before
  (machines differ; the ratio does not). Target: the default (the action host) adds <= 50 ms.
- the latency of a step (an answer) that passes no action, a ``wait: false`` action, a
  ``wait: true`` trivial action, with the actions run by the executor in process against
  the embedded server (started by journeys, as `journeys run` does), through the action host,
  and against a separately started local Prefect server (PREFECT_API_URL), and, for
  reference, in-process without Prefect. Targets: a ``wait: false`` action adds under 5 ms to
  its step; a ``wait: true`` action adds <= 50 ms.

Last, `journeys serve` as an agent meets it (issue 11): how soon the API answers
``GET /v1/health`` after the command starts, how long the back office takes to be ready, and
the first action after health says "ready" (target under 2 s), with the next actions'
median for reference. ``--first-action`` measures only that.

Usage: python bench/actions.py [--steps 40] [--out bench/out/actions] [--first-action]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# The project root, so that the modules beside this script import as the package `bench`
# (bench.echo_action, the benchmark's action, is loaded by that name).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.first_action import first_action_after_ready
from bench.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def journey(name: str, node: str) -> str:
    return f"""journey: {name}
version: 1
title: Benchmark {name}
start: first
nodes:
  first: {{kind: ask, field: a, next: {"act" if node else "second"}}}
{node}  second: {{kind: ask, field: b, next: done}}
  done: {{kind: end, outcome: resolved}}
"""


JOURNEYS = {
    "no action": journey("plain", ""),
    "wait: false action": journey(
        "async",
        "  act: {kind: action, action: bench.echo, input: {text: =a}, wait: false, next: second}\n",
    ),
    "wait: true action": journey(
        "sync",
        "  act: {kind: action, action: bench.echo, input: {text: =a}, output: r, next: second}\n",
    ),
}


def ms(values: list[float]) -> str:
    values = sorted(values)
    p50 = statistics.median(values) * 1000
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"


def measure(executor: Any, library: Path, steps: int) -> dict[str, list[float]]:
    from engine.definitions.library import Library
    from engine.sessions.service import MemoryStore, Sessions

    sessions = Sessions(Library(library), MemoryStore(), executor)
    ids = {"no action": "plain", "wait: false action": "async", "wait: true action": "sync"}
    found: dict[str, list[float]] = {}
    for label, jid in ids.items():
        times = []
        for i in range(steps + 3):
            s = sessions.start(jid, {})
            began = time.perf_counter()
            sessions.answer(s.id, "first", f"hello {i}")
            if i >= 3:  # warm-up: first flow runs create the flow objects and the client
                times.append(time.perf_counter() - began)
        found[label] = times
        drain = getattr(executor, "drain", None)
        if drain:  # background runs finish before the next measure, not during it
            drain()
    return found


def floor(steps: int, api: str) -> list[float]:
    """A trivial flow called directly: the way before (a flow run per action)."""
    from prefect import flow
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    trivial = flow(name="bench.echo.before", validate_parameters=False, persist_result=False)(
        lambda text: {"echo": text}
    )
    times = []
    with temporary_settings(
        updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_API_URL: api}
    ):
        for i in range(steps + 3):
            began = time.perf_counter()
            trivial(text=f"hello {i}")
            if i >= 3:
                times.append(time.perf_counter() - began)
    return times


def timed(steps: int, call: Callable[[int], object]) -> list[float]:
    times = []
    for i in range(steps + 3):
        began = time.perf_counter()
        call(i)
        if i >= 3:  # warm-up: the first calls create the flow and task objects, the client
            times.append(time.perf_counter() - began)
    return times


def _echo(text: str) -> dict[str, str]:
    return {"echo": text}


def _no_ledger(
    key: str, action: str, run: Callable[[], Mapping[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """An idempotency ledger that records nothing: each call runs the action."""
    return dict(run()), False


def _run_tags(i: int) -> list[str]:
    """The tags of a run before: session, node, motive (a new session tag each run)."""
    return [f"session:bench-{i}-{time.time_ns()}", "node:act", "motive:bench"]


def dispatch_options(steps: int, api: str) -> None:
    """Prefect's cost per action, each way of recording it, for a trivial action (its own
    time is nil, so the figure is the overhead)."""
    found = _runs_outside_the_dispatcher(steps, api)
    found.update(_runs_in_the_dispatcher(steps))
    print("\nPrefect's cost per action (a trivial action), each way of recording it:")
    before = statistics.median(found["a flow run per action (before)"])
    for label, times in found.items():
        ordered = sorted(times)
        p50, p95 = statistics.median(ordered), ordered[int(len(ordered) * 0.95)]
        line = f"  {label:48s} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  = {p50 / before:5.2f} x before"
        if "default" in label:
            line += f"   (target <= 50 ms: {'met' if p50 <= 0.050 else 'MISSED'})"
        print(line)


def _runs_outside_the_dispatcher(steps: int, api: str) -> dict[str, list[float]]:
    """A flow run per action (the way before), and a task run outside any flow."""
    from prefect import flow, tags, task
    from prefect.cache_policies import NO_CACHE
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    found: dict[str, list[float]] = {}
    settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_API_URL: api}
    with temporary_settings(updates=settings):
        ways = {
            "a flow run per action (before)": flow(
                name="bench.echo", validate_parameters=False, persist_result=False
            )(_echo),
            "a task run, outside any flow": task(name="bench.echo")(_echo),
            "  the same, NO_CACHE, persist_result=False": task(
                name="bench.echo", cache_policy=NO_CACHE, persist_result=False
            )(_echo),
        }
        for label, run in ways.items():

            def call(i: int, run: Any = run) -> None:
                with tags(*_run_tags(i)):
                    run(text=f"hello {i}")

            found[label] = timed(steps, call)
    return found


def _runs_in_the_dispatcher(steps: int) -> dict[str, list[float]]:
    """Task runs in the dispatcher flow run: with tags per session, then as journeys runs
    them (in process, then through the action host)."""
    from actions.registry import catalogue
    from engine.adapters.execution.action_host import HostExecutor
    from engine.adapters.execution.prefect_actions import PrefectExecutor
    from engine.adapters.execution.prefect_dispatch import Job
    from engine.sessions.runtime import RunAction, Session

    found: dict[str, list[float]] = {}
    executor = PrefectExecutor(actions=catalogue(), ledger=_no_ledger)
    spec = executor.actions["bench.echo"]

    def session_tags(i: int) -> None:
        job = Job(
            executor._task(spec, 0, None),
            {"key": f"bench:{i}:1", "inputs": {"text": "hi"}},
            _run_tags(i),
            executor._outcome,
        )
        executor.dispatcher.submit(job).result()

    found["a task run in the dispatcher, tags per session"] = timed(steps, session_tags)

    def effect(i: int) -> tuple[RunAction, Session]:
        session = Session(id=f"bench-{i}", journey="sync", version=1, definition="", motive="m")
        return RunAction(
            "act", "bench.echo", {"text": "hi"}, True, 0, None, f"bench-{i}:act:1"
        ), session

    found["a task run in the dispatcher (now), in process"] = timed(
        steps, lambda i: executor.run(*effect(i))
    )
    executor.close()
    host = HostExecutor()
    found["  the same, through the action host (default)"] = timed(
        steps, lambda i: host.run(*effect(i))
    )
    return found


def start_local_server(home: Path) -> tuple[int, str]:
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("prefect")),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=0.5):
                return proc.pid, url
        except OSError:
            time.sleep(0.3)
    sys.exit("the local Prefect server did not start")


def second_command(library: Path) -> None:
    """A new process while the embedded server and the action host run (the default
    executor of `journeys run`): how soon its first action is done, imports included."""
    code = (
        "import time; t = time.perf_counter();"
        "from pathlib import Path;"
        "from engine.adapters.execution.action_host import HostExecutor;"
        "from engine.definitions.library import Library; from engine.sessions.service import MemoryStore, Sessions;"
        f"s = Sessions(Library(Path({str(library)!r})), MemoryStore(), HostExecutor());"
        "x = s.start('sync', {}); x = s.answer(x.id, 'first', 'hi');"
        "print(round(time.perf_counter() - t, 2))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    times = []
    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        times.append(
            float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else float("nan")
        )
    best = min(times)
    print(
        f"a new command with the embedded server running: first action done {best:.2f} s after start "
        f"(imports included; target < 1 s: {'met' if best < 1 else 'MISSED'})"
    )


def measure_host(library: Path, steps: int, base: list[float]) -> dict[str, list[float]]:
    from engine.adapters.execution.action_host import HostExecutor

    return measure(HostExecutor(), library, steps)


def report(name: str, results: dict[str, list[float]], base: list[float] | None) -> None:
    print(f"\n{name}")
    plain = statistics.median(results["no action"])
    for label, times in results.items():
        added = (statistics.median(times) - plain) * 1000
        line = f"  step with {label:20s} {ms(times)}   adds {added:7.2f} ms"
        if label == "wait: false action":
            line += f"   (target < 5 ms: {'met' if added < 5 else 'MISSED'})"
        if label == "wait: true action" and base:
            ratio = (statistics.median(times) - plain) / statistics.median(base)
            line += (
                f"   = {ratio:4.2f} x a flow run (before) "
                f"(target <= 50 ms: {'met' if added <= 50 else 'MISSED'})"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "actions")
    parser.add_argument(
        "--first-action",
        action="store_true",
        help="Measure only the first action after `journeys serve` says ready.",
    )
    parser.add_argument("--against", help=argparse.SUPPRESS)  # the run in a new process
    args = parser.parse_args()
    if args.against:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        os.environ["JOURNEYS_ACTION_MODULES"] = "bench.echo_action"
        against(args.against, args.out / "library", args.steps)
        return
    library = write_library(args.out)
    set_environment(args.out)
    if args.first_action:
        first_action_after_ready(library, args.out)
        return
    embedded_server_runs(library, args.steps)
    local_server_runs(args.out, args.steps)
    first_action_after_ready(library, args.out)


def write_library(out: Path) -> Path:
    """A fresh ``out`` with the benchmark's journeys in ``out/library``."""
    if out.exists():
        shutil.rmtree(out)
    library = out / "library"
    library.mkdir(parents=True)
    for text in JOURNEYS.values():
        name = text.split("\n", 1)[0].split(": ")[1]
        (library / f"{name}.yaml").write_text(text, encoding="utf-8")
    return library


def set_environment(out: Path) -> None:
    """The journeys home, back office and actions of the benchmark, for this process and
    the ones it starts."""
    os.environ["JOURNEYS_HOME"] = str(out / "home")
    os.environ["JOURNEYS_ACTION_MODULES"] = "bench.echo_action"  # for the action host too
    os.environ["PYTHONPATH"] = str(ROOT)
    os.environ["JOURNEYS_BACKOFFICE_DB"] = f"sqlite:///{out / 'backoffice.db'}"
    os.environ.pop("PREFECT_API_URL", None)


def embedded_server_runs(library: Path, steps: int) -> None:
    """In process without Prefect (the reference), then with the embedded server: the ways
    of recording an action, the way before, task runs in process and through the host."""
    from engine.adapters.execution import prefect_server
    from engine.adapters.execution.local_actions import LocalExecutor
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    report(
        "in process, no Prefect (reference)",
        measure(LocalExecutor(ledger=_no_ledger), library, steps),
        None,
    )

    began = time.perf_counter()
    api = prefect_server.ensure_api(progress=False)
    print(
        f"\nembedded Prefect server started in {time.perf_counter() - began:.1f} s (once; reused afterwards)"
    )
    dispatch_options(steps, api)
    embedded = PrefectExecutor(ledger=_no_ledger)
    base = floor(steps, api)
    print(f"\nthe way before, a flow run per action (a trivial flow called directly): {ms(base)}")
    report(
        "Prefect task runs in process, embedded server",
        measure(embedded, library, steps),
        base,
    )
    embedded.close()
    second_command(library)
    host = measure_host(library, steps, base)
    report("Prefect task runs through the action host (the default of journeys run)", host, base)
    prefect_server.stop()


def local_server_runs(out: Path, steps: int) -> None:
    """The same against a Prefect server started on its own, in a new process: Prefect's
    events client is made once per process, for the first API it met (the embedded server,
    stopped by now)."""
    home = out / "local-server"
    home.mkdir()
    pid, url = start_local_server(home)
    try:
        command = [sys.executable, __file__, "--steps", str(steps), "--against", url]
        subprocess.run([*command, "--out", str(out)], check=True)
    finally:
        os.killpg(pid, signal.SIGTERM)


def against(url: str, library: Path, steps: int) -> None:
    """The executor against a Prefect server started on its own (PREFECT_API_URL)."""
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    os.environ["PREFECT_API_URL"] = url
    local = PrefectExecutor(ledger=_no_ledger)
    base = floor(steps, url)
    print(f"\nthe way before against the local server: {ms(base)}")
    report(
        f"Prefect task runs in process, local server at {url} (PREFECT_API_URL)",
        measure(local, library, steps),
        base,
    )
    local.close()


if __name__ == "__main__":
    main()
