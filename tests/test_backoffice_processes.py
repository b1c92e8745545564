"""The back office's processes (the action host and the embedded Prefect server), as a user
meets them: started where the user is, reused, stopped when nobody needs them, never left.

Real commands in subprocesses, real servers on free ports; a process "left" is any process
whose environment names the test's journeys home (the host, the Prefect server, its workers).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from engine.adapters.execution.prefect_server import free_port
from tests.conftest import ROOT

JOURNEYS = Path(sys.executable).with_name("journeys")
ANSWERS = 'ask_order: "10000001"\noffer: refund\n'
WAIT = 180.0  # a generous bound on a busy machine: the Prefect server takes 15-25 s to start


def environment(**settings: str) -> dict[str, str]:
    """This machine's environment without the test run's journeys settings (the default
    executor, no Prefect API, the default home), plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JOURNEYS_") and k not in ("PREFECT_API_URL", "PREFECT_HOME")
    }
    return {**env, **settings}


def left(home: Path) -> list[int]:
    """The live processes started for ``home`` (their environment says JOURNEYS_HOME=home)."""
    found = []
    marker = f"JOURNEYS_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def gone(home: Path, within: float) -> list[int]:
    """What is still left of ``home`` after up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while (still := left(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return still


@contextmanager
def cleaned(home: Path, env: dict[str, str], cwd: Path) -> Iterator[None]:
    """Whatever a failing test leaves of ``home`` is stopped (then the test fails on it)."""
    try:
        yield
    finally:
        if left(home):
            subprocess.run(
                [str(JOURNEYS), "prefect", "stop"], cwd=cwd, env=env, capture_output=True
            )


def journeys(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOURNEYS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=WAIT
    )


def files_under(folder: Path) -> dict[str, float]:
    """Every file under the source folder and when it changed (the virtualenv, git and
    compiled modules aside)."""
    skip = {".venv", ".git", "__pycache__", "artifacts", "out"}
    found = {}
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            path = os.path.join(top, name)
            found[path] = os.stat(path).st_mtime
    return found


def test_a_journey_run_in_another_folder_writes_the_back_office_there_then_it_stops_when_idle(
    tmp_path: Path,
) -> None:
    """The refund of `journeys run` (the default executor: the action host and Prefect) is in
    the back office of the folder it ran in, as `journeys backoffice show` there says; nothing
    is written in the source folder; the back office stops by itself after its idle time."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "answers.yaml").write_text(ANSWERS)
    home = folder / ".journeys"
    env = environment(JOURNEYS_BACKOFFICE_IDLE_SECONDS="3")
    source = files_under(ROOT)
    with cleaned(home, env, folder):
        run = journeys(
            folder,
            env,
            "run",
            "delivery-missing",
            "--input",
            "customer_id=C001",
            "--answers",
            "answers.yaml",
            "--format",
            "json",
        )
        assert run.returncode == 0, run.stderr
        session = json.loads(run.stdout)
        assert session["outcome"] == "resolved"
        refund = session["context"]["refund"]["refund_id"]
        shown = journeys(folder, env, "backoffice", "show", "refunds", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        [row] = [r for r in json.loads(shown.stdout) if r["refund_id"] == refund]
        assert (row["order_id"], row["amount"]) == ("10000001", 59.9)
        assert (home / "backoffice.db").is_file()
        logged = journeys(folder, env, "backoffice", "show", "contact_log", "--format", "json")
        assert session["context"]["customer"]["customer_id"] == "C001"
        assert any(r["outcome"] == "resolved" for r in json.loads(logged.stdout))
        changed = {p for p, t in files_under(ROOT).items() if source.get(p) != t}
        assert changed == set()  # no back office, no session, no Prefect data in the source
        assert gone(home, within=WAIT) == []  # nobody uses it: it stopped by itself
        assert not (home / "prefect" / "host.json").exists()
        assert not (home / "prefect" / "server.json").exists()


def hosts(home: Path) -> list[int]:
    return [
        pid
        for pid in left(home)
        if b"engine.adapters.execution.action_host" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_two_commands_at_once_share_one_back_office_that_prefect_stop_stops(
    tmp_path: Path,
) -> None:
    """Started together, two `journeys run` start one back office (not two); `journeys
    prefect status` lists it with its memory; `journeys prefect stop` returns once both of
    its processes are gone."""
    home = tmp_path / "home"
    (tmp_path / "answers.yaml").write_text(ANSWERS)
    env = environment(JOURNEYS_HOME=str(home), JOURNEYS_BACKOFFICE_IDLE_SECONDS="0")
    command = [
        str(JOURNEYS),
        "run",
        "delivery-missing",
        "--new",
        "--input",
        "customer_id=C001",
        "--answers",
        "answers.yaml",
    ]
    with cleaned(home, env, tmp_path):
        runs = [
            subprocess.Popen(
                command,
                cwd=tmp_path,
                # Their own session databases: the shared part here is the back office.
                env={**env, "JOURNEYS_DB": f"sqlite:///{tmp_path / f'sessions-{n}.db'}"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for n in range(2)
        ]
        for run in runs:
            _out, err = run.communicate(timeout=WAIT)
            assert run.returncode == 0, err.decode()
        host = json.loads((home / "prefect" / "host.json").read_text())
        assert hosts(home) == [host["pid"]]
        server = json.loads((home / "prefect" / "server.json").read_text())
        assert {host["pid"], server["pid"]} <= set(left(home))  # idle 0: they stay
        status = journeys(tmp_path, env, "prefect", "status")
        assert f"action host: pid {host['pid']}, {host['url']}, ready" in status.stdout
        assert f"embedded Prefect server: pid {server['pid']}, {server['url']}" in status.stdout
        assert status.stdout.count(" MB") == 2, status.stdout
        stop = journeys(tmp_path, env, "prefect", "stop")
        assert stop.returncode == 0 and "stopped the back office" in stop.stdout
        assert left(home) == []  # at once: stop returned only when they were gone
        again = journeys(tmp_path, env, "prefect", "stop")
        assert "was not running" in again.stdout


def sessions_saved(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])


def test_serve_starts_the_back_office_in_the_background_and_stops_it_when_it_stops(
    tmp_path: Path,
) -> None:
    """The API answers while the back office starts; an action asked for meanwhile is
    answered 503 at once (nothing saved), then works; SIGTERM leaves no process behind."""
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "sessions.db"
    env = environment(JOURNEYS_HOME=str(home), JOURNEYS_DB=f"sqlite:///{db}")
    body = {"motive": "delivery.missing", "customer_id": "C001"}
    with (
        cleaned(home, env, tmp_path),
        subprocess.Popen(
            [str(JOURNEYS), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        ) as serve,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        try:
            health = _first_answer(client, "/v1/health")
            assert health == {"status": "ok", "backoffice": "starting"}
            early = client.post("/v1/sessions", json=body)  # its first step runs an action
            assert early.status_code == 503, early.text
            assert early.headers["content-type"] == "application/problem+json"
            assert int(early.headers["retry-after"]) > 0
            problem = early.json()
            assert problem["backoffice"] == "starting"
            assert "back office is starting" in problem["detail"]
            assert sessions_saved(db) == 0  # nothing saved: the same request is sent again
            _until(lambda: client.get("/v1/health").json()["backoffice"] == "ready")
            started = client.post("/v1/sessions", json=body)
            assert started.status_code == 201, started.text
            assert started.json()["step"]["node"] == "ask_order"  # crm.get_customer ran
            host = json.loads((home / "prefect" / "host.json").read_text())
            server = json.loads((home / "prefect" / "server.json").read_text())
            assert host["owner"] == serve.pid
            assert {host["pid"], server["pid"]} <= set(left(home))
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(WAIT)
        assert serve.returncode == 0, serve.stderr.read() if serve.stderr else ""
        assert left(home) == []  # at once: serve stopped what it started before it exited


def _first_answer(client: httpx.Client, path: str) -> object:
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.get(path).json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _until(ready: object) -> None:
    deadline = time.monotonic() + WAIT
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"the back office was not ready within {WAIT:.0f} s")
        time.sleep(0.2)
