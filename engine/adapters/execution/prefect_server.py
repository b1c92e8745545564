"""The embedded Prefect server: started once in the background, reused by every command.

With no ``PREFECT_API_URL`` configured, Prefect would start a temporary server in each
process (15-25 s each time, see shared/notes/prefect.md). Instead the action host (see
engine/adapters/execution/action_host.py) starts ``prefect server start`` detached, with its data in
``<journeys home>/prefect``, and writes where it listens to ``server.json``; later commands
find it there and connect in milliseconds. The host stops it when it stops (idle, or
``journeys prefect stop``, or the end of the ``journeys serve`` that started it).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from engine.adapters.home import child_environment, journeys_home
from engine.adapters.processes import (
    STOP_TIMEOUT,
    alive,
    launch_detached,
    locked,
    read_pid,
    read_record,
    stop_recorded,
)
from engine.errors import Unavailable

__all__ = ["alive", "launch_detached"]  # used from here by the action host and the tests
STARTUP_TIMEOUT = 90.0


class PrefectUnavailable(Unavailable, RuntimeError):
    """No Prefect API could be reached or started: what, where, and what to do."""


def quiet_environment() -> None:
    """Settings for every process that talks to Prefect (before prefect is imported)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The agent's terminal is not Prefect's log: runs and their logs are in the Prefect UI.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")


def home(base: str | None = None) -> Path:
    """Where the background processes keep their data and records: ``<journeys home>/prefect``."""
    return journeys_home(base) / "prefect"


def _healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _record(folder: Path) -> dict[str, object] | None:
    return read_record(folder / "server.json")


def server_record(base: str | None = None) -> dict[str, object] | None:
    """What ``server.json`` says of the embedded server (url, pid), if anything."""
    return _record(home(base))


def running(base: str | None = None) -> str | None:
    """The API URL of the embedded server if it answers."""
    record = _record(home(base))
    url = str(record["url"]) if record and "url" in record else None
    return url if url and _healthy(url) else None


def ensure_api(base: str | None = None, progress: bool = True) -> str:
    """The Prefect API to use: ``PREFECT_API_URL`` if set, else the embedded server (started
    once if needed). Sets ``PREFECT_API_URL`` for this process."""
    quiet_environment()
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        return configured
    url = running(base)
    if not url:
        # Of two processes starting it at the same moment, the second waits, then finds it.
        with locked(home(base) / "server.lock"):
            url = running(base) or _start(home(base), progress, base)
    os.environ["PREFECT_API_URL"] = url
    return url


def _start(folder: Path, progress: bool, base: str | None = None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    stop_server(base)  # one that does not answer (hung, half started) is not left behind
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = child_environment(
        base,
        {
            "PREFECT_HOME": str(folder),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
    )
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    pidfile = folder / "server.pid"
    launch_detached(command, env, folder / "server.log", pidfile, cwd=folder)
    if progress:
        print(
            "starting the embedded Prefect server (once; later commands reuse it)...",
            file=sys.stderr,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pid = 0
    while time.monotonic() < deadline:
        if not pid:
            pid = read_pid(pidfile)
        if pid and not alive(pid):
            raise PrefectUnavailable(
                f"the embedded Prefect server stopped at start; see {folder / 'server.log'}"
            )
        if _healthy(url, timeout=0.5):
            (folder / "server.json").write_text(
                json.dumps({"url": url, "pid": pid}), encoding="utf-8"
            )
            return url
        time.sleep(0.3)
    stop_server(base)
    raise PrefectUnavailable(
        f"the embedded Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; "
        f"see {folder / 'server.log'}, or set PREFECT_API_URL to a running server"
    )


def stop_server(base: str | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the embedded server and every process of its group; return when all are gone.
    False when none was running."""
    return stop_recorded(home(base), "server", timeout)


def stop(base: str | None = None) -> bool:
    """Stop the action host and the embedded server; return once both are gone (False when
    neither was running)."""
    from engine.adapters.execution.action_host import stop_host

    host = stop_host(base)
    server = stop_server(base)
    return host or server
