"""`journeys serve` as an agent meets it (issue 11), for bench/actions.py: how soon the API
answers ``GET /v1/health`` after the command starts, how long the back office takes to be
ready, and the first action after health says "ready", against the next ones."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.ports import free_port


class _Api:
    """The HTTP API of a `journeys serve`, called as an agent's console does."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def step(self) -> float:
        """Seconds an answer takes whose step runs a ``wait: true`` action."""
        status, session = self.call("POST", "/v1/sessions", {"journey": "sync"})
        if status != 201:
            sys.exit(f"could not start a session: {status} {session}")
        began = time.perf_counter()
        status, answered = self.call(
            "POST", f"/v1/sessions/{session['id']}/answers", {"node": "first", "value": "hi"}
        )
        took = time.perf_counter() - began
        if status != 200 or answered["step"]["node"] != "second":
            sys.exit(f"the action did not run: {status} {answered}")
        return took

    def first_health(self) -> tuple[int, Any]:
        """The first answer of ``GET /v1/health``, as soon as the server takes connections."""
        while True:
            try:
                return self.call("GET", "/v1/health")
            except OSError:
                time.sleep(0.02)


def first_action_after_ready(library: Path, out: Path) -> None:
    """`journeys serve` started afresh (its own home): serve start to the first health
    answer, to "ready", then the first step with a ``wait: true`` action, and the next ones."""
    port = free_port()
    api = _Api(f"http://127.0.0.1:{port}")
    env = {
        **os.environ,
        "JOURNEYS_HOME": str(out / "serve-home"),
        "JOURNEYS_LIBRARY": str(library),
        "JOURNEYS_DB": f"sqlite:///{out / 'serve-sessions.db'}",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("JOURNEYS_EXECUTOR", None)
    journeys = str(Path(sys.executable).with_name("journeys"))
    began = time.perf_counter()
    serve = subprocess.Popen(
        [journeys, "serve", "--port", str(port)],
        env=env,
        cwd=out,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _time_first_action(api, began)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(120)


def _time_first_action(api: _Api, began: float) -> None:
    """From the start of the server (``began``): its first health answer, "ready", and the
    first action after ready against the next ones."""
    health = api.first_health()
    answered = time.perf_counter() - began
    if health[0] == 404:  # before issue 11: no health; the first action starts it all
        first = api.step()
        print(
            f"\njourneys serve: the API answers {answered:.2f} s after start; no /v1/health; "
            f"the first action, right after, took {first:.2f} s (target < 2 s: "
            f"{'met' if first < 2 else 'MISSED'})"
        )
        return
    while health[1].get("backoffice") != "ready":
        time.sleep(0.05)
        health = api.call("GET", "/v1/health")
    ready = time.perf_counter() - began
    first = api.step()
    later = statistics.median(api.step() for _ in range(10))
    print(
        f"\njourneys serve: GET /v1/health answers {answered:.2f} s after start, the back "
        f"office is ready {ready:.1f} s after start\n"
        f"  first action after ready: {first:.3f} s (target < 2 s: "
        f"{'met' if first < 2 else 'MISSED'}); the next ones: {later:.3f} s (median of 10), "
        f"first = {first / later:.1f} x the next"
    )
