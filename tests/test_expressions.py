"""The sandboxed expression language: evaluation, names, refusals, templates and `=` values."""

from __future__ import annotations

from typing import Any

import pytest

from engine.definitions.expressions import (
    EvaluationError,
    ExpressionError,
    compile_expression,
    compile_template,
    is_expression,
    literal,
    render,
)

CONTEXT: dict[str, Any] = {
    "x": 5,
    "i": 1,
    "name": "Ana",
    "tier": "gold",
    "nothing": None,
    "slots": ["mon", "tue"],
    "order": {"id": "A-12", "status": "lost", "tracking": {"days_late": 3, "carrier": "DHL"}},
}


def evaluate(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(CONTEXT if context is None else context)


def same(value: Any, expected: Any) -> bool:
    """Equal and of the same type (True == 1 and 1 == 1.0 in Python)."""
    return bool(value == expected) and type(value) is type(expected)


# ---------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # comparisons
        ("x == 5", True),
        ("x != 5", False),
        ("x < 6", True),
        ("x <= 4", False),
        ("x > 4", True),
        ("x >= 6", False),
        ("name == 'Ana'", True),
        ('tier == "gold"', True),
        # chained comparisons
        ("1 < x < 10", True),
        ("1 < x < 3", False),
        ("1 < x > 10", False),
        ("0 <= x <= 5 == x", True),
        # in / not in
        ("x in [1, 5]", True),
        ("x not in [1, 5]", False),
        ("'tue' in slots", True),
        ("'status' in order", True),  # a key of a mapping
        ("'ost' in order.status", True),  # a substring
        ("'sun' not in slots", True),
        # and / or / not return Python's operand values
        ("x > 1 and tier == 'gold'", True),
        ("x > 1 and tier == 'silver'", False),
        ("x > 9 or tier == 'gold'", True),
        ("not x", False),
        ("not nothing", True),
        ("nothing or 'unknown'", "unknown"),
        ("name and upper(name)", "ANA"),
        # arithmetic
        ("x + 2", 7),
        ("x - 7", -2),
        ("x * 2", 10),
        ("x / 2", 2.5),
        ("x // 2", 2),
        ("x % 3", 2),
        ("-x", -5),
        ("+x", 5),
        ("(x + 1) * 2", 12),
        ("'a' + 'b'", "ab"),
        ("order.tracking.days_late * 2 + 1", 7),
        # conditional expression
        ("'late' if order.tracking.days_late > 2 else 'on time'", "late"),
        ("'late' if order.tracking.days_late > 5 else 'on time'", "on time"),
        # dotted access and indexing
        ("order.id", "A-12"),
        ("order.tracking.carrier", "DHL"),
        ("order['status']", "lost"),
        ('order["tracking"]["days_late"]', 3),
        ("order.tracking['carrier']", "DHL"),
        ("slots[0]", "mon"),
        ("slots[-1]", "tue"),
        ("slots[i]", "tue"),
        ("name[0]", "A"),
        ("[1, x][1]", 5),
        # helpers
        ("len(slots)", 2),
        ("len(name)", 3),
        ("len(order)", 3),
        ("lower(name)", "ana"),
        ("upper(name)", "ANA"),
        ("lower(5)", "5"),
        ("round(2.567, 2)", 2.57),
        ("round(2.4)", 2),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("max(slots)", "tue"),
        ("int('7')", 7),
        ("int(7.9)", 7),
        ("float('2.5')", 2.5),
        ("float(x)", 5.0),
        ("str(x)", "5"),
        ("str(x) + '!'", "5!"),
        # constants
        ("true", True),
        ("True", True),
        ("false", False),
        ("False", False),
        ("nothing == null", True),
        ("nothing == None", True),
        ("x == null", False),
        # literals
        ("[1, x]", [1, 5]),
        ("'text'", "text"),
        ("2.5", 2.5),
    ],
)
def test_evaluates(source: str, expected: Any) -> None:
    value = evaluate(source)
    assert same(value, expected), f"{source} gave {value!r}"


@pytest.mark.parametrize("source", ["null", "None"])
def test_null_constants(source: str) -> None:
    assert evaluate(source) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("0 and missing", 0),
        ("false and missing.key", False),
        ("nothing and missing", None),
        ("1 or missing", 1),
        ("true or missing[0]", True),
        ("x > 10 > missing", False),  # a chained comparison stops at the first false
        ("x if x > 3 else missing", 5),
        ("missing if x > 9 else 'no'", "no"),
    ],
)
def test_short_circuit_does_not_evaluate_the_rest(source: str, expected: Any) -> None:
    assert "missing" not in CONTEXT
    assert same(evaluate(source), expected)


