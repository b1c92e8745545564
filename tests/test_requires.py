"""requires(part) in tests/conftest.py: a missing system part is one skip line saying how to
install it, and a failure under CI (CI=true), so that CI never silently runs less."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TESTS = """
import pytest
from tests.conftest import requires


@pytest.mark.requires("dot")
@pytest.mark.parametrize("n", range(3))
def test_marked(n):
    pass


@pytest.fixture
def drawing():
    requires("dot")


def test_through_a_fixture(drawing):
    pass


def test_needs_nothing():
    pass
"""


PYTEST = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]


def run_without_dot(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_parts.py").write_text(TESTS)
    empty = tmp_path / "bin"  # a PATH where neither dot nor chromium can be found
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env |= {"PATH": str(empty), "PYTHONPATH": str(ROOT)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [*PYTEST, "-q", "-ra", "test_parts.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_part_is_skipped_with_one_line_saying_how_to_install_it(
    tmp_path: Path,
) -> None:
    proc = run_without_dot(tmp_path, ci=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, proc.stdout  # four tests, one line
    assert skipped[0].startswith("SKIPPED [4] ")
    assert "Graphviz's dot is not installed: apt-get install graphviz" in skipped[0]
    assert "1 passed, 4 skipped" in proc.stdout


def test_under_ci_a_missing_part_fails_the_run(tmp_path: Path) -> None:
    proc = run_without_dot(tmp_path, ci="true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SKIPPED" not in proc.stdout
    assert "1 passed, 4 errors" in proc.stdout
    assert "apt-get install graphviz (bash .ci/run does) [CI=true" in proc.stdout
