"""The action host: one long-lived process that runs actions in Prefect for every command.

Importing Prefect and setting up its client takes a second or two in each process. With the
host, a `journeys` command never imports Prefect: it posts the action to the host (on
127.0.0.1, with a secret token) and gets the task run's outcome back (each action is a task
run of the host's dispatcher flow run: engine/adapters/prefect_dispatch.py).

The host is the back office's keeper. Launched by the first command that needs it (or by
`journeys serve` at its start), it answers ``GET /health`` at once ("starting"), starts or
reuses the embedded Prefect server (unless ``PREFECT_API_URL`` names one), warms Prefect up
and opens the back-office database, then says "ready". It stops by itself, with the embedded
server, after ``JOURNEYS_BACKOFFICE_IDLE_SECONDS`` (default 300) without a request while no
process that uses it (a `journeys serve`, an interactive `journeys run`, a `journeys worker`)
is alive; `journeys prefect stop` and the end of the `journeys serve` that started it stop it
too (SIGTERM). Its records are in ``<journeys home>/prefect/host.json`` (mode 0600: the token).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.adapters.home import child_environment, idle_seconds
from engine.adapters.prefect_server import (
    STARTUP_TIMEOUT,
    PrefectUnavailable,
    ensure_api,
    free_port,
    home,
    quiet_environment,
    stop_server,
)
from engine.adapters.processes import (
    alive,
    belongs_to,
    launch_detached,
    locked,
    read_pid,
    read_record,
    stop_group,
    stop_recorded,
)
from engine.runtime import RunAction, RunAfter, Session
from engine.service import ActionOutcome

_background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="journeys-host-call")

#: What makes a running host the right one for a command: the back office it writes, the
#: actions it knows and the day it believes it is. (The Prefect API is compared apart.)
SETTINGS = ("JOURNEYS_BACKOFFICE_DB", "JOURNEYS_BACKOFFICE_TODAY", "JOURNEYS_ACTION_MODULES")
#: A host replaced by another one for other settings leaves the embedded server running.
HANDOVER_SIGNAL = signal.SIGUSR1
HOST_STOP_TIMEOUT = 30.0  # the host stops the Prefect server first


def fingerprint(env: Mapping[str, str]) -> str:
    """The settings of a host, hashed: its health answer shows no database password."""
    text = json.dumps([env.get(name) or "" for name in SETTINGS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------- the host


class Host:
    """The host's state: starting, ready or down; who uses it, and since when it is idle."""

    def __init__(self) -> None:
        self.state, self.reason = "starting", ""
        self.settings = fingerprint(os.environ)  # before ensure_api sets PREFECT_API_URL
        self.embedded = not os.environ.get("PREFECT_API_URL")
        self.api: str | None = os.environ.get("PREFECT_API_URL")
        self.executor: Any = None
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
            from engine.adapters.prefect_actions import PrefectExecutor

            self.executor = PrefectExecutor()
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
        record = _record(folder)
        if record and int(record.get("pid") or 0) == os.getpid():
            (folder / "host.json").unlink(missing_ok=True)
        if self.executor is not None:
            self.executor.close()  # the running actions finish; the dispatcher flow run completes
        if server and self.embedded:
            stop_server()
        os._exit(0)


def _warm_up(executor: Any) -> None:
    """The back-office database opened and the dispatcher flow run open: the first action
    after "ready" pays no start-up cost."""
    from actions.backoffice import get_engine

    get_engine()
    executor.dispatcher.warm()


