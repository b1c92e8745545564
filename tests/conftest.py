"""Shared fixtures: small libraries built in temporary folders, and the CLI runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from actions.registry import catalogue as load_catalogue
from engine.checks.actions import Catalogue
from engine.validate import Options, Report, validate

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "journeys"


Check = Callable[..., Report]  # check(path, **Options fields) -> Report


@pytest.fixture(autouse=True)
def _actions_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run real actions in this process unless a test asks for Prefect: a test must
    not leave an embedded Prefect server behind (tests/test_prefect.py runs one for all)."""
    monkeypatch.setenv("JOURNEYS_EXECUTOR", "local")


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A copy of the small valid library of tests/fixtures/base."""
    target = tmp_path / "lib"
    shutil.copytree(FIXTURES / "base", target)
    return target


@pytest.fixture
def check(catalogue: Catalogue) -> Check:
    def run(path: Path, **options: object) -> Report:
        opts = Options(use_cache=False)
        for key, value in options.items():
            setattr(opts, key, value)
        return validate([path], path if path.is_dir() else path.parent, catalogue, opts)

    return run


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
