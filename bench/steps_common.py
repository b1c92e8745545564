"""What the step benchmarks (bench/steps.py and its modes) share: the journey's run, the
figures, and a raw SQLite database as the store tunes it."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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


@dataclass
class Result:
    mode: str
    latencies: list[float] = field(default_factory=list)  # seconds, one per step
    elapsed: float = 0.0  # wall time of the measured run
    cpu: float = 0.0  # CPU time of this process in the measured run (steadier when shared)
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
        self._start, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.result.elapsed = time.perf_counter() - self._start
        self.result.cpu = time.process_time() - self._cpu

    def time(self, call: Callable[[], T]) -> T:
        began = time.perf_counter()
        value = call()
        self.result.latencies.append(time.perf_counter() - began)
        return value


def mean_kb(sizes: list[int]) -> float:
    return sum(sizes) / len(sizes) / 1000 if sizes else 0.0


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
