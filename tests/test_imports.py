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
