"""The HTTP API over a real server on loopback (uvicorn in a thread), driven with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from actions.backoffice import once
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.http import Tokens, create_app
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from tests.conftest import PG_DSN, SHIPPED, requires


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A journey with a step for agents only: self-care hands it over, then goes on.
HANDOVER_JOURNEY = """
journey: goodwill
version: 1
title: A goodwill gesture, granted by an agent
motives: [goodwill.request]
locales: [en, fr]
start: ask_order
nodes:
  ask_order:
    kind: ask
    say: {en: "Which order is it about?", fr: "De quelle commande s'agit-il ?"}
    field: order_id
    schema: {type: string, pattern: "^[0-9]{8}$"}
    next: approve
  approve:
    kind: choose
    roles: [agent]
    say: {en: "Grant a gesture on order {{ order_id }}?", fr: "Un geste pour {{ order_id }} ?"}
    field: decision
    options:
      - {value: grant, label: {en: Grant it, fr: L'accorder}, next: ask_email}
      - {value: decline, label: {en: Decline, fr: Refuser}, next: declined}
  ask_email:
    kind: ask
    say: {en: "Where shall we send your voucher?", fr: "Où envoyer votre bon ?"}
    field: email
    schema: {type: string}
    next: done
  done:
    kind: end
    outcome: resolved
    say: {en: "Your voucher is on its way.", fr: "Votre bon est en route."}
  declined: {kind: end, outcome: unresolved}
"""
HANDOVER_MOTIVES = """
motives:
  goodwill.request:
    title: {en: A goodwill gesture, fr: Un geste commercial}
    category: billing
    journey: goodwill
    keywords: [gesture, goodwill, geste, commercial]
"""


def handover_library(tmp_path: Path) -> Path:
    """A library of one journey whose middle step is for agents only."""
    library = tmp_path / "handover"
    library.mkdir()
    (library / "goodwill.yaml").write_text(HANDOVER_JOURNEY, encoding="utf-8")
    (library / "motives.yaml").write_text(HANDOVER_MOTIVES, encoding="utf-8")
    return library


@contextmanager
def serving(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str | None = None
) -> Iterator[str]:
    """``library`` served on a free loopback port (no agent key: this machine is an agent),
    on a SQLite file or the database ``db``."""
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    store = SqlStore(db or f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(Library(library), store, LocalExecutor(ledger=once), tmp_path / "home")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.dispose()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with (
        serving(SHIPPED, tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def handover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """The API on a library whose journey has an agent-only step."""
    with (
        serving(handover_library(tmp_path), tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


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


def test_a_huge_body_without_a_length_is_refused_too(api: httpx.Client) -> None:
    """Chunked transfer says no length beforehand: the body is read up to the limit only."""

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"journey": "delivery-missing", "inputs": {"note": "'
        for _ in range(total // 1000):
            yield b"x" * 1000
        yield b'"}}'

    json = {"Content-Type": "application/json"}
    r = api.post("/v1/sessions", content=chunks(200_000), headers=json)
    assert r.status_code == 413 and "the limit is 64000" in r.json()["detail"]
    # A small chunked body goes through, read whole.
    small = api.post(
        "/v1/sessions", content=iter([b'{"journey": ', b'"delivery-missing"}']), headers=json
    )
    assert small.status_code == 201, small.text
    assert small.json()["journey"] == "delivery-missing"


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # what a web page elsewhere can make a browser send
        {"Content-Type": "application/x-www-form-urlencoded"},
        {},
    ],
)
def test_a_body_that_is_not_said_to_be_json_is_refused(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    """No agent key set, this machine is an agent: a page on another site that the agent opens
    must not start or answer sessions through the browser (it cannot send a JSON content type
    to another origin without the server's leave, which is never given)."""
    started = api.post("/v1/sessions", json={"journey": "delivery-missing"}).json()
    for path, body in (
        ("/v1/sessions", b'{"journey": "delivery-missing"}'),
        (
            f"/v1/sessions/{started['id']}/answers",
            b'{"node": "identify/ask_customer_id", "value": "C001"}',
        ),
    ):
        r = api.post(path, content=body, headers=headers)
        assert r.status_code == 415, r.text
        assert "Content-Type: application/json" in r.json()["detail"]
    assert api.get(f"/v1/sessions/{started['id']}").json()["seq"] == started["seq"]


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example"])
def test_with_no_agent_key_a_request_for_another_name_is_refused(
    api: httpx.Client, host: str
) -> None:
    """DNS rebinding: a site's name pointed at 127.0.0.1 makes its pages the same origin as
    the server in the browser; with no agent key, the Host header must name this machine."""
    r = api.post("/v1/sessions", json={"journey": "delivery-missing"}, headers={"Host": host})
    assert r.status_code == 403 and "JOURNEYS_AGENT_KEYS" in r.json()["detail"]
    for name in ("localhost", "127.0.0.1", "[::1]:8000", "LOCALHOST:1"):
        assert api.get("/v1/journeys", headers={"Host": name}).status_code == 200, name


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"value": 1}', "node: Field required"),
        (b'{"node": "ask_order", "seq": "first"}', "seq: Input should be a valid integer"),
        (b'{"node": "ask_order", "colour": 1}', "colour: Extra inputs are not permitted"),
        (b'["ask_order"]', "Input should be an object"),
        (b"", "Invalid JSON"),
    ],
)
def test_a_bad_answer_body_says_what_is_wrong_and_changes_nothing(
    api: httpx.Client, body: bytes, detail: str
) -> None:
    started = api.post("/v1/sessions", json={"journey": "delivery-missing"}).json()
    r = api.post(
        f"/v1/sessions/{started['id']}/answers",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["title"] == "Invalid request" and detail in problem["detail"], problem
    assert api.get(f"/v1/sessions/{started['id']}").json()["seq"] == started["seq"]


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


def at_the_agent_step(api: httpx.Client, locale: str = "en") -> tuple[dict[str, str], str]:
    """A self-care customer's session brought to its agent-only step: (auth, session id)."""
    started = api.post(
        "/v1/sessions", json={"journey": "goodwill", "channel": "selfcare", "locale": locale}
    ).json()
    auth = {"Authorization": f"Bearer {started['token']}"}
    r = api.post(
        f"/v1/sessions/{started['id']}/answers",
        json={"node": "ask_order", "value": "10000001"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    return auth, started["id"]


def test_an_agent_only_step_is_handed_over_in_self_care(handover: httpx.Client) -> None:
    api = handover
    auth, sid = at_the_agent_step(api)
    shown = api.get(f"/v1/sessions/{sid}", headers=auth).json()
    step, code = shown["step"], shown["contact"]
    assert (shown["status"], step["node"], step["waiting_for"], step["contact"]) == (
        "waiting",
        "approve",
        "agent",
        code,
    )
    assert code in step["text"] and "An agent will continue" in step["text"]
    assert "options" not in step and "10000001" not in step["text"]  # not the agent's question
    # The agent sees the question itself, marked as waiting for an agent.
    as_agent = api.get(f"/v1/sessions/{sid}").json()["step"]
    assert as_agent["waiting_for"] == "agent" and len(as_agent["options"]) == 2

    refused = api.post(
        f"/v1/sessions/{sid}/answers", json={"node": "approve", "value": "grant"}, headers=auth
    )
    assert refused.status_code == 403
    problem = refused.json()
    assert "waiting for an agent" in problem["detail"] and code in problem["detail"]
    assert (problem["waiting_for"], problem["contact"]) == ("agent", code)
    assert api.get(f"/v1/sessions/{sid}", headers=auth).json()["seq"] == shown["seq"]  # kept


def test_the_hand_over_speaks_the_customers_language(handover: httpx.Client) -> None:
    auth, sid = at_the_agent_step(handover, "fr")
    step = handover.get(f"/v1/sessions/{sid}", headers=auth).json()["step"]
    assert "Un conseiller va prendre la suite" in step["text"] and step["contact"] in step["text"]


def test_agents_take_handed_over_sessions_from_the_queue(handover: httpx.Client) -> None:
    api = handover
    auth, sid = at_the_agent_step(api)
    elsewhere = api.post("/v1/sessions", json={"journey": "goodwill", "channel": "phone"}).json()
    api.post(
        f"/v1/sessions/{elsewhere['id']}/answers", json={"node": "ask_order", "value": "1" * 8}
    )
    at_first_step = api.post("/v1/sessions", json={"journey": "goodwill", "channel": "selfcare"})

    queue = api.get("/v1/queue")
    assert queue.status_code == 200, queue.text
    [waiting] = queue.json()  # not the phone session, nor the one at a customer's step
    assert at_first_step.json()["id"] != waiting["id"]
    code = api.get(f"/v1/sessions/{sid}", headers=auth).json()["contact"]
    assert {k: waiting[k] for k in ("id", "journey", "node", "contact")} == {
        "id": sid,
        "journey": "goodwill",
        "node": "approve",
        "contact": code,
    }
    assert waiting["waiting_since"] and "customer_id" in waiting
    assert api.get("/v1/queue", headers=auth).status_code == 403  # a customer's token

    # The agent continues it as a contact, on the phone, and answers the agent's step.
    found = api.get(f"/v1/contacts/{code.lower()}").json()
    assert found["id"] == sid
    resumed = api.post(f"/v1/sessions/{sid}/resume", json={"channel": "phone"}).json()
    r = api.post(
        f"/v1/sessions/{sid}/answers",
        json={"node": "approve", "value": "grant", "seq": resumed["seq"]},
    )
    assert r.status_code == 200, r.text
    assert api.get("/v1/queue").json() == []

    # Back to the customer, whose page goes on.
    step = api.get(f"/v1/sessions/{sid}", headers=auth).json()["step"]
    assert step["node"] == "ask_email" and "waiting_for" not in step
    r = api.post(
        f"/v1/sessions/{sid}/answers",
        json={"node": "ask_email", "value": "ada@example.org"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["outcome"]) == ("ended", "resolved")


def test_a_journey_with_errors_is_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `journeys run` refuses it: the server names the first error; the rest still runs."""
    import shutil

    library = tmp_path / "library"
    shutil.copytree(SHIPPED, library, ignore=shutil.ignore_patterns(".journeys_cache"))
    lines = {}
    for name in ("delivery-missing", "delivery-delay-proactive"):
        path = next(library.rglob(f"{name}.yaml"))
        text = path.read_text(encoding="utf-8")
        at = text.index("next: ") + len("next: ")
        path.write_text(text[:at] + "nowhere_" + text[at:], encoding="utf-8")
        lines[name] = text[:at].count("\n") + 1
    with (
        serving(library, tmp_path, monkeypatch) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        for body in ({"journey": "delivery-missing"}, {"motive": "delivery.missing"}):
            r = api.post("/v1/sessions", json=body)
            assert r.status_code == 409, r.text
            detail = r.json()["detail"]
            assert f"delivery-missing.yaml:{lines['delivery-missing']}: J003" in detail
            assert "journeys validate" in detail
        # A proactive event cannot start one either.
        event = api.post(
            "/v1/events",
            json={
                "event": "order.delayed",
                "data": {"customer_id": "C001", "order_id": "10000001", "days_late": 7},
            },
        )
        assert event.status_code == 422, event.text
        assert (
            f"delivery-delay-proactive.yaml:{lines['delivery-delay-proactive']}"
            in (event.json()["detail"])
        )
        # The other journeys still run.
        assert api.post("/v1/sessions", json={"journey": "damaged-item"}).status_code == 201


def test_a_database_that_cannot_be_reached_is_a_503_and_the_server_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import psycopg

    name = f"journeys_http_{uuid.uuid4().hex[:8]}"
    requires("postgresql")
    admin = psycopg.connect(PG_DSN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')

    def cut_off(allow: bool) -> None:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )

    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        with (
            serving(SHIPPED, tmp_path, monkeypatch, url) as base,
            httpx.Client(base_url=base, timeout=30) as api,
        ):
            started = api.post("/v1/sessions", json={"journey": "delivery-missing"}).json()
            cut_off(allow=False)
            for r in (
                api.get(f"/v1/sessions/{started['id']}"),
                api.post("/v1/sessions", json={"journey": "delivery-missing"}),
                api.post(
                    f"/v1/sessions/{started['id']}/answers",
                    json={"node": "identify/ask_customer_id", "value": "C001"},
                ),
            ):
                assert r.status_code == 503, r.text
                assert "cannot be used just now" in r.json()["detail"]
            cut_off(allow=True)  # as after a restart: every connection the server had is gone
            again = api.get(f"/v1/sessions/{started['id']}")
            assert again.status_code == 200 and again.json()["seq"] == started["seq"]
            assert api.post("/v1/sessions", json={"journey": "delivery-missing"}).status_code == 201
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
