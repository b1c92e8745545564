"""Benchmark of stepping sessions: in memory, persisted to SQLite, against SpiffWorkflow and raw SQL.

Writes a small library (one 10-node journey: 3 interactive steps, a branch, two stubbed
actions), checks it with ``journeys validate``, runs N sessions of it to completion and prints,
in one run, steps per second and p50/p99 latency per step for:

- (a) memory: ``Sessions`` on a ``MemoryStore``;
- (b) sqlite: ``Sessions`` on a ``SqlStore`` (SQLite file, WAL): the session is loaded from the
  database before every step, as a stateless server does, and each event is written in its own
  transaction (an answer that runs an action writes the answer and the action's result);
- (c) spiff: the same journey as a BPMN process run by SpiffWorkflow (the ``bench`` extra),
  its workflow serialized to JSON and stored in SQLite per step (SELECT, deserialize, complete
  the user task, run the engine, serialize, UPDATE the row, INSERT an event, commit);
- (d) raw: the SQLite floor, with sqlite3 alone: one SELECT, one UPDATE and one INSERT committed
  per step on one connection (WAL, synchronous=NORMAL as the store sets).

A step is the start of a session or one answer (the stubbed actions run inside the answer that
reaches them), so each session is 4 steps. Latency is measured around each call with
``time.perf_counter``; steps per second is steps over the wall time of the whole run.

Targets (issue 3): (b) >= 10x the steps per second of (c), (b) p99 < 2 ms, (b) within 4x of (d).

Usage: python bench/steps.py [--sessions 2000] [--spiff-sessions 300] [--out bench/out/steps]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from engine.adapters.sql_store import SqlStore
from engine.library import Library
from engine.runtime import ENDED, Session
from engine.scenarios import StubExecutor
from engine.service import MemoryStore, Sessions, SessionStore

ROOT = Path(__file__).resolve().parents[1]

JOURNEY = "bench-delivery"
INPUTS = {"customer_id": "C042"}
STUBS: dict[str, dict[str, Any]] = {
    "orders.get_tracking": {
        "order_id": "12345678",
        "status": "in_transit",
        "days_late": 7,
        "carrier": "Colissimo",
        "shipping_cost": 4.9,
        "amount": 59.0,
    },
    "payments.refund": {"refund_id": "R-0001", "amount": 4.9},
}
ANSWERS: list[tuple[str, Any]] = [
    ("ask_order", "12345678"),
    ("offer", "refund"),
    ("ask_comment", "The parcel was already late last time."),
]
PATH = ["ask_order", "fetch", "route", "offer", "refund", "ask_comment", "thanks", "done"]
STEPS_PER_SESSION = 1 + len(ANSWERS)
T = TypeVar("T")
WARMUP = 20  # sessions run before each measure (caches filled, code paths warm)

JOURNEY_YAML = """\
# yaml-language-server: $schema=../schemas/journey.schema.json
journey: bench-delivery
version: 1
title: Late parcel (benchmark)
motives: [bench.late]
channels: [phone, chat, selfcare]
inputs:
  customer_id: {type: string}
start: ask_order
nodes:
  ask_order:
    kind: ask
    say: Which order is it about?
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    next: fetch
  fetch:
    kind: action
    action: orders.get_tracking
    input: {order_id: =order_id}
    output: tracking
    retries: 2
    on_error: to_logistics
    next: route
  route:
    kind: decide
    branches:
      - {if: tracking.days_late > 5, next: offer}
    else: reassure
  offer:
    kind: choose
    say: "Your parcel is {{ tracking.days_late }} days late. What would you prefer?"
    field: compensation
    options:
      - {value: refund, label: A refund of the shipping costs, next: refund}
      - {value: nothing, label: Nothing, next: ask_comment}
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: =tracking.shipping_cost, reason: late delivery}
    output: refunded
    next: ask_comment
  reassure:
    kind: say
    say: "Your parcel is on its way with {{ tracking.carrier }}."
    next: ask_comment
  ask_comment:
    kind: ask
    say: Anything you want to add?
    field: comment
    schema: {type: string, maxLength: 500}
    next: thanks
  thanks:
    kind: say
    say: Thank you, we have noted it.
    next: done
  done:
    kind: end
    outcome: resolved
    say: Anything else I can do for you?
  to_logistics:
    kind: handoff
    queue: logistics
    reason: tracking unavailable
"""

MOTIVES_YAML = """\
motives:
  bench.late:
    title: Late parcel
    category: delivery
    journey: bench-delivery
    keywords: [late, parcel]
