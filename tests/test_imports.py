"""The core knows nothing of HTTP, SQL or Prefect: adapters live around it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN = {"fastapi", "starlette", "sqlalchemy", "prefect", "uvicorn", "httpx"}
# engine/adapters/ holds the SQL store, the terminal and the executors: the rest is the core.
CORE = sorted(p for p in (ROOT / "engine").rglob("*.py") if "adapters" not in p.parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_no_framework(path: Path) -> None:
    assert imported(path) & FORBIDDEN == set()


def test_engine_does_not_import_the_action_bodies() -> None:
    """The validator receives the catalogue; the engine never imports actions itself."""
    users = [p.name for p in CORE if "actions" in imported(p)]
    assert users == []


def modules(path: Path) -> set[str]:
    """Every module a file imports, by its full name (``from a import b``: ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_engine_never_imports_the_demo_back_office() -> None:
    """The idempotency ledger is passed in (the command line, `journeys serve`, the action host
    and the workers take it from ``actions.registry.ledger()``): nothing under engine/,
    adapters included, imports the demo back office. The exception is the command line
    (engine/adapters/cli/, like cli.py): `journeys backoffice` shows and scans the demo back
    office itself, that is what the command is for."""
    cli = ROOT / "engine" / "adapters" / "cli"
    everything = sorted(p for p in (ROOT / "engine").rglob("*.py") if cli not in p.parents)
    users = [
        str(p.relative_to(ROOT))
        for p in everything
        if any(m == "actions.backoffice" or m.startswith("actions.backoffice.") for m in modules(p))
    ]
    assert users == []


#: Which group of the core may import which: definitions <- sessions <- insight.
LAYERS = {"definitions": set(), "sessions": {"definitions"}, "insight": {"definitions", "sessions"}}


@pytest.mark.parametrize("group", sorted(LAYERS))
def test_core_groups_import_only_the_layers_below(group: str) -> None:
    """A definition never depends on a running session; a session never on the reports."""
    wrong = {
        f"{p.relative_to(ROOT)}: {name}"
        for p in sorted((ROOT / "engine" / group).rglob("*.py"))
        for name in modules(p)
        if name.startswith("engine.")
        and name.split(".")[1] in {*LAYERS, "adapters"} - LAYERS[group] - {group}
    }
    assert wrong == set()