def test_evaluates_against_each_context() -> None:
    expression = compile_expression("order.tracking.days_late > 2")
    assert expression.evaluate({"order": {"tracking": {"days_late": 3}}}) is True
    assert expression.evaluate({"order": {"tracking": {"days_late": 1}}}) is False


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("x > 3", {"x"}),
        ("order.tracking.days_late > 2 and tier == 'gold'", {"order", "tier"}),
        ("order['tracking'].carrier", {"order"}),
        ("order[key]", {"order", "key"}),
        ("slots[i + 1]", {"slots", "i"}),
        ("len(slots) > 0", {"slots"}),
        ("upper(lower(name))", {"name"}),
        ("x == true or y == null or z != None", {"x", "y", "z"}),
        ("upper(name) if ok else False", {"name", "ok"}),
        ("[a, b.c]", {"a", "b"}),
        ("'text'", set()),
        ("round(2.5) + max(1, 2)", set()),
    ],
)
def test_names_are_the_roots_read(source: str, names: set[str]) -> None:
    assert compile_expression(source).names == frozenset(names)


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        # private and dunder access
        ("x.__class__", "'.__class__' is not allowed"),
        ("order.tracking.__dict__", "'.__dict__' is not allowed"),
        ("order._secret", "starting with '_'"),
        ("order['__class__']", "the key '__class__' is not allowed"),
        ("_x", "names may not start with '_'"),
        ("__builtins__", "names may not start with '_'"),
        # calls other than the helpers
        ("open('x')", "calling 'open'"),
        ("print(x)", "calling 'print'"),
        ("getattr(x, 'y')", "calling 'getattr'"),
        ("x.upper()", "calling 'x.upper'"),
        ("name.format(x)", "calling 'name.format'"),
        ("__import__('os')", "calling '__import__'"),
        ("slots[0](1)", "calling 'slots[0]'"),
        # constructs outside the language
        ("lambda: 1", "lambda"),
        ("[s for s in slots]", "list comprehension"),
        ("{s for s in slots}", "set comprehension"),
        ("{s: 1 for s in slots}", "dict comprehension"),
        ("(s for s in slots)", "generator"),
        ("f'{x}'", "f-string"),
        ("(y := 1)", "':='"),
        ("x ** 2", "'**'"),
        ("x is None", "'is'"),
        ("x is not None", "'is not'"),
        ("x & 1", "'&'"),
        ("~x", "'~'"),
        ("slots[0:1]", "slices"),
        ("slots[::-1]", "slices"),
        ("{'a': 1}", "mapping literal"),
        ("{1, 2}", "set literal"),
        ("b'bytes'", "literal"),
        # helper arguments
        ("round(x, ndigits=2)", "named arguments"),
        ("max(*slots)", "'*' arguments"),
        # empty and unparsable
        ("", "empty"),
        ("   ", "empty"),
        ("x +", "does not parse"),
        ("x = 1", "does not parse"),
        ("import os", "does not parse"),
        ("(x", "does not parse"),
        ("a if b", "does not parse"),
    ],
)
def test_refused_at_compile_time(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert fragment in info.value.message


def test_refusal_gives_the_column_of_the_construct() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("x > 1 and open('f')")
    assert info.value.column == len("x > 1 and ")


def test_deep_nesting_is_refused_at_compile_time() -> None:
    # Evaluating this would exhaust Python's stack: it must be refused, not crash later.
    with pytest.raises(ExpressionError) as info:
        compile_expression("+".join(["1"] * 500))
    assert "nested" in info.value.message
    with pytest.raises(ExpressionError):
        compile_expression("-" * 1500 + "1")


def test_long_but_reasonable_expressions_evaluate() -> None:
    assert evaluate(" + ".join(["x"] * 60)) == 300
    with pytest.raises(EvaluationError):  # the error message shows the whole expression
        evaluate(" + ".join(["x"] * 60) + " + 'a'")


# ---------------------------------------------------------------------------- evaluation errors


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("missing", "'missing' is not set"),
        ("missing.key", "'missing' is not set"),
        ("order.nope", "order has no 'nope'"),
        ("order['nope']", "order has no 'nope'"),
        ("order.tracking.nope", "order.tracking has no 'nope'"),
        ("slots[5]", "slots has no item 5"),
        ("slots[-3]", "slots has no item -3"),
        ("slots['a']", "slots is list"),
        ("slots[true]", "slots is list"),
        ("x[0]", "x is int"),
        ("x.y", "x is int"),
        ("nothing.y", "nothing is NoneType"),
        ("name.upper", "name is str"),  # no access to Python attributes
        ("order[slots]", "order"),  # an unhashable key
        ("'a' + 1", "'a' + 1"),
        ("x + name", "x + name"),
        ("nothing < 1", "nothing < 1"),
        ("x in 5", "x in 5"),
        ("1 / 0", "division by zero"),
        ("x // 0", "by zero"),
        ("x % 0", "modulo by zero"),
        ("len(x)", "len(x)"),
        ("int('abc')", "int('abc')"),
        ("float(name)", "float(name)"),
        ("min()", "min()"),
        ("round('a')", "round('a')"),
    ],
)
def test_evaluation_errors_are_evaluation_errors(source: str, fragment: str) -> None:
    expression = compile_expression(source)  # allowed by the sandbox
    with pytest.raises(EvaluationError) as info:
        expression.evaluate(CONTEXT)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------- templates


