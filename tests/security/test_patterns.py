"""Answers' patterns run on RE2: no pattern, however written, can stall the engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from engine.sessions.values import schema_problem

CATASTROPHIC = [r"^(a+)+$", r"(a|aa)+$", r"^(.*a){12}$", r"^(\w+\s?)*$"]


def within(seconds: float, work: Any) -> Any:
    """``work()``'s result, or a failure if it has not finished after ``seconds``."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still matching after {seconds} s: the pattern backtracks"
    return out[0]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_answers_at_once(pattern: str) -> None:
    schema = {"type": "string", "pattern": pattern}
    problem = within(5, lambda: schema_problem("a" * 40 + "!", schema))
    assert problem is not None and "is not in the expected format" in problem


def test_pattern_keeps_json_schema_meaning() -> None:
    schema = {"type": "string", "pattern": "[0-9]{8}"}
    assert schema_problem("order 12345678", schema) is None  # found anywhere: a search
    anchored = {"type": "string", "pattern": "^[0-9]{8}$"}
    assert schema_problem("12345678", anchored) is None
    assert schema_problem("12345678\n", anchored) is not None  # '$' is the end of the text


def test_pattern_properties_keys_do_not_backtrack() -> None:
    schema = {
        "type": "object",
        "patternProperties": {r"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    problem = within(5, lambda: schema_problem({"a" * 40 + "!": 1}, schema))
    assert problem is not None and "a" * 40 in problem
    assert schema_problem({"aaa": 1}, schema) is None


def test_a_back_reference_is_refused_at_validation_and_never_run(
    library: Path, runner: CliRunner
) -> None:
    journey = library / "order-status.yaml"
    journey.write_text(
        journey.read_text(encoding="utf-8").replace('"^[0-9]{8}$"', r'"^(a+)\\1$"'),
        encoding="utf-8",
    )
    result = runner.invoke(main, ["validate", str(library), "--format", "json"])
    found = json.loads(result.stdout)
    assert result.exit_code == 1
    (problem,) = [f for f in found["errors"] if "pattern" in f["message"]]
    assert problem["code"] == "J002" and problem["file"].endswith("order-status.yaml")
    assert "back-reference" in problem["message"]
    assert "re2" not in result.output.lower() and "Error parsing" not in result.output
    answer = schema_problem("aaaa", {"type": "string", "pattern": r"^(a+)\1$"})
    assert answer is not None and "cannot be used to check answers" in answer
