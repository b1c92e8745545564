"""The action host's side: the long-lived process that runs actions in Prefect for every
command (the commands' side, which launches it and posts actions to it, is
engine/adapters/execution/action_host.py, whose ``__main__`` runs :func:`serve`).

It answers ``GET /health`` at once ("starting"), starts or reuses the embedded Prefect server
(unless ``PREFECT_API_URL`` names one), warms Prefect up and opens the back-office database,
then says "ready". ``POST /run`` runs one action as a task run of the host's dispatcher flow
run and answers its outcome; ``POST /touch`` says a process uses the host. It stops by itself
once idle (see :meth:`Host.watch`), on SIGTERM with the embedded server, and on
``HANDOVER_SIGNAL`` without it (another host with other settings takes over).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.adapters.execution.base import Call
from engine.adapters.execution.prefect_server import ensure_api, home, stop_server
from engine.adapters.home import idle_seconds
from engine.adapters.processes import alive, read_record

if TYPE_CHECKING:
    from engine.adapters.execution.prefect_actions import PrefectExecutor

#: What makes a running host the right one for a command: the back office it writes, the
#: actions it knows and the day it believes it is. (The Prefect API is compared apart.)
SETTINGS = ("JOURNEYS_BACKOFFICE_DB", "JOURNEYS_BACKOFFICE_TODAY", "JOURNEYS_ACTION_MODULES")
#: A host replaced by another one for other settings leaves the embedded server running.
HANDOVER_SIGNAL = signal.SIGUSR1


def fingerprint(env: Mapping[str, str]) -> str:
    """The settings of a host, hashed: its health answer shows no database password."""
    text = json.dumps([env.get(name) or "" for name in SETTINGS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def host_record(folder: Path) -> dict[str, Any] | None:
    """What the command that launched the host wrote of it: url, token, pid, owner."""
    return read_record(folder / "host.json")


class Host:
    """The host's state: starting, ready or down; who uses it, and since when it is idle."""

    def __init__(self) -> None:
        self.state, self.reason = "starting", ""
        self.settings = fingerprint(os.environ)  # before ensure_api sets PREFECT_API_URL
        self.embedded = not os.environ.get("PREFECT_API_URL")
        self.api: str | None = os.environ.get("PREFECT_API_URL")
        self.executor: PrefectExecutor | None = None
        self.idle = idle_seconds()
        owner = os.environ.get("JOURNEYS_BACKOFFICE_OWNER", "")
        self.owners: set[int] = {int(owner)} if owner.isdigit() else set()
        self.used = time.monotonic()
        self.busy = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def health(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "api": self.api,
            "embedded": self.embedded,
            "settings": self.settings,
            "pid": os.getpid(),
            "idle_seconds": self.idle,
        }

    def touch(self, owner: int | None = None) -> None:
        with self.lock:
            self.used = time.monotonic()
            if owner:
                self.owners.add(owner)

    def prepare(self) -> None:
        """Start (or reuse) the Prefect server, then warm up: the first action after "ready"
        pays no start-up cost."""
        try:
            self.api = ensure_api(progress=False)
            self.executor = _executor()
            _warm_up(self.executor)
        except Exception as err:  # the server does not start, the back office cannot open
            self.state = "down"
            self.reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            time.sleep(30)  # long enough for the commands waiting to read why
            self.stop(server=True)
            return
        self.state = "ready"
        self.touch()

    def idle_for(self) -> float:
        with self.lock:
            self.owners = {pid for pid in self.owners if alive(pid)}
            if self.owners or self.busy:
                self.used = time.monotonic()
            return time.monotonic() - self.used

    def watch(self) -> None:
        """Stop by itself once nobody has used it for the idle time (0: never)."""
        if not self.idle:
            return
        while True:
            time.sleep(min(5.0, max(0.2, self.idle / 5)))
            if self.state == "ready" and self.idle_for() > self.idle:
                self.stop(server=True)

    def stop(self, server: bool) -> None:
        """Stop answering, forget the record, stop the embedded server (unless handed over
        to another host), then exit."""
        folder = home()
        if self.server is not None:
            self.server.shutdown()
        record = host_record(folder)
        if record and int(record.get("pid") or 0) == os.getpid():
            (folder / "host.json").unlink(missing_ok=True)
        if self.executor is not None:
            self.executor.close()  # the running actions finish; the dispatcher flow run completes
        if server and self.embedded:
            stop_server()
        os._exit(0)


def _executor() -> PrefectExecutor:
    """The host's executor: the catalogue's actions, under the ledger of the back office
    they write (the host is started by a command; it is the one to take it from there)."""
    from actions.registry import ledger
    from engine.adapters.execution.prefect_actions import PrefectExecutor

    return PrefectExecutor(ledger=ledger())


def _warm_up(executor: PrefectExecutor) -> None:
    """The back-office database opened and the dispatcher flow run open: the first action
    after "ready" pays no start-up cost."""
    from actions.registry import open_backoffice

    open_backoffice()
    executor.dispatcher.warm()


class HostHandler(BaseHTTPRequestHandler):
    """GET /health at once; POST /run once ready, POST /touch to say the host is used."""

    host: Host
    token: str

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
        self._send(200 if self.path == "/health" else 404, self.host.health())

    def do_POST(self) -> None:
        host = self.host
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"error": "unauthorized"})
            return
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.path == "/touch":
            owner = request.get("owner")
            host.touch(int(owner) if isinstance(owner, int) else None)
            self._send(200, host.health())
            return
        executor = host.executor
        if host.state != "ready" or executor is None:
            self._send(503, host.health())
            return
        host.touch()
        with host.lock:
            host.busy += 1
        try:
            self._run(executor, request)
        finally:
            with host.lock:
                host.busy -= 1
            host.touch()

    def _run(self, executor: PrefectExecutor, request: dict[str, Any]) -> None:
        call = Call(
            action=request["action"],
            key=request["key"],
            inputs=request["inputs"],
            retries=request["retries"],
            timeout=request["timeout"],
            session=request["session"],
            motive=request.get("motive"),
            node=request["node"],
        )
        # Each action is a task run of the host's dispatcher flow run (its own threads):
        # this request thread only waits for the outcome.
        outcome = executor.call(call)
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


def serve(port: int, token: str) -> None:
    """Run the host until it stops itself (idle, SIGTERM, handed over)."""
    host = Host()
    handler = type("Handler", (HostHandler,), {"host": host, "token": token})
    host.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    # SIGTERM (journeys prefect stop, the end of journeys serve): the embedded server too.
    # The handler only starts the stop: server.shutdown() waits for this thread's loop.
    for sig, server in ((signal.SIGTERM, True), (HANDOVER_SIGNAL, False)):
        signal.signal(
            sig,
            lambda *_, s=server: threading.Thread(target=host.stop, args=(s,), daemon=True).start(),
        )
    threading.Thread(target=host.prepare, name="journeys-host-prepare", daemon=True).start()
    threading.Thread(target=host.watch, name="journeys-host-idle", daemon=True).start()
    host.server.serve_forever()
    # Stopped by host.stop() on another thread, which exits once the server is stopped too.
    threading.Event().wait()
