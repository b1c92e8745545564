"""Incidents with the back office really down (its database unreachable), then back: seen by
the agent over HTTP, retried by hand and by the server's own loop, handed off; the customer
reads that the request is kept; scenarios and the report know them. Nothing is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from actions.backoffice import once
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.http import create_app
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.sessions.retry_loop import RetryLoop, interval_from_environment
from engine.sessions.service import Sessions
from tests.conftest import SHIPPED
from tests.test_http import serving

#: A back-office database nobody answers on: the system is down, not the customer unknown.
DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/none"
BACKOFFICE = "JOURNEYS_BACKOFFICE_DB"


def back_office_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BACKOFFICE, f"sqlite:///{tmp_path / 'bo.db'}")


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with (
        serving(SHIPPED, tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


def wait_for(check: Callable[[], bool], seconds: float = 60.0) -> None:
    """Wait until ``check()`` holds (a background thread's work), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the awaited change did not happen")
        time.sleep(0.05)


# ------------------------------------------------------------------------------- HTTP


def test_the_agent_sees_the_incident_retries_it_and_the_session_goes_on(
    api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKOFFICE, DOWN)
    r = api.post(
        "/v1/sessions",
        json={"journey": "delivery-missing", "channel": "phone", "customer_id": "C001"},
    )
    assert r.status_code == 201, r.text
    started = r.json()
    sid = started["id"]
    assert started["status"] == "incident"
    step = started["step"]
    assert (step["kind"], step["node"], step["action"]) == (
        "incident",
        "identify/get_customer",
        "crm.get_customer",
    )
    assert step["since"] and step["retry_at"] > step["since"] and step["tries"] == 1
    full = api.get(f"/v1/sessions/{sid}").json()
    assert full["incident"]["action"] == "crm.get_customer"
    assert "127.0.0.1" in full["incident"]["message"]  # what failed, for the agent
    assert "last_error" not in full["context"]  # never the journey's "no such customer"
    assert "could not find" not in r.text.lower()

    # Held: no answer is taken meanwhile, and a retry while still down keeps it held.
    held = api.post(f"/v1/sessions/{sid}/answers", json={"node": "ask_order", "value": "x"})
    assert held.status_code == 409 and "incident" in held.json()["detail"]
    again = api.post(f"/v1/sessions/{sid}/retry", json={})
    assert again.status_code == 200, again.text
    assert again.json()["incident"]["tries"] == 2
    assert again.json()["incident"]["since"] == step["since"]

    back_office_up(monkeypatch, tmp_path)
    done = api.post(f"/v1/sessions/{sid}/retry", json={}).json()
    assert (done["status"], done["step"]["node"], done["incident"]) == (
        "waiting",
        "ask_order",
        None,
    )
    not_held = api.post(f"/v1/sessions/{sid}/retry", json={})
    assert not_held.status_code == 409
    assert not_held.json()["title"] == "No incident"
    assert "not held by an incident (it is waiting)" in not_held.json()["detail"]

    # Nothing lost: the journey goes on to its end, with the customer found after all.
    r = api.post(f"/v1/sessions/{sid}/answers", json={"node": "ask_order", "value": "10000001"})
    r = api.post(f"/v1/sessions/{sid}/answers", json={"node": "offer", "value": "refund"})
    assert r.json()["outcome"] == "resolved"
    final = api.get(f"/v1/sessions/{sid}").json()
    assert final["context"]["customer"]["customer_id"] == "C001"
    assert [e["type"] for e in final["transcript"]].count("retry") == 2


def test_an_incident_is_handed_off_to_the_back_office_queue(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKOFFICE, DOWN)
    sid = api.post("/v1/sessions", json={"journey": "delivery-missing", "customer_id": "C001"})
    sid_ = sid.json()["id"]
    r = api.post(f"/v1/sessions/{sid_}/handoff", json={})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["outcome"], body["handoff"]["queue"]) == (
        "ended",
        "escalated",
        "backoffice",
    )
    assert "crm.get_customer" in body["handoff"]["reason"]
    assert api.post(f"/v1/sessions/{sid_}/handoff", json={}).status_code == 409
    bad = api.post(f"/v1/sessions/{sid_}/handoff", json={"queue": "Not A Queue!"})
    assert bad.status_code == 422


