"""Shared fixtures: small libraries built in temporary folders, the CLI runner, and
``requires(part)`` for the tests that need a part of the system pip does not install."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from actions.registry import catalogue as load_catalogue
from engine.definitions.checks.actions import Catalogue
from engine.definitions.validate import Options, Report, validate

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "journeys"


Check = Callable[..., Report]  # check(path, **Options fields) -> Report

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


def throwaway_pg_database(name: str) -> Iterator[str]:
    """A new PostgreSQL database ``name`` for one test (its SQLAlchemy URL), dropped after."""
    import psycopg  # only where PostgreSQL is used

    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(db=name)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------- system parts


def _missing_chromium() -> str | None:
    if shutil.which("chromium"):
        return None
    return "chromium is not installed: apt-get install chromium (bash .ci/run does)"


def _missing_dot() -> str | None:
    if shutil.which("dot"):
        return None
    return "Graphviz's dot is not installed: apt-get install graphviz (bash .ci/run does)"


def _missing_postgresql() -> str | None:
    import psycopg

    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        why = lines[0].rsplit("failed: ", 1)[-1]  # "Connection refused", "role ... does not exist"
        return (
            f"PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres ({why}): "
            "apt-get install postgresql, then pg_ctlcluster <version> main start "
            "(bash .ci/run does)"
        )
    return None


def _missing_bench_extra() -> str | None:
    import importlib.util

    if importlib.util.find_spec("aiohttp") is not None:
        return None
    return (
        "the bench extra is not installed (aiohttp, the benchmarks' load generator): "
        "pip install -c constraints.txt -e '.[dev,bench]' (bash .ci/run does)"
    )


PARTS: dict[str, Callable[[], str | None]] = {
    "chromium": _missing_chromium,
    "dot": _missing_dot,
    "postgresql": _missing_postgresql,
    "bench": _missing_bench_extra,
}


_REASONS: set[str] = set()  # the reasons requires() skipped for, to fold them in the summary


@functools.cache
def missing(part: str) -> str | None:
    """Why ``part`` cannot be used on this machine (one line: how to get it), or None. Looked up
    once per test run: chromium and dot on PATH, PostgreSQL by connecting."""
    return PARTS[part]()


def requires(*parts: str) -> None:
    """Skip the calling test when one of ``parts`` (chromium, dot, postgresql, bench) is missing, with
    one line saying how to install or start it; under CI (``CI=true``) fail instead, so that CI
    runs everything. Every skip of a part has the same reason and location, so ``-ra`` shows one
    line per missing part."""
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
        reason = missing(part)
        if reason is None:
            continue
        _REASONS.add(reason)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} [CI=true: a missing part fails the run]", pytrace=False)
        pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*parts): the test needs chromium, dot, postgresql or the bench extra "
        "(skipped with how to install it when missing; a failure under CI=true)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        requires(*mark.args)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A skip for a missing part is reported at requires(), whichever test or fixture asked, so
    ``-ra`` folds them into one line per part (pytest puts a fixture's skip at its test)."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if reason in _REASONS:
            report.longrepr = (__file__, _REQUIRES_LINE, f"Skipped: {reason}")
    return report


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


_REQUIRES_LINE = requires.__code__.co_firstlineno
