"""Expressions and templates build bounded values: counted in bytes, refused before they are
built, a clear error for the step and never for the process; `journeys validate` says what it
can see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from engine.definitions.bounds import MAX_VALUE_BYTES
from engine.definitions.expressions import EvaluationError, compile_expression, render

ANSWER = "x" * 60_000  # an answer well within the 64 kB of a request body


def evaluate(source: str, **context: Any) -> Any:
    return compile_expression(source).evaluate(context)


@pytest.mark.parametrize(
    "source",
    [
        "str([text] * 20)",  # 20 items, 1.2 MB written out: the count of items is no bound
        "text * 20",
        "[text] * 20",
        "text + text + text + text + text + text + text + text + text + text + text + text + "
        "text + text + text + text + text + text",
        "[text, text, text, text, text, text, text, text, text, text, text, text, text, text, "
        "text, text, text]",
        "upper(str([text] * 17))",
        "lower([text] * 17)",
    ],
)
def test_a_value_over_the_limit_is_refused(source: str) -> None:
    with pytest.raises(EvaluationError) as info:
        evaluate(source, text=ANSWER)
    assert "over the limit of 1 MB" in str(info.value)


def test_the_issue_example_fails_before_building_anything() -> None:
    # 6 GB if it were built: refused from the sizes alone (it ran 19 s, then MemoryError).
    with pytest.raises(EvaluationError, match=r"6\.0 GB, over the limit of 1 MB"):
        evaluate("str([text] * 100000)", text=ANSWER)


def test_the_limit_counts_bytes_not_characters() -> None:
    accents = "é" * 300_000  # 600 kB in UTF-8
    assert len(evaluate("text + 'x'", text=accents)) == 300_001
    with pytest.raises(EvaluationError):
        evaluate("text + text", text=accents)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("n * n * n", "more than 4,300 digits"),
        ("round(5, digits)", "round() takes at most 4,300 digits"),
        ("1e308 * 10", "not a number that can be kept"),
        ("float('nan')", "not a number that can be kept"),
    ],
)
def test_numbers_are_bounded_too(source: str, says: str) -> None:
    with pytest.raises(EvaluationError) as info:
        evaluate(source, n=int("9" * 2000), digits=-(10**6))
    assert says in str(info.value)


def test_values_within_the_limit_are_built() -> None:
    assert len(evaluate("str([text] * 16)", text=ANSWER)) == 16 * 60_002 + 2 * 15 + 2
    assert evaluate("text * 2 + 'x'", text="ab") == "ababx"
    assert evaluate("[1] * 3 + [2]") == [1, 1, 1, 2]
    assert evaluate("n * 2", n=int("9" * 2000)) == int("9" * 2000) * 2


def test_a_template_is_bounded_as_a_whole() -> None:
    part = "y" * (MAX_VALUE_BYTES // 3)
    assert len(render("{{ t }}{{ t }}", {"t": part})) == 2 * len(part)
    with pytest.raises(EvaluationError, match="over the limit of 1 MB"):
        render("{{ t }}, {{ t }}, {{ t }}, {{ t }}", {"t": part})
    with pytest.raises(EvaluationError, match="over the limit of 1 MB"):
        render("Your list: {{ items }}", {"items": [ANSWER] * 17})


JOURNEY = """journey: echo
version: 1
title: Echo
start: ask
nodes:
  ask:
    kind: ask
    say: "Tell us"
    field: text
    set: {copies: '=str([text] * 100000)'}
    next: done
  done: {kind: end, outcome: resolved, say: "Done"}
"""


def test_a_step_over_the_limit_fails_the_session_not_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "echo.yaml").write_text(JOURNEY, encoding="utf-8")
    (tmp_path / "answers.json").write_text(json.dumps({"ask": "x" * 600}), encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_DB", f"sqlite:///{tmp_path / 'sessions.db'}")
    given = str(tmp_path / "answers.json")
    result = CliRunner().invoke(
        main,
        ["--library", str(tmp_path), "run", "echo", "--answers", given, "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["outcome"]) == ("ended", "unresolved")
    assert "copies" not in data["context"]
    assert data["error"]["message"] == (
        "node 'ask', set 'copies': str([text] * 100000): the result would be 60.3 MB, over the "
        "limit of 1 MB for a value an expression or a template builds"
    )


def test_validate_flags_a_repetition_that_can_never_fit(tmp_path: Path) -> None:
    journey = JOURNEY.replace('"Done"', "\"{{ '-' * 2000000 }}\"").replace(
        "=str([text] * 100000)", "=[text, 0] * 600000"
    )
    (tmp_path / "echo.yaml").write_text(journey, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(tmp_path)])
    assert result.exit_code == 1, result.output
    errors = [e for e in json.loads(result.stdout)["errors"] if e["code"] == "J007"]
    assert [(e["node"], e["line"]) for e in errors] == [("ask", 10), ("done", 12)]
    assert "[text, 0] * 600000 would build 3.6 MB, over the limit of 1 MB" in errors[0]["message"]
    assert "'-' * 2000000 would build 2 MB" in errors[1]["message"]
