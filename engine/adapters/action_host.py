"""The action host: one long-lived process that runs actions in Prefect for every command.

Importing Prefect and setting up its client takes a second or two in each process. With the
host, a `journeys` command never imports Prefect: it posts the action to the host (on
127.0.0.1, with a secret token) and gets the task run's outcome back. The host is started in
the background by the first command that runs an action, together with the embedded Prefect
server (or against ``PREFECT_API_URL``), and reused afterwards; `journeys prefect stop` stops
both.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.adapters.prefect_server import (
    STARTUP_TIMEOUT,
    PrefectUnavailable,
    alive,
    ensure_api,
    free_port,
    home,
    launch_detached,
    quiet_environment,
    running,
)
from engine.runtime import RunAction, RunAfter, Session
from engine.service import ActionOutcome

_background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="journeys-host-call")


# ------------------------------------------------------------------------- the host


def serve(port: int, token: str) -> None:
    """Run the host until stopped: POST /run runs one action as a Prefect task run."""
    from engine.adapters.prefect_actions import PrefectExecutor

    executor = PrefectExecutor()
    threading.Thread(target=executor.dispatcher.warm, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: runs are in Prefect
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200 if self.path == "/health" else 404, {"api": executor.api})

        def do_POST(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._send(401, {"error": "unauthorized"})
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            session = Session(
                id=request["session"],
                journey="",
                version=0,
                definition="",
                motive=request.get("motive"),
            )
            # Each action is a task run of the host's dispatcher flow run (its own threads):
            # this request thread only waits for the outcome.
            outcome = executor._call(
                request["action"],
                request["key"],
                request["inputs"],
                request["retries"],
                request["timeout"],
                session,
                request["node"],
            )
            self._send(
                200,
                {
                    "result": outcome.result,
                    "error": outcome.error,
                    "code": outcome.code,
                    "failure": outcome.failure,
                    "attempts": outcome.attempts,
                    "run_id": outcome.run_id,
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    stop_on_sigterm(server, executor.close)
    server.serve_forever()
    executor.close()  # the running actions finish; the dispatcher flow run completes


def stop_on_sigterm(server: ThreadingHTTPServer, close: Callable[[], None]) -> None:
    """SIGTERM (`journeys prefect stop`) ends serve_forever, so the host closes its
    dispatcher flow run instead of leaving it Running in Prefect."""
    import signal

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)


# ----------------------------------------------------------------------- the client


def _record(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "host.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _healthy(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
            return str(json.loads(response.read())["api"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def ensure_host(base: str | None = None, progress: bool = True) -> tuple[str, str]:
    """(URL, token) of a running host connected to the Prefect API in use; started if needed."""
    quiet_environment()
    folder = home(base).resolve()  # the launcher runs from the project folder
    expected = os.environ.get("PREFECT_API_URL") or running(base)
    record = _record(folder)
    if record and expected and _healthy(record["url"]) == expected:
        return record["url"], record["token"]
    api = ensure_api(base, progress)  # the embedded server, or PREFECT_API_URL
    if record:
        _stop_pid(int(record.get("pid", 0)))
    folder.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    pidfile = folder / "host.pid"
    env = {**os.environ, "PREFECT_API_URL": api, "JOURNEYS_HOST_TOKEN": token}
    command = [sys.executable, "-m", "engine.adapters.action_host", str(port)]
    launch_detached(
        command, env, folder / "host.log", pidfile, cwd=Path(__file__).resolve().parents[2]
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if _healthy(url):
            pid = int(pidfile.read_text() or 0) if pidfile.exists() else 0
            path = folder / "host.json"
            path.write_text(
                json.dumps({"url": url, "token": token, "pid": pid, "api": api}), encoding="utf-8"
            )
            path.chmod(0o600)  # the token lets a caller run actions
            return url, token
        time.sleep(0.2)
    raise PrefectUnavailable(f"the action host did not start; see {folder / 'host.log'}")


def _stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL if it is still there (Prefect may handle SIGTERM itself)."""
    import signal

    if not pid or not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(30):
        if not alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def stop_host(base: str | None = None) -> bool:
    folder = home(base)
    record = _record(folder)
    (folder / "host.json").unlink(missing_ok=True)
    if not record:
        return False
    _stop_pid(int(record.get("pid", 0)))
    return True


class HostExecutor:
    """Actions run as Prefect task runs by the action host; this process never imports Prefect."""

    def __init__(self, base: str | None = None) -> None:
        self.url, self._token = ensure_host(base)
        self.pending: list[Future[ActionOutcome]] = []

    def _post(
        self,
        session: Session,
        node: str,
        action: str,
        key: str,
        inputs: dict[str, Any],
        retries: int,
        timeout: float | None,
    ) -> ActionOutcome:
        body = json.dumps(
            {
                "session": session.id,
                "motive": session.motive,
                "node": node,
                "action": action,
                "key": key,
                "inputs": inputs,
                "retries": retries,
                "timeout": timeout,
            },
            default=str,
        ).encode()
        request = urllib.request.Request(
            f"{self.url}/run",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
        )
        wait = (timeout or 300.0) * (retries + 1) + 30.0
        try:
            with urllib.request.urlopen(request, timeout=wait) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as err:
            return ActionOutcome(failure=f"the action host at {self.url} did not answer: {err}")
        return ActionOutcome(
            result=data["result"],
            error=data["error"],
            code=data.get("code"),
            failure=data.get("failure"),
            attempts=int(data["attempts"]),
            run_id=data["run_id"],
        )

    def run(self, effect: RunAction, session: Session) -> ActionOutcome:
        args = (
            session,
            effect.node,
            effect.action,
            effect.key,
            dict(effect.input),
            effect.retries,
            effect.timeout,
        )
        if effect.wait:
            return self._post(*args)
        future = _background.submit(self._post, *args)
        self.pending.append(future)
        return ActionOutcome(pending=future)

    def run_after(self, effect: RunAfter, session: Session) -> ActionOutcome:
        future = _background.submit(
            self._post,
            session,
            "after",
            effect.action,
            effect.key,
            dict(effect.input),
            effect.retries,
            None,
        )
        self.pending.append(future)
        return ActionOutcome(pending=future)

    def drain(self, timeout: float = 300.0) -> list[ActionOutcome]:
        done = [f.result(timeout=timeout) for f in self.pending]
        self.pending.clear()
        return done


if __name__ == "__main__":
    threading.current_thread().name = "journeys-action-host"
    serve(int(sys.argv[1]), os.environ["JOURNEYS_HOST_TOKEN"])
