"""`GET /v1/health` and the answer to an action asked for while the back office starts: said
at once (503, Retry-After), nothing saved, never a silent wait. The back office's state is
given by a probe here; tests/test_backoffice_processes.py runs the real processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from actions.backoffice import once
from engine.adapters.execution.keeper import BackofficeStarting, GatedExecutor, Keeper
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.execution.prefect_server import free_port
from engine.adapters.home import idle_seconds, journeys_home
from engine.adapters.http import create_app
from engine.definitions.library import Library
from engine.sessions.service import MemoryStore
from tests.conftest import SHIPPED


class Backoffice:
    """The state a probe reports, and how often a start was asked for."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.launches = 0

    def launch(self) -> None:
        self.launches += 1


@pytest.fixture
def backoffice() -> Backoffice:
    return Backoffice("starting")


@pytest.fixture
def client(
    backoffice: Backoffice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, MemoryStore]]:
    """The API on a real loopback port, its back office in the state ``backoffice`` says."""
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    keeper = Keeper("prefect", probe=lambda: backoffice.state, launch=backoffice.launch, believe=0)
    store = MemoryStore()
    app = create_app(
        Library(SHIPPED),
        store,
        GatedExecutor(LocalExecutor(ledger=once), keeper),
        tmp_path / "home",
        backoffice=keeper,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as test_client:
            yield test_client, store
    finally:
        server.should_exit = True
        thread.join(10)


START = {"motive": "delivery.missing", "customer_id": "C001"}  # its first step runs an action


def test_health_says_whether_the_back_office_is_ready(
    client: tuple[httpx.Client, MemoryStore], backoffice: Backoffice
) -> None:
    api, _store = client
    for state in ("starting", "ready", "down"):
        backoffice.state = state
        answer = api.get("/v1/health")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "backoffice": state}


def test_health_is_in_the_openapi_description(client: tuple[httpx.Client, MemoryStore]) -> None:
    api, _store = client
    described = api.get("/openapi.json").json()
    operation = described["paths"]["/v1/health"]["get"]
    schema = described["components"]["schemas"]["Health"]
    assert schema["properties"]["backoffice"]["enum"] == ["ready", "starting", "down"]
    assert "200" in operation["responses"]


def test_an_action_while_the_back_office_starts_is_answered_at_once_and_nothing_is_saved(
    client: tuple[httpx.Client, MemoryStore], backoffice: Backoffice
) -> None:
    api, store = client
    answer = api.post("/v1/sessions", json=START)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    problem = answer.json()
    assert problem["title"] == "Back office starting"
    assert problem["backoffice"] == "starting"
    assert "send it again" in problem["detail"]
    assert list(store) == []  # not saved: sending it again is safe
    backoffice.state = "ready"
    again = api.post("/v1/sessions", json=START)
    assert again.status_code == 201, again.text
    assert again.json()["step"]["node"] == "ask_order"


def test_an_answer_while_the_back_office_starts_is_kept_for_the_next_try(
    client: tuple[httpx.Client, MemoryStore], backoffice: Backoffice
) -> None:
    api, _store = client
    backoffice.state = "ready"
    session = api.post("/v1/sessions", json=START).json()
    backoffice.state = "starting"  # e.g. stopped by `journeys prefect stop`, started again
    answer = {"node": "ask_order", "value": "10000001", "seq": session["seq"]}
    refused = api.post(f"/v1/sessions/{session['id']}/answers", json=answer)
    assert refused.status_code == 503
    assert api.get(f"/v1/sessions/{session['id']}").json()["seq"] == session["seq"]
    backoffice.state = "ready"
    done = api.post(f"/v1/sessions/{session['id']}/answers", json=answer)
    assert done.status_code == 200, done.text
    assert done.json()["step"]["node"] == "offer"


def test_a_back_office_found_down_is_started_again_once() -> None:
    backoffice = Backoffice("down")
    keeper = Keeper("prefect", probe=lambda: backoffice.state, launch=backoffice.launch)
    for _ in range(3):
        with pytest.raises(BackofficeStarting):
            keeper.require()
    assert keeper._thread is not None
    keeper._thread.join(5)
    assert backoffice.launches >= 1
    backoffice.state = "ready"
    keeper.require()  # ready: the action runs


def test_in_process_actions_need_no_back_office() -> None:
    keeper = Keeper("local", probe=lambda: pytest.fail("nothing to ask"))
    assert keeper.state() == "ready"
    keeper.require()


def test_the_journeys_home_is_absolute_wherever_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOURNEYS_HOME", raising=False)
    assert journeys_home() == tmp_path / ".journeys"
    monkeypatch.setenv("JOURNEYS_HOME", "data")
    assert journeys_home() == tmp_path / "data"


@pytest.mark.parametrize("text", ["soon", "-5", "inf", "nan"])
def test_a_bad_idle_time_is_named_with_what_would_be_right(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_IDLE_SECONDS", text)
    with pytest.raises(ValueError, match=r"JOURNEYS_BACKOFFICE_IDLE_SECONDS=.* \(e\.g\. 300"):
        idle_seconds()


def test_the_idle_time_defaults_to_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYS_BACKOFFICE_IDLE_SECONDS", raising=False)
    assert idle_seconds() == 300
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_IDLE_SECONDS", "0")
    assert idle_seconds() == 0


def test_a_bad_idle_time_makes_an_incident_that_says_so_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOURNEYS_EXECUTOR")  # the default: the back office's processes
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("JOURNEYS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_IDLE_SECONDS", "soon")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "delivery-missing",
            "--input",
            "customer_id=C001",
            "--answers",
            "/dev/null",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1, result.output
    session = json.loads(result.stdout)
    assert session["status"] == "incident"
    assert "JOURNEYS_BACKOFFICE_IDLE_SECONDS='soon'" in session["incident"]["message"]
    assert not (tmp_path / "home" / "prefect" / "host.json").exists()