def serve(port: int, token: str) -> None:
    """Run the host: GET /health at once, POST /run once ready, POST /touch to say it is used."""
    host = Host()

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
            self._send(200 if self.path == "/health" else 404, host.health())

        def do_POST(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._send(401, {"error": "unauthorized"})
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path == "/touch":
                owner = request.get("owner")
                host.touch(int(owner) if isinstance(owner, int) else None)
                self._send(200, host.health())
                return
            if host.state != "ready":
                self._send(503, host.health())
                return
            host.touch()
            with host.lock:
                host.busy += 1
            try:
                self._run(request)
            finally:
                with host.lock:
                    host.busy -= 1
                host.touch()

        def _run(self, request: dict[str, Any]) -> None:
            session = Session(
                id=request["session"],
                journey="",
                version=0,
                definition="",
                motive=request.get("motive"),
            )
            # Each action is a task run of the host's dispatcher flow run (its own threads):
            # this request thread only waits for the outcome.
            outcome = host.executor._call(
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

    host.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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


# ----------------------------------------------------------------------- the client


def _record(folder: Path) -> dict[str, Any] | None:
    return read_record(folder / "host.json")


def _health(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "state" in data else None


def host_status(base: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The host's record and its health answer (None when it does not answer)."""
    record = _record(home(base))
    return record, (_health(str(record["url"])) if record else None)


def _fits(health: dict[str, Any] | None, wanted: str) -> bool:
    """A host that answers, with this command's settings and Prefect API, not failed."""
    if not health or health.get("settings") != wanted or health.get("state") == "down":
        return False
    configured = os.environ.get("PREFECT_API_URL")
    return health.get("api") == configured if configured else bool(health.get("embedded"))


def ensure_host(
    base: str | None = None, progress: bool = True, wait: bool = True
) -> dict[str, Any]:
    """The record (url, token, pid) of a host with this command's settings, launched if
    needed; with ``wait``, once it is ready (else it may still be starting)."""
    quiet_environment()
    try:
        idle_seconds()  # a bad setting said here, not as a host that dies at its start
    except ValueError as err:
        raise PrefectUnavailable(str(err)) from None
    folder = home(base)
    wanted = fingerprint(child_environment(base))
    with locked(folder / "host.lock"):
        record = _record(folder)
        health = _answer_of(record, folder) if record else None
        if not (record and _fits(health, wanted)):
            if record:
                _retire(record, folder)
            record = _launch(folder, base)
            if progress:
                print(
                    "starting the back office (the embedded Prefect server and the action "
                    "host; once, about 15 s; later commands reuse it)...",
                    file=sys.stderr,
                )
    if wait:
        _wait_ready(record, folder)
    return record


def _answer_of(record: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The health of the recorded host; one launched a moment ago by another command is
    waited for while it imports (it answers within a second or two), not replaced."""
    pid = int(record.get("pid") or 0)
    deadline = time.monotonic() + 30
    while True:
        health = _health(str(record["url"]))
        if health is not None or time.monotonic() > deadline:
            return health
        if not (alive(pid) and belongs_to(pid, folder.parent)):
            return None
        time.sleep(0.05)


def _retire(record: dict[str, Any], folder: Path) -> None:
    """A host with other settings makes way; the embedded server stays for the next one."""
    pid = int(record.get("pid") or 0)
    if pid and belongs_to(pid, folder.parent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, HANDOVER_SIGNAL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_group(pid)
    (folder / "host.json").unlink(missing_ok=True)


def _launch(folder: Path, base: str | None) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    pidfile = folder / "host.pid"
    env = child_environment(base, {"JOURNEYS_HOST_TOKEN": token})
    # Found wherever journeys is (a source folder, site-packages), run from the home: the
    # host depends on no working directory.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "engine.adapters.action_host", str(port)]
    launch_detached(command, env, folder / "host.log", pidfile, cwd=folder)
    pid = 0
    for _ in range(100):  # the launcher's child writes its pid just before it runs the host
        pid = read_pid(pidfile)
        if pid:
            break
        time.sleep(0.02)
    owner = os.environ.get("JOURNEYS_BACKOFFICE_OWNER")
    record = {"url": url, "token": token, "pid": pid, "owner": int(owner) if owner else None}
    path = folder / "host.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    path.chmod(0o600)  # the token lets a caller run actions
    return record


def _wait_ready(record: dict[str, Any], folder: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT + 30
    pid = int(record.get("pid") or 0)
    while time.monotonic() < deadline:
        health = _health(str(record["url"]), timeout=2.0)
        if health and health["state"] == "ready":
            return
        if health and health["state"] == "down":
            raise PrefectUnavailable(
                f"the back office did not start: {health.get('reason')}; see "
                f"{folder / 'host.log'} and {folder / 'server.log'}"
            )
        if not health and pid and not alive(pid):
            raise PrefectUnavailable(f"the action host stopped at start; see {folder / 'host.log'}")
        time.sleep(0.1)
    raise PrefectUnavailable(
        f"the back office was not ready within {STARTUP_TIMEOUT + 30:.0f} s; see "
        f"{folder / 'host.log'} and {folder / 'server.log'}"
    )


def touch(record: dict[str, Any], owner: int | None = None) -> dict[str, Any] | None:
    """Tell the host it is used (by ``owner``, a pid, for as long as that process lives)."""
    request = urllib.request.Request(
        f"{record['url']}/touch",
        data=json.dumps({"owner": owner}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {record['token']}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prefect_api(base: str | None = None) -> str:
    """The Prefect API for a process that talks to Prefect itself (task workers, their
    dispatcher): ``PREFECT_API_URL``, else the embedded server kept by the host, which this
    process then keeps alive while it lives."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        return configured
    record = ensure_host(base)
    health = touch(record, os.getpid())
    if not health or not health.get("api"):
        raise PrefectUnavailable(f"the action host does not answer; see {home(base) / 'host.log'}")
    os.environ["PREFECT_API_URL"] = str(health["api"])
    return str(health["api"])


def stop_host(base: str | None = None) -> bool:
    """Stop the host (and, through it, the embedded server); return when it is gone."""
    return stop_recorded(home(base), "host", HOST_STOP_TIMEOUT)


class HostExecutor:
    """Actions run as Prefect task runs by the action host; this process never imports Prefect."""

    def __init__(self, base: str | None = None) -> None:
        self.base = base
        self.folder = home(base)
        self.pending: list[Future[ActionOutcome]] = []
        self.url = "the action host"
        try:
            record = ensure_host(base)
        except PrefectUnavailable:
            return  # each action tries again, and fails with the reason (an incident)
        touch(record, os.getpid())  # kept alive while this process lives (an agent typing)
        self.url = str(record["url"])

    def _target(self, again: bool = False) -> tuple[str, str]:
        """The host's address and token, read from its record each time: a host started
        again since (after its idle time, or `journeys prefect stop`) is found at once."""
        record = _record(self.folder)
        if record is None or again:
            record = ensure_host(self.base)  # stopped meanwhile: started again
            touch(record, os.getpid())
        self.url = str(record["url"])
        return self.url, str(record["token"])

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
        wait = (timeout or 300.0) * (retries + 1) + 30.0
        url = self.url
        for again in (False, True):
            try:
                url, token = self._target(again)
                request = urllib.request.Request(
                    f"{url}/run",
                    data=body,
                    method="POST",
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                    },
                )
                with urllib.request.urlopen(request, timeout=wait) as response:
                    data = json.loads(response.read())
                break
            except PrefectUnavailable as err:
                return ActionOutcome(failure=str(err))
            except urllib.error.URLError as err:
                # Refused: the request never reached a host (it had stopped); safe to send
                # again to one started anew. Anything else may have run: not sent twice.
                if again or not isinstance(err.reason, ConnectionRefusedError):
                    return ActionOutcome(failure=f"the action host at {url} did not answer: {err}")
            except (OSError, ValueError) as err:
                return ActionOutcome(failure=f"the action host at {url} did not answer: {err}")
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
