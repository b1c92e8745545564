"""The edge of `journeys serve`: who counts as this machine, rate limits with 429 and
Retry-After, bounded headers and connections that cannot be held open for ever."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from actions.backoffice import once
from cli import main
from engine.adapters.execution.local_actions import LocalExecutor
from engine.adapters.http import create_app
from engine.adapters.http.connections import GuardedHttpTools, uvicorn_settings
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.sessions import ratelimit
from engine.sessions.ratelimit import (
    Limited,
    Limiter,
    Rate,
    RateLimitSettingError,
    rates_from_environment,
)
from tests.conftest import SHIPPED
from tests.test_http import free_port

KEY = "agent-key-for-tests"
AGENT = {"Authorization": f"Bearer {KEY}"}
START = {"journey": "delivery-missing", "channel": "selfcare"}


class QuickGuard(GuardedHttpTools):
    request_seconds = 1.0  # the same guard, sooner: the tests wait less


@contextmanager
def served(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    keys: str | None = f"{KEY}:agent",
    limits: str | None = None,
    protocol: type[GuardedHttpTools] = GuardedHttpTools,
) -> Iterator[str]:
    """The shipped library on a free loopback port, with `journeys serve`'s uvicorn settings."""
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    for name, value in (("JOURNEYS_AGENT_KEYS", keys), ("JOURNEYS_RATE_LIMITS", limits)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(Library(SHIPPED), store, LocalExecutor(ledger=once), tmp_path / "home")
    port = free_port()
    settings = {**uvicorn_settings(), "http": protocol}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **settings)
    server = uvicorn.Server(config)
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


# ------------------------------------------------------------------ the test client's names


@pytest.mark.parametrize(
    ("client", "base"),
    [(("testclient", 50000), "http://127.0.0.1"), (("127.0.0.1", 50000), "http://testserver")],
)
def test_the_test_clients_names_are_not_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: tuple[str, int], base: str
) -> None:
    monkeypatch.delenv("JOURNEYS_AGENT_KEYS", raising=False)
    monkeypatch.setenv("JOURNEYS_BACKOFFICE_DB", f"sqlite:///{tmp_path / 'bo.db'}")
    store = SqlStore(f"sqlite:///{tmp_path / 'sessions.db'}")
    app = create_app(Library(SHIPPED), store, LocalExecutor(ledger=once), tmp_path / "home")

    async def call(client: tuple[str, int], base: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            return await http.get("/v1/journeys")

    try:
        refused = asyncio.run(call(client, base))
        assert refused.status_code == 403, refused.text
        assert (
            "only this machine" in refused.json()["detail"]
            or "loopback" in refused.json()["detail"]
        )
        assert asyncio.run(call(("127.0.0.1", 50000), "http://127.0.0.1")).status_code == 200
    finally:
        store.dispose()


# ------------------------------------------------------------------------- rate limits


def test_anonymous_starts_are_limited_per_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        served(tmp_path, monkeypatch, limits="start=3/60") as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        assert [api.post("/v1/sessions", json=START).status_code for _ in range(3)] == [201] * 3
        refused = api.post("/v1/sessions", json=START)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        problem = refused.json()
        assert (problem["title"], problem["limit"]) == ("Too many requests", "start")
        assert "at most 3 per 60 s" in problem["detail"]
        # Agents are not anonymous: their starts are not counted.
        assert api.post("/v1/sessions", json=START, headers=AGENT).status_code == 201


def test_contact_code_lookups_are_limited_per_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        served(tmp_path, monkeypatch, limits="contact=2/60") as url,
        httpx.Client(base_url=url, timeout=30, headers=AGENT) as api,
    ):
        tries = [api.get(f"/v1/contacts/GUESS{i}").status_code for i in range(3)]
        assert tries == [404, 404, 429]


def test_limits_can_be_lifted_for_a_load_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        served(tmp_path, monkeypatch, limits="off") as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        assert {api.post("/v1/sessions", json=START).status_code for _ in range(40)} == {201}


def test_a_wrong_limit_setting_stops_serve_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYS_RATE_LIMITS", "start=many")
    result = CliRunner().invoke(main, ["--library", str(SHIPPED), "serve"])
    assert result.exit_code == 2
    assert "'start=many' is not a limit; write NAME=COUNT/SECONDS pairs" in result.output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_evenly_and_says_when_to_retry() -> None:
    clock = Clock()
    limiter = Limiter({"otp": Rate(5, 600)}, clock=clock)
    for _ in range(5):
        limiter.take("otp", "address:10.0.0.1", "caller:s_1")
    with pytest.raises(Limited) as info:
        limiter.take("otp", "address:10.0.0.1", "caller:s_1")
    assert info.value.retry_after == 120  # one code back every 600 / 5 s
    clock.now += 119
    with pytest.raises(Limited):
        limiter.take("otp", "address:10.0.0.1")
    clock.now += 1
    limiter.take("otp", "address:10.0.0.1")


