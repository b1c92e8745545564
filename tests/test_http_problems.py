"""Errors as problem details (engine/adapters/http/problems.py): one handler chooses by the
error's class, an endpoint names what it expects otherwise in its route, and what the HTTP
layer refuses itself is never renamed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.routing import Mount

from actions.backoffice import once
from engine.adapters.execution.keeper import BackofficeStarting
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.execution.prefect_server import free_port
from engine.adapters.http import create_app
from engine.adapters.http.problems import Endpoint
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.errors import Conflict, DefinitionError, SessionError, StoreUnavailable
from engine.sessions.ratelimit import Limited, Rate
from engine.sessions.service import Sessions
from tests.conftest import SHIPPED

AGENT = {"Authorization": "Bearer problems-agent"}
START = {"journey": "delivery-missing"}


@dataclass
class Served:
    app: FastAPI
    api: httpx.Client

    @property
    def sessions(self) -> Sessions:
        sessions: Sessions = self.app.state.journeys.sessions
        return sessions


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The API on a loopback port, with an agent key."""
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.setenv("JOURNEYS_AGENT_KEYS", "problems-agent:agent")
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(
        Library(SHIPPED), store, LocalExecutor(ledger=once), tmp_path, retry_interval=0
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            yield Served(app, api)
    finally:
        server.should_exit = True
        thread.join(10)
        store.dispose()


def raising(error: Exception) -> Any:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise error

    return fail


def problem_of(r: httpx.Response) -> tuple[int, str, str]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    body = r.json()
    assert body["status"] == r.status_code and body["instance"] == r.url.path, body
    return r.status_code, body["title"], body["detail"]


def test_every_route_is_declared_in_a_table(served: Served) -> None:
    ours = [r for r in served.app.routes if isinstance(r, Endpoint | Mount)]
    paths = {getattr(r, "path", "") for r in ours}
    assert {"/v1/sessions", "/v1/sessions/{session_id}/answers", "/console"} <= paths


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SessionError("too big"), (422, "Cannot start", "too big")),
        (StoreUnavailable("db gone"), (503, "Cannot start", "db gone")),
        (Conflict("raced"), (409, "Cannot start", "raced")),
    ],
)
def test_starting_names_what_the_service_raises(
    served: Served,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    expected: tuple[int, str, str],
) -> None:
    monkeypatch.setattr(served.sessions, "start", raising(error))
    assert problem_of(served.api.post("/v1/sessions", json=START, headers=AGENT)) == expected


def test_answering_names_what_the_service_raises(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = served.api.post("/v1/sessions", json=START, headers=AGENT).json()["id"]
    answer = {"node": "identify/ask_customer_id", "value": "C001"}
    for error, expected in (
        (SessionError("too big"), (422, "Cannot answer", "too big")),
        (Conflict("raced"), (409, "Conflict", "raced")),
    ):
        monkeypatch.setattr(served.sessions, "answer", raising(error))
        r = served.api.post(f"/v1/sessions/{sid}/answers", json=answer, headers=AGENT)
        assert problem_of(r) == expected


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/sessions/s_gone/answers", {"node": "x", "value": 1}),
        ("POST", "/v1/sessions/s_gone/resume", {}),
        ("POST", "/v1/sessions/s_gone/retry", {}),
        ("POST", "/v1/sessions/s_gone/handoff", {}),
        ("GET", "/v1/sessions/s_gone", None),
    ],
)
def test_an_unknown_session_is_said_the_same_by_every_endpoint(
    served: Served, method: str, path: str, body: object
) -> None:
    r = served.api.request(method, path, json=body, headers=AGENT)
    assert problem_of(r) == (404, "No such session", "there is no session 's_gone'")


def test_an_endpoint_without_naming_says_what_the_class_says(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.sessions, "agent_queue", raising(Conflict("raced")))
    assert problem_of(served.api.get("/v1/queue", headers=AGENT)) == (409, "Conflict", "raced")
    unusable = raising(DefinitionError("a journey cannot be used"))
    monkeypatch.setattr(served.sessions, "agent_queue", unusable)
    r = served.api.get("/v1/queue", headers=AGENT)
    assert problem_of(r) == (422, "Invalid definition", "a journey cannot be used")


def test_what_the_layer_refuses_itself_is_not_renamed(served: Served) -> None:
    """A self-care customer on an agent's channel is refused inside the start endpoint, whose
    naming calls a session error "Cannot start": it stays 403 Forbidden."""
    r = served.api.post("/v1/sessions", json={**START, "channel": "phone"})
    assert problem_of(r)[:2] == (403, "Forbidden")
    r = served.api.post("/v1/sessions", json={"inputs": {}}, headers=AGENT)
    assert problem_of(r) == (422, "Invalid request", "give 'journey' or 'motive'")


def test_errors_with_an_answer_of_their_own_keep_it_in_any_endpoint(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.sessions, "start", raising(BackofficeStarting(3)))
    r = served.api.post("/v1/sessions", json=START, headers=AGENT)
    assert problem_of(r)[:2] == (503, "Back office starting")
    assert r.headers["retry-after"] == "3" and r.json()["backoffice"] == "starting"
    monkeypatch.setattr(served.sessions, "start", raising(Limited("start", Rate(1, 60), 42)))
    r = served.api.post("/v1/sessions", json=START, headers=AGENT)
    assert problem_of(r)[:2] == (429, "Too many requests")
    assert r.headers["retry-after"] == "42" and r.json()["limit"] == "start"
