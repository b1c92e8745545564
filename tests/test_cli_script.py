"""`python cli.py ...` is the same command as `journeys ...`: every command is registered
before cli.py runs as a script."""

from __future__ import annotations

import subprocess
import sys

from cli import main
from tests.conftest import ROOT


def test_python_cli_py_lists_every_command_of_journeys() -> None:
    proc = subprocess.run(
        [sys.executable, "cli.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line}
    assert "serve" in listed
    assert listed == set(main.commands)


def test_python_cli_py_runs_a_late_command() -> None:
    proc = subprocess.run(
        [sys.executable, "cli.py", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No such command" not in proc.stderr
    assert "--port" in proc.stdout
