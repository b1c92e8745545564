"""The HTTP API over a real server on loopback (uvicorn in a thread), driven with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from engine.adapters.http import Tokens, create_app
from engine.adapters.local_actions import LocalExecutor
from engine.adapters.sql_store import SqlStore
from engine.library import Library
from tests.conftest import SHIPPED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(Library(SHIPPED), store, LocalExecutor(), tmp_path / "home")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(10)
    store.dispose()


def test_a_journey_over_http(api: httpx.Client) -> None:
    r = api.post(
        "/v1/sessions",
        json={"journey": "delivery-missing", "channel": "chat", "customer_id": "C001"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= {"id", "token", "status", "step"}
    assert (body["status"], body["step"]["node"], body["step"]["field"]) == (
        "waiting",
        "ask_order",
        "order_id",
    )
    sid = body["id"]
    bad = api.post(f"/v1/sessions/{sid}/answers", json={"node": "ask_order", "value": "123"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "not in the expected format" in bad.json()["detail"]
    r = api.post(
        f"/v1/sessions/{sid}/answers",
        json={"node": "ask_order", "value": "10000001", "seq": body["seq"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["step"]["node"] == "offer"
    stale = api.post(
        f"/v1/sessions/{sid}/answers", json={"node": "offer", "value": "refund", "seq": body["seq"]}
    )
    assert stale.status_code == 409
    r = api.post(f"/v1/sessions/{sid}/answers", json={"node": "offer", "value": "refund"})
    assert r.json()["outcome"] == "resolved"
    full = api.get(f"/v1/sessions/{sid}").json()
    assert full["context"]["refund"]["amount"] == 59.9
    assert [e["type"] for e in full["transcript"]][:2] == ["start", "action"]
    assert any(a["action"] == "payments.refund" for a in full["actions"])


def test_customer_token_opens_its_own_session_only(api: httpx.Client, tmp_path: Path) -> None:
    first = api.post(
        "/v1/sessions", json={"journey": "delivery-missing", "customer_id": "C001"}
    ).json()
    other = api.post(
        "/v1/sessions", json={"journey": "delivery-missing", "customer_id": "C002"}
    ).json()
    auth = {"Authorization": f"Bearer {first['token']}"}
    assert api.get(f"/v1/sessions/{first['id']}", headers=auth).status_code == 200
    assert api.get(f"/v1/sessions/{other['id']}", headers=auth).status_code == 401
    forged = {"Authorization": "Bearer 9999999999.deadbeef"}
    assert api.get(f"/v1/sessions/{first['id']}", headers=forged).status_code == 401


def test_expired_token_is_refused() -> None:
    tokens = Tokens(b"secret")
    token = tokens.issue("s_1", now=1000.0)
    assert tokens.check(token, "s_1", now=2000.0)
    assert not tokens.check(token, "s_1", now=1000.0 + 8 * 24 * 3600)
    assert not tokens.check(token, "s_2", now=2000.0)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/v1/sessions", {"journey": "nope"}, 404),
        ("post", "/v1/sessions", {"journey": "delivery-missing", "colour": "blue"}, 422),
        ("post", "/v1/sessions", {"journey": "delivery-missing", "inputs": {"colour": 1}}, 422),
        ("post", "/v1/sessions/s_missing/answers", {"node": "x", "value": 1}, 404),
        ("get", "/v1/sessions/s_missing", None, 404),
        ("get", "/v1/journeys/nope", None, 404),
    ],
)
def test_bad_requests_get_problem_details(
    api: httpx.Client, method: str, path: str, body: object, status: int
) -> None:
    r = api.request(method.upper(), path, json=body)
    assert r.status_code == status
    problem = r.json()
    assert set(problem) >= {"type", "title", "status", "detail"} and problem["status"] == status


def test_malformed_and_huge_bodies(api: httpx.Client) -> None:
    r = api.post("/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["title"] == "Invalid request"
    r = api.post(
        "/v1/sessions", content=b"x" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_catalogue_endpoints(api: httpx.Client) -> None:
    journeys = api.get("/v1/journeys").json()
    assert any(j["id"] == "delivery-missing" for j in journeys)
    graph = api.get("/v1/journeys/delivery-missing").json()
    assert graph["start"] and graph["edges"]
    assert (
        api.get("/v1/openapi.json").status_code == 404
        and api.get("/openapi.json").status_code == 200
    )
    en = api.get("/v1/motives/suggest", params={"q": "my parcel never arrived"}).json()
    fr = api.get("/v1/motives/suggest", params={"q": "mon colis n'est jamais arrivé"}).json()
    assert en[0]["id"] == "delivery.missing"
    assert fr[0]["id"] == "delivery.missing"


def test_a_back_office_event_starts_an_outbound_session(api: httpx.Client) -> None:
    r = api.post(
        "/v1/events",
        json={
            "event": "order.delayed",
            "data": {"customer_id": "C001", "order_id": "10000001", "days_late": 7},
        },
    )
    assert r.status_code == 200, r.text
    [session] = r.json()["sessions"]
    assert session["channel"] == "sms" and session["step"] is not None
    nothing = api.post("/v1/events", json={"event": "order.delayd", "data": {}}).json()
    assert nothing["sessions"] == [] and "did you mean 'order.delayed'?" in nothing["message"]
