"""Journey-authored ``pattern``s, run on RE2: linear in the answer's length, whatever the pattern.

Python's ``re`` backtracks: ``^(a+)+$`` against 30 typed characters takes minutes while holding
the interpreter. Every answer and input a customer gives is matched here, with JSON Schema's
meaning (found anywhere in the text, so ``^`` and ``$`` anchor it; ``$`` is the very end of the
text, as in JSON Schema, not before a final line break as in Python). A pattern RE2 cannot run
(a back-reference ``\\1``, a look-ahead ``(?=``, a repetition above 1000) is a J002 finding at
validation, and an answer checked against it is refused: it is never run by a backtracking
engine.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]

from engine.errors import DefinitionError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print the pattern on standard error


class PatternError(DefinitionError, ValueError):
    """A pattern that RE2 does not run, with the reason in a process expert's words."""


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        raise PatternError(_why(pattern, str(err))) from None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used to check answers, or None when it can."""
    try:
        compile_pattern(pattern)
    except PatternError as problem:
        return str(problem)
    return None


def matches(pattern: str, text: str) -> bool:
    """Whether ``pattern`` is found in ``text`` (JSON Schema ``pattern``); raises PatternError."""
    return compile_pattern(pattern).search(text) is not None


def _why(pattern: str, detail: str) -> str:
    if "escape sequence" in detail and any(f"\\{d}" in pattern for d in "123456789"):
        what = "it repeats an earlier part with a back-reference (\\1...)"
    elif "perl operator" in detail and ("(?=" in pattern or "(?!" in pattern):
        what = "it looks ahead with '(?=' or '(?!'"
    elif "perl operator" in detail and ("(?<=" in pattern or "(?<!" in pattern):
        what = "it looks behind with '(?<=' or '(?<!'"
    elif "repetition" in detail:
        what = "it repeats something more than 1000 times ({1001} or more)"
    else:
        what = "it is not a valid pattern"
    return (
        f"the pattern {pattern!r} cannot be used to check answers: {what}; "
        "write it with plain characters, classes ([0-9]), groups, '|' and counts ({2,8}) only"
    )
