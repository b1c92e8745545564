"""Exactly-once effects: a step repeated after a crash never issues a second refund."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from actions.backoffice import once
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.sessions.service import Sessions
from tests.conftest import ROOT

JOURNEY = """
journey: refund-once
version: 1
title: A refund, then the end
start: ask_order
nodes:
  ask_order:
    kind: ask
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    next: refund
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: 4.9, reason: crash test refund}
    output: refund
    on_error: sorry
    next: done
  sorry: {kind: handoff, queue: billing}
  done: {kind: end, outcome: resolved}
"""


def refunds(url: str) -> list[tuple[str, float]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT refund_id, amount FROM refunds WHERE reason = 'crash test refund'")
        ).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_killed_between_dispatch_and_record_one_refund_never_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "refund-once.yaml").write_text(JOURNEY)
    backoffice = f"sqlite:///{tmp_path / 'backoffice.db'}"
    sessions_db = f"sqlite:///{tmp_path / 'sessions.db'}"
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", backoffice)
    store = SqlStore(sessions_db)
    sessions = Sessions(Library(library), store, LocalExecutor(ledger=once))
    s = sessions.start("refund-once", {})

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.run(
        [sys.executable, "-m", "tests.workers.refund_crash", str(library), sessions_db, s.id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    assert "refunded" in worker.stdout  # the back office did it...
    assert len(refunds(backoffice)) == 1
    assert sessions.get(s.id).node == "ask_order"  # ...but the session never saved the step

    # The agent (or the client) gives the answer again: same step, same idempotency key.
    s = sessions.answer(s.id, "ask_order", "10000001")
    assert (s.status, s.outcome) == ("ended", "resolved")
    [(refund_id, amount)] = refunds(backoffice)
    assert s.context["refund"] == {"refund_id": refund_id, "amount": amount}
    store.dispose()