def test_the_customer_reads_that_the_request_is_kept(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKOFFICE, DOWN)
    for locale, says in (("en", "Your request is kept"), ("fr", "Votre demande est conservée")):
        r = api.post(
            "/v1/sessions",
            json={
                "journey": "delivery-missing",
                "channel": "selfcare",
                "customer_id": "C001",
                "locale": locale,
            },
        )
        body = r.json()
        auth = {"Authorization": f"Bearer {body['token']}"}
        seen = api.get(f"/v1/sessions/{body['id']}", headers=auth)
        for shown in (r.text, seen.text):
            assert says in shown
            assert "crm.get_customer" not in shown.split('"actions"')[0]
            assert "127.0.0.1" not in shown  # nothing of the systems behind, to a customer
            assert "could not find" not in shown.lower() and "trouvé" not in shown.lower()
        step = seen.json()["step"]
        assert step["kind"] == "incident" and body["contact"] in step["text"]
        assert set(seen.json()["incident"]) == {"since", "retry_at"}  # no technical reason
        # Retrying and handing off are for agents.
        assert (
            api.post(f"/v1/sessions/{body['id']}/retry", json={}, headers=auth).status_code == 403
        )


def test_retry_and_handoff_are_in_the_openapi_description(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/sessions/{session_id}/retry"]
    assert "409" in paths["/v1/sessions/{session_id}/retry"]["post"]["description"]
    assert "post" in paths["/v1/sessions/{session_id}/handoff"]


# -------------------------------------------------------------------------- the loop


def test_the_retry_loop_goes_on_by_itself_once_the_back_office_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKOFFICE, DOWN)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    sessions = Sessions(Library(SHIPPED), store, LocalExecutor(ledger=once))
    s = sessions.start("delivery-missing", {"customer_id": "C001"}, channel="chat")
    assert s.status == "incident"
    # The loop reads a clock moved past the back-off, so the test need not wait 30 s.
    ahead = [timedelta(minutes=1)]
    loop = RetryLoop(sessions, interval=0.05, now=lambda: datetime.now(UTC) + ahead[0]).start()
    try:
        wait_for(lambda: (store.load(s.id).incident or {}).get("tries", 0) >= 2)
        held = store.load(s.id)
        assert held.status == "incident" and held.incident is not None
        assert held.incident["since"] == s.incident["since"]  # type: ignore[index]
        back_office_up(monkeypatch, tmp_path)
        ahead[0] = timedelta(hours=3)  # past the doubled back-off
        wait_for(lambda: store.load(s.id).status == "waiting")
    finally:
        loop.stop()
    assert not loop.running
    after = store.load(s.id)
    assert (after.node, after.context["customer"]["customer_id"]) == ("ask_order", "C001")
    retries = [e for e in store.events(s.id) if e["type"] == "retry"]
    assert retries and all(e["actor"] == "system" for e in retries)
    store.dispose()


def test_the_server_runs_the_loop_while_it_serves(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(
        Library(SHIPPED), store, LocalExecutor(ledger=once), tmp_path / "home", retry_interval=1
    )

    def loops() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "journeys-retry" and t.is_alive()]

    before = len(loops())
    during: list[int] = []

    async def serve_once() -> None:  # the server's start and stop, as uvicorn runs them
        async with app.router.lifespan_context(app):
            during.append(len(loops()))

    asyncio.run(serve_once())
    assert during == [before + 1]
    assert len(loops()) == before
    store.dispose()


@pytest.mark.parametrize(
    ("text", "says"), [("soon", "is not a number of seconds"), ("-1", "0 or more")]
)
def test_a_bad_retry_interval_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, text: str, says: str
) -> None:
    monkeypatch.setenv("JOURNEYS_RETRY_INTERVAL", text)
    with pytest.raises(ValueError, match=says):
        interval_from_environment()


# --------------------------------------------------------------------------- report


def test_the_report_counts_incidents_per_action_and_those_held_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.adapters.sql.reporting import build_report
    from engine.insight.report import as_text

    monkeypatch.setenv(BACKOFFICE, DOWN)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    sessions = Sessions(Library(SHIPPED), store, LocalExecutor(ledger=once))
    first = sessions.start("delivery-missing", {"customer_id": "C001"})
    sessions.start("delivery-missing", {"customer_id": "C002"})
    sessions.retry(first.id)  # still down: the same incident, tried again
    back_office_up(monkeypatch, tmp_path)
    assert sessions.retry(first.id).status == "waiting"
    report = build_report(store, Library(SHIPPED))
    assert report.as_dict()["incidents"] == [
        {"action": "crm.get_customer", "incidents": 2, "held": 1, "background_failed": 0}
    ]
    text = as_text(report)
    assert "Incidents by action" in text
    assert [line.split() for line in text.splitlines() if line.startswith("crm.get_customer")] == [
        ["crm.get_customer", "2", "1", "0"]
    ]
    from engine.adapters.report_html import render_html

    page = render_html(report, Library(SHIPPED))
    assert 'id="incidents"' in page and "<td>crm.get_customer</td><td>2</td><td>1</td>" in page
    store.dispose()