"""

SCENARIO_YAML = f"""\
# yaml-language-server: $schema=../schemas/scenario.schema.json
journey: bench-delivery
scenarios:
  - name: 7 days late, the customer takes the refund
    inputs: {json.dumps(INPUTS)}
    actions: {json.dumps(STUBS)}
    answers: {json.dumps(dict(ANSWERS))}
    expect:
      outcome: resolved
      path: {json.dumps(PATH)}
"""

# The same journey in BPMN 2.0: user tasks for the 3 interactive steps, script tasks for the two
# stubbed actions and the two `say` nodes on the way, exclusive gateways for the `decide` and for
# the options of the `choose`. (The `to_logistics` handoff, reached only when the tracking action
# fails, is left out: it would only make the process, and its serialization, bigger.)
BPMN = """\
<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="bench_definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bench_delivery" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="ask_order"/>
    <bpmn:userTask id="ask_order" name="Which order is it about?"/>
    <bpmn:sequenceFlow id="f1" sourceRef="ask_order" targetRef="fetch"/>
    <bpmn:scriptTask id="fetch" name="orders.get_tracking (stub)">
      <bpmn:script>tracking = {"order_id": order_id, "status": "in_transit", "days_late": 7, "carrier": "Colissimo", "shipping_cost": 4.9, "amount": 59.0}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="fetch" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="f_reassure"/>
    <bpmn:sequenceFlow id="f_offer" sourceRef="route" targetRef="offer">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">tracking["days_late"] &gt; 5</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_reassure" sourceRef="route" targetRef="reassure"/>
    <bpmn:userTask id="offer" name="What would you prefer?"/>
    <bpmn:sequenceFlow id="f3" sourceRef="offer" targetRef="options"/>
    <bpmn:exclusiveGateway id="options" default="f_nothing"/>
    <bpmn:sequenceFlow id="f_refund" sourceRef="options" targetRef="refund">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">compensation == "refund"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_nothing" sourceRef="options" targetRef="ask_comment"/>
    <bpmn:scriptTask id="refund" name="payments.refund (stub)">
      <bpmn:script>refunded = {"refund_id": "R-0001", "amount": tracking["shipping_cost"]}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="refund" targetRef="ask_comment"/>
    <bpmn:scriptTask id="reassure" name="say">
      <bpmn:script>messages = ["Your parcel is on its way with " + tracking["carrier"] + "."]</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="reassure" targetRef="ask_comment"/>
    <bpmn:userTask id="ask_comment" name="Anything you want to add?"/>
    <bpmn:sequenceFlow id="f6" sourceRef="ask_comment" targetRef="thanks"/>
    <bpmn:scriptTask id="thanks" name="say">
      <bpmn:script>messages = ["Thank you, we have noted it."]</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f7" sourceRef="thanks" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""


# ------------------------------------------------------------------------------ figures


@dataclass
class Result:
    mode: str
    latencies: list[float] = field(default_factory=list)  # seconds, one per step
    elapsed: float = 0.0  # wall time of the measured run
    notes: list[str] = field(default_factory=list)
    last_state: str = ""  # the stored state of the last session, as JSON

    @property
    def steps(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.steps / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the step latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1] * 1000


class Timer:
    """Collects the latency of each timed call and the wall time of the whole run."""

    def __init__(self, result: Result) -> None:
        self.result = result

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.result.elapsed = time.perf_counter() - self._start

    def time(self, call: Callable[[], T]) -> T:
        began = time.perf_counter()
        value = call()
        self.result.latencies.append(time.perf_counter() - began)
        return value


def mean_kb(sizes: list[int]) -> float:
    return sum(sizes) / len(sizes) / 1000 if sizes else 0.0


# ------------------------------------------------------------------------------ library


