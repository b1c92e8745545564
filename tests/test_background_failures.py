"""Background actions (``wait: false``, ``after``) that fail are never silent: retried per
their settings, recorded with their reason, shown on the session, counted in the report, and
run again by `journeys runs retry ID` with the same idempotency key (a refund is never made
twice). Tested with the back-office database really unreachable, then back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from actions.backoffice import once
from cli import main
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.sql.reporting import build_report
from engine.adapters.sql.store import SqlStore, action_runs
from engine.definitions.library import Library
from engine.insight.report import as_text
from engine.sessions.service import Sessions
from tests.test_store import db_url, pg_server  # noqa: F401  (fixtures: both databases)

DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/none"

GOODWILL = """
journey: goodwill
version: 1
title: A goodwill refund, made in the background
inputs:
  customer_id: {type: string}
start: ask_order
nodes:
  ask_order:
    kind: ask
    say: "Which order?"
    field: order_id
    schema: {type: string}
    next: refund
  refund:
    kind: action
    action: payments.refund
    input: {order_id: =order_id, amount: 5, reason: goodwill}
    wait: false
    retries: 1
    next: done
  done:
    kind: end
    outcome: resolved
    after:
      - action: notify.send
        input: {customer_id: =customer_id, channel: email, template: goodwill_refund}
        retries: 1
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "goodwill.yaml").write_text(GOODWILL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOURNEYS_LIBRARY", str(library))
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def refunds_of(order_id: str) -> list[dict[str, object]]:
    shown = invoke("backoffice", "show", "refunds", "--limit", "1000", "--format", "json")
    return [r for r in json.loads(shown.stdout) if r["order_id"] == order_id]


def test_a_failed_background_action_is_recorded_listed_and_run_again_once(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    answers = folder / "answers.yaml"
    answers.write_text('ask_order: "10000001"\n')
    ran = invoke(
        "run", "goodwill", "--input", "customer_id=C001", "--answers", str(answers),
        "--format", "json",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output  # the outcome is the journey's: resolved
    data = json.loads(ran.stdout)
    assert data["outcome"] == "resolved"
    failed = {f["action"]: f for f in data["failed_actions"]}
    assert set(failed) == {"payments.refund", "notify.send"}
    assert failed["payments.refund"]["mode"] == "background"
    assert failed["notify.send"]["mode"] == "after"
    assert all(f["attempts"] == 2 for f in failed.values())  # retries: 1, then recorded
    assert "127.0.0.1" in failed["payments.refund"]["error"]  # the technical reason
    refund_id = failed["payments.refund"]["id"]
    assert f"journeys runs retry {refund_id}" in ran.stderr  # said, with what to do

    listed = invoke("runs", "--failed", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert {(r["session_id"], r["action"]) for r in rows} == {
        (data["session"], "payments.refund"),
        (data["session"], "notify.send"),
    }
    assert all(r["at"] and r["error"] for r in rows)
    text = invoke("runs", "--failed")
    assert f"{data['session']}  payments.refund (background, failed, 2 tries)" in text.stdout

    # Still down: run again, it fails again and stays listed.
    still = invoke("runs", "retry", str(refund_id), "--executor", "local")
    assert still.exit_code == 1 and "failed again" in still.stderr

    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{folder / 'bo.db'}")
    before = len(refunds_of("10000001"))
    done = invoke("runs", "retry", str(refund_id), "--executor", "local")
    assert done.exit_code == 0, done.output
    assert f"run {refund_id} (payments.refund) succeeded" in done.stdout
    assert len(refunds_of("10000001")) == before + 1
    twice = invoke("runs", "retry", str(refund_id), "--executor", "local")
    assert twice.exit_code == 0 and "already succeeded" in twice.stdout
    assert len(refunds_of("10000001")) == before + 1

    # The record lost after the refund was made (a crash before it was written): running it
    # again finds the refund under its key in the back office, and does not make another.
    store = SqlStore(f"sqlite:///{folder / 'sessions.db'}")
    with store.engine.begin() as conn:
        conn.execute(
            update(action_runs).where(action_runs.c.id == refund_id).values(status="failed")
        )
    store.dispose()
    assert invoke("runs", "retry", str(refund_id), "--executor", "local").exit_code == 0
    assert len(refunds_of("10000001")) == before + 1

    remaining = json.loads(invoke("runs", "--failed", "--format", "json").stdout)
    assert [r["action"] for r in remaining] == ["notify.send"]


def test_runs_needs_to_know_what_to_list_and_an_unknown_run_is_clear(folder: Path) -> None:
    nothing = invoke("runs")
    assert nothing.exit_code == 2 and "give --failed" in nothing.output
    unknown = invoke("runs", "retry", "999", "--executor", "local")
    assert unknown.exit_code == 1 and "there is no action run 999" in unknown.output


def test_a_run_the_session_waited_for_is_retried_with_its_session(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    store = SqlStore(f"sqlite:///{folder / 'sessions.db'}")
    lib = folder / "lib"
    (lib / "goodwill.yaml").write_text(GOODWILL.replace("    wait: false\n", ""))
    sessions = Sessions(Library(lib), store, LocalExecutor(ledger=once))
    s = sessions.start("goodwill", {"customer_id": "C001"})
    s = sessions.answer(s.id, "ask_order", "10000001")
    assert s.status == "incident"
    with store.engine.connect() as conn:
        run_id = conn.execute(select(action_runs.c.id)).scalar_one()
    store.dispose()
    refused = invoke("runs", "retry", str(run_id), "--executor", "local")
    assert refused.exit_code == 1 and "retry its session instead" in refused.output


def test_failed_background_runs_in_the_store_and_the_report(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "goodwill.yaml").write_text(GOODWILL, encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", DOWN)
    store = SqlStore(db_url)
    sessions = Sessions(Library(lib), store, LocalExecutor(ledger=once))
    for _ in range(2):
        s = sessions.start("goodwill", {"customer_id": "C001"})
        sessions.answer(s.id, "ask_order", "10000001")
    failed = store.failed_runs(s.id)
    assert sorted(f["action"] for f in failed) == ["notify.send", "payments.refund"]
    assert store.run(failed[0]["id"])["status"] == "failed"  # type: ignore[index]
    assert len(store.failed_runs()) == 4 and len(store.failed_runs(limit=1)) == 1
    report = build_report(store, Library(lib))
    rows = {f["action"]: f for f in report.as_dict()["incidents"]}
    assert rows["payments.refund"] == {
        "action": "payments.refund",
        "incidents": 0,
        "held": 0,
        "background_failed": 2,
    }
    assert rows["notify.send"]["background_failed"] == 2
    assert "Incidents by action" in as_text(report)
    store.dispose()