# ------------------------------------------------------------------------- scenarios

FRAGILE = """
journey: fragile
version: 1
title: One lookup, and what an outage does to it
start: lookup
nodes:
  lookup:
    kind: action
    action: crm.get_customer
    input: {customer_id: C001}
    output: customer
    on_error: unknown
    next: done
  unknown: {kind: end, outcome: unresolved, say: "No such customer."}
  done: {kind: end, outcome: resolved}
"""

SCENARIOS = """
journey: fragile
scenarios:
  - name: the CRM is down
    actions:
      crm.get_customer: {failure: "connection refused"}
    expect: {status: incident, node: lookup}
  - name: no such customer
    actions:
      crm.get_customer: {error: "no customer C001", code: not_found}
    expect: {outcome: unresolved, context: {last_error: {code: not_found}}}
  - name: found
    actions:
      crm.get_customer: {customer_id: C001, name: Ada}
    expect: {outcome: resolved}
"""


def scenario_library(tmp_path: Path, journey: str = FRAGILE, tests: str = SCENARIOS) -> Path:
    lib = tmp_path / "scenarios"
    lib.mkdir(exist_ok=True)
    (lib / "fragile.yaml").write_text(journey, encoding="utf-8")
    (lib / "fragile.test.yaml").write_text(tests, encoding="utf-8")
    return lib


def journeys(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_a_failure_stub_is_an_incident_a_scenario_expects(tmp_path: Path) -> None:
    lib = scenario_library(tmp_path)
    code, out = journeys("--library", str(lib), "validate", str(lib))
    assert code == 0 and " 0 errors" in out  # the scenario schema knows incident and node
    code, out = journeys("--library", str(lib), "test", "--min-coverage", "100")
    assert code == 0, out
    assert "PASS  fragile: the CRM is down" in out and "3 passed, 0 failed" in out


def test_an_outage_the_scenario_did_not_expect_says_so(tmp_path: Path) -> None:
    tests = SCENARIOS.replace(
        "expect: {status: incident, node: lookup}", "expect: {outcome: resolved}"
    )
    lib = scenario_library(tmp_path, tests=tests)
    code, out = journeys("--library", str(lib), "test")
    assert code == 1
    assert (
        "outcome: expected 'resolved', got None (held at 'lookup': "
        "crm.get_customer failed: connection refused)" in out
    )
    tests = SCENARIOS.replace("node: lookup", "node: done")
    code, out = journeys("--library", str(lib := scenario_library(tmp_path, tests=tests)), "test")
    assert (
        code == 1 and "node: expected the session at 'done', it is incident at 'lookup': crm" in out
    )


def test_with_on_failure_the_scenario_takes_the_other_path(tmp_path: Path) -> None:
    journey = (
        FRAGILE.replace("    on_error: unknown\n", "    on_error: unknown\n    on_failure: agent\n")
        + '  agent: {kind: handoff, queue: agents, say: "An agent takes over."}\n'
    )
    tests = SCENARIOS.replace(
        "expect: {status: incident, node: lookup}",
        "expect: {outcome: escalated, path: [lookup, agent], context: {last_error: {code: failure}}}",
    )
    lib = scenario_library(tmp_path, journey, tests)
    code, out = journeys("--library", str(lib), "test")
    assert code == 0, out


def test_serve_refuses_a_bad_retry_interval_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_RETRY_INTERVAL", "soon")
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    code, out = journeys("--library", str(SHIPPED), "serve", "--port", "1")
    assert code == 2 and "JOURNEYS_RETRY_INTERVAL='soon' is not a number of seconds" in out


def test_the_retry_loop_waits_quietly_while_the_back_office_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While `journeys serve` is still starting the back office, a look of the loop is not a
    failure to read the incidents: nothing is logged as a warning, the next look tries again."""
    from engine.adapters.execution.keeper import BackofficeStarting

    class Starting:
        def retry_due(self, limit: int) -> list[object]:
            raise BackofficeStarting()

    loop = RetryLoop(Starting(), interval=60)  # type: ignore[arg-type]
    with caplog.at_level("INFO", logger="journeys.retry"):
        assert loop.once() == 0
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "back office" in caplog.records[0].getMessage()
