"""The code stays in pieces a reader can hold (issue 13): no module over 500 lines, no
function over 60, except a function that only returns a declarative table (a literal list
or mapping of routes, handlers, rows).

A function's length is that of its ``def``, decorators excluded (``end_lineno - lineno + 1``).
Alembic's migrations are left out: they are written once and never read as the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
#: Where the project's Python lives: packages, the benchmarks, the scripts and the CLI.
ROOTS = ("engine", "actions", "bench", "scripts", "cli.py")
SKIPPED = (ROOT / "engine" / "adapters" / "sql" / "migrations", ROOT / "bench" / "out")

_LITERALS = (ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Constant, ast.JoinedStr)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def modules() -> list[Path]:
    found: list[Path] = []
    for name in ROOTS:
        path = ROOT / name
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [p for p in found if not any(p.is_relative_to(s) for s in SKIPPED)]


def is_table(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the function's body (past its docstring) is one literal, or returns one."""
    body = function.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if len(body) != 1:
        return False
    statement = body[0]
    value = statement.value if isinstance(statement, ast.Return | ast.Expr) else None
    return isinstance(value, _LITERALS)


def long_functions(source: str) -> Iterator[tuple[int, str, int]]:
    """(line, name, lines) of each function over the limit that is not a table."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _FUNCTIONS) and node.end_lineno is not None:
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and not is_table(node):
                yield node.lineno, node.name, lines


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_modules_are_found() -> None:
    found = {_relative(p) for p in modules()}
    assert {
        "cli.py",
        "engine/sessions/runtime.py",
        "actions/registry.py",
        "bench/validate.py",
    } <= found
    assert not any(p.startswith("engine/adapters/sql/migrations/") for p in found)


def test_a_table_may_be_long_and_a_function_may_not() -> None:
    rows = "".join(f"        {i!r}: {i},\n" for i in range(70))
    table = f'def routes():\n    """The table."""\n    return {{\n{rows}    }}\n'
    steps = "".join(f"    x{i} = {i}\n" for i in range(70))
    function = f"def run():\n{steps}    return x0\n"
    loop_over_a_table = f"def run():\n    for row in {{\n{rows}    }}:\n        print(row)\n"
    assert list(long_functions(table)) == []
    assert list(long_functions(function)) == [(1, "run", 72)]
    assert [name for _line, name, _lines in long_functions(loop_over_a_table)] == ["run"]


def test_a_function_is_counted_from_its_def_not_its_decorators() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    decorated = "@first\n@second\ndef run():\n" + body
    assert list(long_functions(decorated)) == []  # 60 lines: the limit, not over it
    assert list(long_functions(decorated + "    return x0\n")) == [(3, "run", 61)]


def test_no_module_is_over_500_lines() -> None:
    too_long = [
        f"{_relative(p)}: {n} lines"
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == [], f"split these modules (at most {MAX_MODULE_LINES} lines):\n" + "\n".join(
        too_long
    )


def test_no_function_is_over_60_lines() -> None:
    too_long = [
        f"{_relative(p)}:{line} {name}: {lines} lines"
        for p in modules()
        for line, name, lines in long_functions(p.read_text(encoding="utf-8"))
    ]
    assert too_long == [], (
        f"split these functions into named steps (at most {MAX_FUNCTION_LINES} lines, "
        "unless the body only returns a table):\n" + "\n".join(too_long)
    )
