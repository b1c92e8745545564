"""Every benchmark runs as its docstring says, `python bench/X.py`, from the project root: no
file in bench/ may hide a module the scripts import (bench/http.py once hid the standard
library's http package from all of them). The figures come from full runs, never asserted."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, requires

SCRIPTS = sorted(
    p.name
    for p in (ROOT / "bench").glob("*.py")
    if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")
)


def test_the_benchmarks_are_found() -> None:
    assert {
        "actions.py",
        "http_cpu.py",
        "report.py",
        "serving.py",
        "steps.py",
        "validate.py",
    } <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_help_runs_as_its_docstring_says(script: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "bench" / script).read_text(encoding="utf-8")))
    assert doc is not None and f"Usage: python bench/{script}" in doc
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_no_bench_file_shadows_a_module_the_scripts_import() -> None:
    taken = set(sys.stdlib_module_names) | {"engine", "cli", "schemas"}
    shadowing = [
        p.name for p in (ROOT / "bench").glob("*.py") if p.stem in taken and p.stem != "__init__"
    ]
    assert shadowing == [], f"rename {shadowing}: they hide the module of the same name"


def test_http_cpu_bench_runs_small(tmp_path: Path) -> None:
    """A tiny run of bench/http_cpu.py: the server started, sessions driven over HTTP and in
    process, the database checked, the CPU ratio printed (its figures come from full runs)."""
    requires("bench")
    small = ["--sessions", "4", "--concurrency", "2", "--warm-up", "1", "--rounds", "2"]
    proc = subprocess.run(
        [sys.executable, "bench/http_cpu.py", *small, "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 10 sessions whole" in proc.stdout  # HTTP and in process, 1 + 4 each
    assert "ratio HTTP CPU / in-process CPU:" in proc.stdout