def test_compile_template_finds_each_placeholder() -> None:
    text = "Hello {{ name }}, your parcel left with {{ order.tracking.carrier }}."
    placeholders = compile_template(text)
    assert [p.offset for p in placeholders] == [text.index("{{"), text.rindex("{{")]
    assert [p.expression.source for p in placeholders] == [" name ", " order.tracking.carrier "]
    assert [p.expression.names for p in placeholders] == [{"name"}, {"order"}]


def test_compile_template_without_placeholders() -> None:
    assert compile_template("Hello, { not a placeholder }") == ()


@pytest.mark.parametrize(
    "text", ["Hello {{ name", "{{ name }} and {{ tier", "Hello {{ name }", "{{"]
)
def test_unclosed_placeholder_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(text)
    assert "not closed" in info.value.message
    assert info.value.column == text.rindex("{{")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Hi {{ open('x') }}", "calling 'open'"),
        ("Hi {{ x.__class__ }}", "'.__class__'"),
        ("Hi {{ }}", "empty"),
        ("Hi {{ x + }}", "does not parse"),
    ],
)
def test_placeholder_expression_is_checked(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_template(text)
    assert fragment in info.value.message
    assert info.value.column == text.index("{{")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (4.0, "4"),
        (-2.0, "-2"),
        (4.9, "4.90"),
        (2.5, "2.50"),
        (0, "0"),
        (42, "42"),
        ("text", "text"),
        ("", ""),
    ],
)
def test_render_shows_values(value: Any, shown: str) -> None:
    assert render("[{{ v }}]", {"v": value}) == f"[{shown}]"


def test_render_fills_every_placeholder() -> None:
    text = "{{ name }}: {{ len(slots) }} slots, {{ order.tracking.days_late * 2 }}{{nothing}} days."
    assert render(text, CONTEXT) == "Ana: 2 slots, 6 days."


def test_render_leaves_plain_text_alone() -> None:
    assert render("No placeholders { here }.", {}) == "No placeholders { here }."


def test_render_raises_evaluation_error_for_a_missing_value() -> None:
    with pytest.raises(EvaluationError):
        render("Hello {{ missing }}", CONTEXT)


# ---------------------------------------------------------------------------- `=` values


@pytest.mark.parametrize(
    ("value", "expression", "meant"),
    [
        ("=x", True, "=x"),
        ("= order.id", True, "= order.id"),
        ("==5", False, "=5"),
        ("===x", False, "==x"),
        ("plain text", False, "plain text"),
        ("a = b", False, "a = b"),
        ("", False, ""),
        (5, False, 5),
        (None, False, None),
        (["=x"], False, ["=x"]),
    ],
)
def test_is_expression_and_literal(value: Any, expression: bool, meant: Any) -> None:
    assert is_expression(value) is expression
    if not expression:
        assert literal(value) == meant


def test_expression_value_compiles_without_its_equals_sign() -> None:
    value = "= order.tracking.days_late > 2"
    assert is_expression(value)
    assert compile_expression(value[1:]).evaluate(CONTEXT) is True


@pytest.mark.parametrize("source", ['"a" * 2000000000', "[1] * 2000000", "'%999999999d' % 1"])
def test_expressions_cannot_build_huge_values(source: str) -> None:
    with pytest.raises(EvaluationError):
        compile_expression(source).evaluate({})


def test_ordinary_repetition_and_remainder_still_work() -> None:
    assert compile_expression('"ab" * 3').evaluate({}) == "ababab"
    assert compile_expression("7 % 3").evaluate({}) == 1
