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

from engine.adapters.http import create_app
from engine.adapters.local_actions import LocalExecutor
from engine.adapters.sql_store import SqlStore
from engine.library import Library
from engine.retry_loop import RetryLoop, interval_from_environment
from engine.service import Sessions
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
            assert "crm.get_customer" not in shown.split('"transcript"')[0]
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
    sessions = Sessions(Library(SHIPPED), store, LocalExecutor())
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
    app = create_app(Library(SHIPPED), store, LocalExecutor(), tmp_path / "home", retry_interval=1)

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
