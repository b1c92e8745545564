"""The action host: one long-lived process that runs actions in Prefect for every command.

Importing Prefect and setting up its client takes a second or two in each process. With the
host, a `journeys` command never imports Prefect: it posts the action to the host (on
127.0.0.1, with a secret token) and gets the task run's outcome back (each action is a task
run of the host's dispatcher flow run: engine/adapters/execution/prefect_dispatch.py).

The host is the back office's keeper (its side: engine/adapters/execution/host_server.py). Launched by the first command that needs it (or by
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
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from engine.adapters.execution.base import BaseExecutor, Call, answered_outcome
from engine.adapters.execution.host_server import HANDOVER_SIGNAL, fingerprint, host_record
from engine.adapters.execution.prefect_server import (
    STARTUP_TIMEOUT,
    PrefectUnavailable,
    free_port,
    home,
    quiet_environment,
)
from engine.adapters.home import child_environment, idle_seconds
from engine.adapters.processes import (
    alive,
    belongs_to,
    launch_detached,
    locked,
    read_pid,
    stop_group,
    stop_recorded,
)
from engine.sessions.service import ActionOutcome

HOST_STOP_TIMEOUT = 30.0  # the host stops the Prefect server first


def _health(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "state" in data else None


def host_status(base: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The host's record and its health answer (None when it does not answer)."""
    record = host_record(home(base))
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
        record = host_record(folder)
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
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "engine.adapters.execution.action_host", str(port)]
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


class HostExecutor(BaseExecutor):
    """Actions run as Prefect task runs by the action host; this process never imports Prefect."""

    thread_name = "journeys-host-call"
    drain_timeout = 300.0

    def __init__(self, base: str | None = None) -> None:
        super().__init__()
        self.base = base
        self.folder = home(base)
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
        record = host_record(self.folder)
        if record is None or again:
            record = ensure_host(self.base)  # stopped meanwhile: started again
            touch(record, os.getpid())
        self.url = str(record["url"])
        return self.url, str(record["token"])

    def call(self, call: Call) -> ActionOutcome:
        body = json.dumps(
            {
                "session": call.session,
                "motive": call.motive,
                "node": call.node,
                "action": call.action,
                "key": call.key,
                "inputs": call.inputs,
                "retries": call.retries,
                "timeout": call.timeout,
            },
            default=str,
        ).encode()
        try:
            data = self._post(body, (call.timeout or 300.0) * (call.retries + 1) + 30.0)
        except _NoAnswer as err:
            return ActionOutcome(failure=str(err))
        return answered_outcome(data, data["run_id"])

    def _post(self, body: bytes, wait: float) -> Any:
        """POST /run to the host; sent again, once, to a host started anew if the first one
        had stopped (refused: it never reached a host). Anything else may have run: it is
        not sent twice, and says why."""
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
                    return json.loads(response.read())
            except PrefectUnavailable as err:
                raise _NoAnswer(str(err)) from None
            except urllib.error.URLError as err:
                if again or not isinstance(err.reason, ConnectionRefusedError):
                    raise _NoAnswer(f"the action host at {url} did not answer: {err}") from None
            except (OSError, ValueError) as err:
                raise _NoAnswer(f"the action host at {url} did not answer: {err}") from None
        raise AssertionError("unreachable")  # the second try returns or raises


class _NoAnswer(Exception):
    """The host could not be reached, or did not answer: why, as the action's failure."""


if __name__ == "__main__":
    from engine.adapters.execution.host_server import serve

    threading.current_thread().name = "journeys-action-host"
    serve(int(sys.argv[1]), os.environ["JOURNEYS_HOST_TOKEN"])