def test_every_key_must_pass_and_a_refusal_counts_nothing() -> None:
    clock = Clock()
    limiter = Limiter({"otp": Rate(2, 60)}, clock=clock)
    limiter.take("otp", "address:a", "caller:s_1")
    limiter.take("otp", "address:a", "caller:s_1")
    # Another address, the same session: the session is over its limit.
    with pytest.raises(Limited):
        limiter.take("otp", "address:b", "caller:s_1")
    # ...and the refusal did not use address b's allowance.
    limiter.take("otp", "address:b", "caller:s_2")
    limiter.take("otp", "address:b", "caller:s_3")
    with pytest.raises(Limited):
        limiter.take("otp", "address:b", "caller:s_4")


def test_unknown_and_unlimited_names_pass() -> None:
    limiter = Limiter({"otp": Rate(0, 60)})
    for _ in range(100):
        limiter.take("otp", "address:a")
        limiter.take("anything", "address:a")


def test_the_named_limits_and_their_settings() -> None:
    assert set(ratelimit.DEFAULTS) == {"start", "otp", "contact"}
    assert rates_from_environment("") == dict(ratelimit.DEFAULTS)
    assert rates_from_environment("otp=3/300, start=0/60")["otp"] == Rate(3, 300)
    assert Limiter(rates_from_environment("start=0/60")).rates.get("start") is None
    assert rates_from_environment("off") == {}
    for wrong in ["otp", "otp=3", "otp=x/60", "otp=3/0", "=3/60", "otp=-1/60", "otp=3/inf"]:
        with pytest.raises(RateLimitSettingError, match="is not a limit"):
            rates_from_environment(wrong)


def test_the_buckets_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_MAX_KEYS", 100)
    clock = Clock()
    limiter = Limiter({"start": Rate(1, 60)}, clock=clock)
    for i in range(1000):
        limiter.take("start", f"address:{i}")
    assert len(limiter._buckets["start"]) <= 100
    with pytest.raises(Limited):  # the most recent callers are still counted
        limiter.take("start", "address:999")


# ------------------------------------------------------------------- headers, connections


def exchange(url: str, data: bytes, wait: float = 15.0) -> bytes:
    """What the server answers to ``data`` sent on a new connection, until it closes it."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        with contextlib.suppress(OSError):  # closed while sending: its answer is still read
            s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_headers_over_the_limit_are_answered_431(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served(tmp_path, monkeypatch) as url:
        big = b"GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000
        answer = exchange(url, big + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        normal = exchange(
            url, b"GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert normal.startswith(b"HTTP/1.1 401")  # read as usual: an agent key is needed


@pytest.mark.parametrize("how", ["idle", "slow"])
def test_a_connection_cannot_be_held_without_a_whole_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    with served(tmp_path, monkeypatch, protocol=QuickGuard) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as s:
            if how == "slow":  # a byte now and then: headers that never end
                sender = threading.Thread(target=trickle, args=(s,), daemon=True)
                sender.start()
            assert s.recv(100) == b""  # closed by the server, not by this socket's timeout


def trickle(s: socket.socket) -> None:
    try:
        for byte in b"GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaa":
            s.send(bytes([byte]))
            time.sleep(0.2)
    except OSError:
        pass


def test_a_kept_alive_connection_serves_several_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request time counts from a request's first byte: a connection left idle longer
    between two requests (within the keep-alive) is still served."""
    request = b"GET /v1/journeys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
    with served(tmp_path, monkeypatch, protocol=QuickGuard) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as s:
            for _ in range(2):
                s.sendall(request % KEY.encode())
                assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
                time.sleep(1.5)  # more than QuickGuard's request time, less than keep-alive


def test_serve_gives_uvicorn_the_bounds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: given.update(kwargs))
    monkeypatch.setenv("JOURNEYS_HOME", str(tmp_path))
    for name in ("JOURNEYS_LIBRARY", "JOURNEYS_DB", "JOURNEYS_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)  # serve sets them: restored after the test
    result = CliRunner().invoke(
        main, ["--library", str(SHIPPED), "serve", "--db", f"sqlite:///{tmp_path / 's.db'}"]
    )
    assert result.exit_code == 0, result.output
    assert given["http"] is GuardedHttpTools
    assert (given["timeout_keep_alive"], given["limit_concurrency"]) == (5, 1000)