def write_library(folder: Path) -> str:
    """The benchmark's library, checked by ``journeys validate``: its summary line."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / f"{JOURNEY}.yaml").write_text(JOURNEY_YAML, encoding="utf-8")
    (folder / f"{JOURNEY}.test.yaml").write_text(SCENARIO_YAML, encoding="utf-8")
    (folder / "motives.yaml").write_text(MOTIVES_YAML, encoding="utf-8")
    journeys = Path(sys.executable).with_name("journeys")
    proc = subprocess.run(
        [str(journeys), "validate", "--no-cache", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"the benchmark's journey is not valid:\n{proc.stdout}{proc.stderr}")
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "valid"


# ------------------------------------------------------------- (a) and (b): journeys


def run_session(sessions: Sessions, timer: Timer) -> Session:
    """One session from start to end: 4 timed steps."""
    session = timer.time(partial(sessions.start, JOURNEY, INPUTS, channel="chat"))
    for node, value in ANSWERS:
        session = timer.time(partial(sessions.answer, session.id, node, value))
    return session


def check_done(session: Session, mode: str) -> None:
    """The journey really ran to its end on the expected path (else the figures mean nothing)."""
    if session.status != ENDED or session.outcome != "resolved" or session.path != PATH:
        sys.exit(
            f"{mode}: the session did not run as expected: status {session.status}, "
            f"outcome {session.outcome}, path {session.path}"
        )


def bench_journeys(mode: str, library: Library, store: SessionStore, n: int) -> Result:
    stubs = StubExecutor(STUBS)
    sessions = Sessions(library, store, stubs)  # one service, one library: as a server
    for _ in range(WARMUP):
        check_done(run_session(sessions, Timer(Result("warm-up"))), mode)
    result = Result(mode)
    with Timer(result) as timer:
        for _ in range(n):
            last = run_session(sessions, timer)
            check_done(last, mode)
            stubs.calls.clear()
            result.last_state = json.dumps(last.to_dict())
    return result


def bench_memory(library: Library, n: int) -> Result:
    return bench_journeys("(a) journeys, memory", library, MemoryStore(), n)


def bench_sqlite(library: Library, out: Path, n: int) -> Result:
    db = fresh_db(out / "journeys.db")
    store = SqlStore(f"sqlite:///{db}")
    try:
        result = bench_journeys("(b) journeys, SQLite WAL", library, store, n)
    finally:
        store.dispose()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        states = [r[0] for r in conn.execute("SELECT length(state) FROM sessions")]
        events = [
            r[0]
            for r in conn.execute(
                "SELECT sum(length(data)) FROM events GROUP BY session_id",
            )
        ]
        per_session = conn.execute(
            "SELECT count(*) * 1.0 / count(DISTINCT session_id) FROM events"
        ).fetchone()[0]
    result.notes.append(
        f"stored per session: state row {mean_kb(states):.1f} kB (JSON) + event log "
        f"{mean_kb(events):.1f} kB in {per_session:.0f} rows (start, 3 answers, 2 action results), "
        "one transaction per step: an answer is saved with the results of the actions it ran"
    )
    return result


def fresh_db(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def connect(path: Path) -> sqlite3.Connection:
    """A new database on one connection, transactions by hand, tuned as the store tunes SQLite:
    a session row and an append-only event log, unique by session and sequence number."""
    conn = sqlite3.connect(fresh_db(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(
        """
        CREATE TABLE sessions (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
            type TEXT NOT NULL, data TEXT NOT NULL, at TEXT NOT NULL,
            UNIQUE (session_id, seq)
        );
        """
    )
    return conn


def event_row(session_id: str, seq: int, kind: str, data: dict[str, Any]) -> tuple[Any, ...]:
    return (session_id, seq, kind, json.dumps(data), datetime.now(UTC).isoformat())


INSERT_EVENT = "INSERT INTO events (session_id, seq, type, data, at) VALUES (?, ?, ?, ?, ?)"


# ---------------------------------------------------------------------- (c) SpiffWorkflow


def bench_spiff(out: Path, n: int) -> Result | str:
    """The journey as a BPMN process, its workflow stored as JSON in SQLite per step."""
    try:
        from SpiffWorkflow.bpmn import BpmnWorkflow
        from SpiffWorkflow.bpmn.parser import BpmnParser
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
        from SpiffWorkflow.util.task import TaskState
    except ImportError:
        return "SpiffWorkflow is not installed: pip install -e '.[bench]' to compare with it"
    from importlib.metadata import version

    parser = BpmnParser()
    parser.add_bpmn_str(BPMN.encode())  # lxml refuses a str with an encoding declaration
    spec = parser.get_spec("bench_delivery")  # parsed once, as a server would
    serializer = BpmnWorkflowSerializer()
    conn = connect(out / "spiff.db")
    sizes: dict[str, list[int]] = {"start": [], "end": []}

    def start(sid: str) -> None:
        workflow = BpmnWorkflow(spec)
        workflow.data.update(INPUTS)
        workflow.do_engine_steps()
        state = str(serializer.serialize_json(workflow))
        conn.execute("BEGIN")
        conn.execute("INSERT INTO sessions (id, seq, state) VALUES (?, 1, ?)", (sid, state))
        conn.execute(INSERT_EVENT, event_row(sid, 1, "start", {"inputs": INPUTS}))
        conn.execute("COMMIT")
        sizes["start"].append(len(state))

    def answer(sid: str, node: str, value: Any) -> bool:
        seq, stored = conn.execute(
            "SELECT seq, state FROM sessions WHERE id = ?", (sid,)
        ).fetchone()
        workflow = serializer.deserialize_json(stored)
        task = workflow.get_next_task(state=TaskState.READY, manual=True)
        if task is None or task.task_spec.name != node:
            sys.exit(f"(c) spiff: expected the user task {node!r}, found {task}")
        field = {"ask_order": "order_id", "offer": "compensation", "ask_comment": "comment"}
        task.data[field[node]] = value
        task.run()
        workflow.do_engine_steps()
        state = str(serializer.serialize_json(workflow))
        conn.execute("BEGIN")
        done = conn.execute(
            "UPDATE sessions SET seq = ?, state = ? WHERE id = ? AND seq = ?",
            (seq + 1, state, sid, seq),
        )
        if done.rowcount != 1:
            sys.exit(f"(c) spiff: session {sid} moved on")
        conn.execute(
            INSERT_EVENT, event_row(sid, seq + 1, "answer", {"node": node, "value": value})
        )
        conn.execute("COMMIT")
        if workflow.completed:
            sizes["end"].append(len(state))
        return bool(workflow.completed)

    def run(sid: str, timer: Timer) -> None:
        timer.time(partial(start, sid))
        completed = [timer.time(partial(answer, sid, node, value)) for node, value in ANSWERS]
        if completed != [False, False, True]:
            sys.exit(f"(c) spiff: the workflow did not run as expected: {completed}")

    for i in range(WARMUP):
        run(f"w{i}", Timer(Result("warm-up")))
    for measured in sizes.values():
        measured.clear()
    result = Result(f"(c) SpiffWorkflow {version('SpiffWorkflow')}, SQLite WAL")
    with Timer(result) as timer:
        for i in range(n):
            run(f"s{i}", timer)
    conn.close()
    result.notes.append(
        f"stored per session: workflow JSON {mean_kb(sizes['start']):.1f} kB after the start, "
        f"{mean_kb(sizes['end']):.1f} kB at the end (serialized, parsed again every step)"
    )
    return result


# --------------------------------------------------------------------- (d) the SQLite floor


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


# ------------------------------------------------------------------------------- report


def print_table(results: list[Result]) -> None:
    print(f"{'mode':44s} {'steps':>7s} {'steps/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for r in results:
        print(
            f"{r.mode:44s} {r.steps:7d} {r.rate:9.0f} {r.percentile(50):8.3f} "
            f"{r.percentile(99):8.3f}"
        )
    for r in results:
        for note in r.notes:
            print(f"  {r.mode.split()[0]} {note}")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_ratios(sqlite: Result, spiff: Result | None, raw: Result) -> None:
    print("targets (issue 3):")
    if spiff is not None:
        ratio = sqlite.rate / spiff.rate
        print(
            f"  (b)/(c) steps per second: {ratio:6.1f} x   (target >= 10)   {verdict(ratio >= 10)}"
        )
    p99 = sqlite.percentile(99)
    print(f"  (b) p99 latency:          {p99:6.3f} ms  (target < 2)    {verdict(p99 < 2)}")
    floor = raw.rate / sqlite.rate
    print(f"  (d)/(b) steps per second: {floor:6.1f} x   (target <= 4)    {verdict(floor <= 4)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=2000, help="for (a), (b) and (d)")
    parser.add_argument("--spiff-sessions", type=int, default=300, help="for (c); 0 to skip")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "steps")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    summary = write_library(args.out / "library")
    print(
        f"journey: {JOURNEY}, 10 nodes, {len(ANSWERS)} interactive steps, a branch, "
        f"2 stubbed actions [{summary}]"
    )
    print(
        f"a step is a start or an answer ({STEPS_PER_SESSION} per session); "
        f"{args.sessions} sessions for (a), (b), (d), {args.spiff_sessions} for (c), "
        f"after {WARMUP} warm-up sessions each; databases in {args.out}"
    )
    library = Library(args.out / "library")
    memory = bench_memory(library, args.sessions)
    sqlite = bench_sqlite(library, args.out, args.sessions)
    spiff = bench_spiff(args.out, args.spiff_sessions) if args.spiff_sessions > 0 else None
    raw = bench_raw(args.out, args.sessions, memory.last_state)
    if isinstance(spiff, str):
        print(spiff)
        spiff = None
    print()
    print_table([r for r in (memory, sqlite, spiff, raw) if r is not None])
    print()
    print_ratios(sqlite, spiff, raw)


if __name__ == "__main__":
    main()
