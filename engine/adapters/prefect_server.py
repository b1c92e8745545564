"""The embedded Prefect server: started once in the background, reused by every command.

With no ``PREFECT_API_URL`` configured, Prefect would start a temporary server in each
process (15-25 s each time, see shared/notes/prefect.md). Instead the first command that runs
an action starts ``prefect server start`` detached, with its data in ``.journeys/prefect``,
and writes where it listens to ``server.json``; later commands find it there and connect in
milliseconds. ``journeys prefect stop`` stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_HOME = ".journeys"
STARTUP_TIMEOUT = 90.0


class PrefectUnavailable(RuntimeError):
    """No Prefect API could be reached or started: what, where, and what to do."""


def quiet_environment() -> None:
    """Settings for every process that talks to Prefect (before prefect is imported)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The agent's terminal is not Prefect's log: runs and their logs are in the Prefect UI.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")


def home(base: str | None = None) -> Path:
    return Path(base or os.environ.get("JOURNEYS_HOME") or DEFAULT_HOME) / "prefect"


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
    try:
        data = json.loads((folder / "server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    url = running(base) or _start(home(base), progress)
    os.environ["PREFECT_API_URL"] = url
    return url


def _start(folder: Path, progress: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(folder.resolve()),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    pidfile = folder / "server.pid"
    launch_detached(command, env, folder / "server.log", pidfile)
    if progress:
        print(
            "starting the embedded Prefect server (once; later commands reuse it)...",
            file=sys.stderr,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pid = 0
    while time.monotonic() < deadline:
        if not pid and pidfile.exists():
            pid = int(pidfile.read_text() or 0)
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
    if pid:
        os.killpg(pid, signal.SIGTERM)
    raise PrefectUnavailable(
        f"the embedded Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; "
        f"see {folder / 'server.log'}, or set PREFECT_API_URL to a running server"
    )


DETACH = """
import os, sys
if os.fork():
    sys.exit(0)
os.setsid()
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def launch_detached(
    command: list[str], env: dict[str, str], log: Path, pidfile: Path, cwd: Path | None = None
) -> None:
    """Start ``command`` in its own session, its pid in ``pidfile``, its output in ``log``.

    A tiny launcher forks it and exits at once: the process outlives this command, and no
    child is left for this one to wait for.
    """
    pidfile.unlink(missing_ok=True)
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-c", DETACH, str(pidfile), *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=True,
            cwd=cwd,
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A finished child of ours would linger as a zombie: it counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def stop(base: str | None = None) -> bool:
    """Stop the embedded server (and the action host); False when none was running."""
    from engine.adapters.action_host import stop_host

    stop_host(base)
    folder = home(base)
    record = _record(folder)
    if not record or "pid" not in record:
        return False
    pid = int(str(record["pid"]))
    try:
        os.killpg(pid, signal.SIGTERM)  # the server and its workers
    except ProcessLookupError:
        (folder / "server.json").unlink(missing_ok=True)
        return False
    for _ in range(100):
        if not alive(pid):
            break
        time.sleep(0.1)
    (folder / "server.json").unlink(missing_ok=True)
    return True
