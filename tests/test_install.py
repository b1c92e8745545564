"""`pip install .` (not editable) gives a working `journeys`: the shipped library, the JSON
Schemas, the migrations and the console's files all come with the installed package.

The project is built into a wheel and installed, without its dependencies, into a fresh
virtual environment that borrows them from this one (a .pth line): offline and in seconds.
Every command then runs from an empty folder, with no PYTHONPATH, so only the installed code
can answer. Slow-ish (about 20 s), and part of the default run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*_cache", ".journeys")


class Installed:
    def __init__(self, venv: Path, cwd: Path) -> None:
        self.venv = venv
        self.cwd = cwd
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("JOURNEYS_") and k not in ("PYTHONPATH", "PYTHONHOME")
        }
        self.env["JOURNEYS_EXECUTOR"] = "local"  # no Prefect server for this test

    def exe(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.exe("journeys"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"journeys {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    # Built from a copy: setuptools' build/ folder in the source would carry stale files.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        cwd=base,
    )
    (wheel,) = wheels.glob("journeys-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies come from this environment, after the installed package on sys.path.
    (target / "_deps_from_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    cwd = base / "elsewhere"  # no ./journeys here: the shipped library is the default
    cwd.mkdir()
    return Installed(venv, cwd)


def test_the_installed_code_runs_not_the_source_folder(installed: Installed) -> None:
    proc = subprocess.run(
        [
            installed.exe("python"),
            "-c",
            "import cli, engine, schemas; print(cli.__file__, engine.__file__)",
        ],
        cwd=installed.cwd,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(installed.venv), path
        assert not Path(path).is_relative_to(ROOT), path


def test_validate_checks_the_shipped_library_by_default(installed: Installed) -> None:
    proc = installed.run("validate", "--strict", "--no-cache")
    assert "no problems found" in proc.stderr


def test_the_shipped_scenarios_pass(installed: Installed) -> None:
    proc = installed.run("test")
    assert " passed, 0 failed" in proc.stdout


def test_schema_is_printed(installed: Installed) -> None:
    schema = json.loads(installed.run("schema", "journey").stdout)
    assert "$schema" in schema and "properties" in schema


def test_db_upgrade_runs_the_migrations(installed: Installed) -> None:
    db = installed.cwd / "upgraded.db"
    installed.run("db", "upgrade", "--db", f"sqlite:///{db}")
    assert db.stat().st_size > 0


def test_a_journey_runs_to_its_outcome(installed: Installed) -> None:
    answers = installed.cwd / "answers.yaml"
    answers.write_text(
        'identify/ask_customer_id: C001\nask_order: "10000001"\noffer: reship\nsurvey: {ces: 6}\n'
    )
    proc = installed.run(
        "run",
        "delivery-missing",
        "--answers",
        str(answers),
        "--format",
        "json",
        "--executor",
        "local",
        "--db",
        f"sqlite:///{installed.cwd / 'run.db'}",
    )
    session = json.loads(proc.stdout)
    assert (session["status"], session["outcome"]) == ("ended", "resolved")
    assert session["path"][-2:] == ["do_reship", "reshipped"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(installed: Installed) -> Iterator[str]:
    port = _free_port()
    db = f"sqlite:///{installed.cwd / 'served.db'}"
    server = subprocess.Popen(
        [installed.exe("journeys"), "serve", "--port", str(port), "--db", db],
        cwd=installed.cwd,
        env=installed.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"journeys serve did not start: {server.stderr.read() if server.stderr else ''}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()


def test_serve_gives_the_console_and_its_files(served: str) -> None:
    page = httpx.get(served + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    for asset in ("console.js", "console.css"):
        assert httpx.get(f"{served}/console/{asset}", timeout=10).status_code == 200
    journeys = httpx.get(served + "/v1/journeys", timeout=10)
    assert journeys.status_code == 200, journeys.text
    assert "delivery-missing" in journeys.text


def test_a_journeys_folder_here_comes_before_the_shipped_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.definitions.shipped import SHIPPED_LIBRARY, default_library

    monkeypatch.chdir(tmp_path)
    assert default_library() == SHIPPED_LIBRARY
    assert (SHIPPED_LIBRARY / "motives.yaml").is_file()
    (tmp_path / "journeys").mkdir()
    assert default_library() == Path("journeys")
