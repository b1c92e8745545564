"""The background processes journeys starts: launched detached, found again, stopped for sure.

Each one runs in its own session (its pid is its process group's id), so stopping it stops
what it started too (the Prefect server's workers). Stopping waits until every process of
the group is gone, escalating SIGTERM to SIGKILL after a timeout: "stopped" is said only
when nothing is left. Linux only (``/proc``), as the rest of the back office.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

DETACH = """
import os, sys
if os.fork():
    sys.exit(0)
os.setsid()
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""

#: How long a process may take to stop on SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


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


def read_pid(pidfile: Path) -> int:
    try:
        return int(pidfile.read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return 0


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child of ours would linger as a zombie: it counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def group(pgid: int) -> list[int]:
    """The live processes of the process group ``pgid`` (the leader included, if alive)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def stop_group(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the process ``pid`` and its process group; return once all are gone (SIGTERM,
    then SIGKILL after ``timeout``). False when nothing was running."""
    members = set(group(pid)) | ({pid} if alive(pid) else set())
    if not members:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in sorted(members):
            _signal(target, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            members = {p for p in members | set(group(pid)) if alive(p)}
            if not members:
                return True
            time.sleep(0.05)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def rss_bytes(pid: int) -> int:
    """The resident memory of ``pid`` and the rest of its process group, from /proc."""
    total = 0
    for member in set(group(pid)) | {pid}:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes: of two commands starting the back
    office at the same moment, the second waits and then finds it started."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def belongs_to(pid: int, home: Path) -> bool:
    """Whether ``pid`` is a process journeys started for ``home`` (its environment says so):
    a pid read from an old record may have been reused since by someone else's process."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"JOURNEYS_HOME={home}".encode() in environ


def read_record(path: Path) -> dict[str, Any] | None:
    """A process's record (``server.json``, ``host.json``): where it listens, its pid; None
    when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stop_recorded(folder: Path, name: str, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the process recorded as ``name`` in ``folder`` (the pid of ``NAME.json`` and of
    ``NAME.pid``) with its group, if it is ours; return when all are gone. False when none was
    running. The record is removed either way."""
    record = read_record(folder / f"{name}.json") or {}
    pids = {int(str(record.get("pid") or 0)), read_pid(folder / f"{name}.pid")} - {0}
    stopped = False
    for pid in pids:
        if belongs_to(pid, folder.parent):
            stopped = stop_group(pid, timeout) or stopped
    (folder / f"{name}.json").unlink(missing_ok=True)
    return stopped
