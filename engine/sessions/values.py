"""Answers and inputs: converted from text where needed, checked against their schema.

Values given as text (a command line, a query string, a terminal) are converted to the type
their JSON Schema declares before they are checked; values given as JSON are checked as they
are. Messages say what was expected, in the words of the schema.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from engine.definitions.findings import did_you_mean
from engine.definitions.model import Journey, Node
from engine.definitions.patterns import PatternError, matches
from engine.errors import (
    MissingInput,
    SessionError,
)

_TRUE = {"true", "yes", "y", "oui", "o", "1"}
_FALSE = {"false", "no", "n", "non", "0"}


class AnswerError(SessionError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def from_text(value: Any, schema: Mapping[str, Any] | None) -> Any:
    """A text value converted to the (first) type its schema declares; unchanged otherwise."""
    if not isinstance(value, str) or not schema:
        return value
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    text = value.strip()
    if "null" in types and text.lower() in ("", "null", "none"):
        return None  # nothing typed where nothing is allowed: not known
    for kind in types:
        if kind == "null" and text.lower() in ("", "null", "none"):
            return None
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                continue
        if kind == "number":
            try:
                number = float(text.replace(",", ".")) if text else None
            except ValueError:
                continue
            if number is not None and not math.isfinite(number):
                continue  # "nan", "inf", "1e999": not a number; the check then says so
            if number is not None:
                return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
        if kind in ("array", "object") and text[:1] in "[{":
            try:
                return json.loads(text)
            except ValueError:
                continue
        if kind == "array":
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind == "string":
            return value
    return value


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> Any:
    return _safe_validator_class()(json.loads(schema_json))


@lru_cache(maxsize=1)
def _safe_validator_class() -> Any:
    """JSON Schema 2020-12 whose patterns run on RE2 (engine/definitions/patterns.py), never on ``re``:
    ``pattern``, ``patternProperties`` and the ``additionalProperties`` that depends on them.
    ``unevaluatedProperties`` beside ``patternProperties`` would match with ``re``: refused."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not matches(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for k, v in instance.items():
                if matches(patrn, k):
                    yield from validator.descend(v, subschema, path=k, schema_path=patrn)

    plain = Draft202012Validator.VALIDATORS

    def additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Any:
        patterns = list(schema.get("patternProperties", {}))
        if not patterns or not validator.is_type(instance, "object"):
            yield from plain["additionalProperties"](validator, ap, instance, schema)
            return
        kept = {
            k: v
            for k, v in instance.items()
            if k in schema.get("properties", {}) or not any(matches(p, k) for p in patterns)
        }
        rest = {k: v for k, v in schema.items() if k != "patternProperties"}
        yield from plain["additionalProperties"](validator, ap, kept, rest)

    def unevaluated_properties(validator: Any, up: Any, instance: Any, schema: Any) -> Any:
        if "patternProperties" in json.dumps(schema):
            raise PatternError(
                "this answer cannot be checked: its schema uses 'unevaluatedProperties' with "
                "'patternProperties'; use 'additionalProperties' instead"
            )
        yield from plain["unevaluatedProperties"](validator, up, instance, schema)

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        {
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
            "unevaluatedProperties": unevaluated_properties,
        },
    )


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_not_finite(v) for v in value)
    if isinstance(value, Mapping):
        return any(_not_finite(v) for v in value.values())
    return False


def schema_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``value`` does not fit ``schema``, in words, or None when it fits."""
    if _not_finite(value):
        # NaN passes every minimum and maximum and is saved as null; infinities are no amount.
        return (
            f"{value!r} is not a number that can be used (not-a-number and infinity are "
            "refused); give a number such as 12 or 4.5"
        )
    validator = _validator(json.dumps(schema, sort_keys=True, default=str))
    try:
        error = next(iter(validator.iter_errors(value)), None)
    except PatternError as problem:  # never run on a backtracking engine instead
        return f"{problem}; the journey must be corrected (journeys validate reports it)"
    if error is None:
        return None
    hint = schema.get("description") or schema.get("title")
    v = error.validator
    if v == "pattern":
        message = f"{error.instance!r} is not in the expected format"
        message += f" ({hint})" if hint else f" (it must match {error.validator_value})"
        return message
    if v == "type":
        words = {
            "string": "text",
            "integer": "a whole number",
            "number": "a number",
            "boolean": "yes or no",
            "array": "a list",
            "object": "a mapping",
            "null": "nothing",
        }
        expected = (
            error.validator_value
            if isinstance(error.validator_value, list)
            else [error.validator_value]
        )
        return (
            f"{error.instance!r} is not {' or '.join(words.get(str(t), str(t)) for t in expected)}"
        )
    if v == "enum":
        return (
            f"{error.instance!r} is not one of {', '.join(repr(x) for x in error.validator_value)}"
        )
    where = "/".join(str(p) for p in error.absolute_path)
    return str(error.message) + (f" (at {where})" if where else "") + (f"; {hint}" if hint else "")


def check_answer(node: Node, value: Any, as_text: bool = False, locale: str | None = None) -> Any:
    """The answer as it will be stored, or :class:`AnswerError` saying what was expected."""
    if node.kind == "choose":
        return check_option(node, value, as_text, locale)
    return check_value(node, value, as_text, locale)


def check_value(node: Node, value: Any, as_text: bool = False, locale: str | None = None) -> Any:
    """An ``ask`` node's answer: converted from text if typed, checked against its schema."""
    schema = node.schema or {"type": "string"}
    if as_text:
        value = from_text(value, schema)
    problem = schema_problem(value, schema)
    if problem:
        raise AnswerError(problem)
    return value


def check_option(node: Node, value: Any, as_text: bool = False, locale: str | None = None) -> Any:
    """A ``choose`` node's answer: one of its options, by value or by label when typed."""
    values = [o.value for o in node.options]
    for option in node.options:
        if value == option.value and type(value) is type(option.value):
            return option.value
    if as_text or isinstance(value, str):
        text = str(value).strip().lower()
        for option in node.options:
            labels = (
                [option.label]
                if isinstance(option.label, str)
                else list((option.label or {}).values())
            )
            if text == str(option.value).lower() or text in (
                str(lbl).strip().lower() for lbl in labels
            ):
                return option.value
    shown = ", ".join(repr(v) for v in values)
    return _refuse(
        f"{value!r} is not one of the options ({shown}){did_you_mean(str(value), map(str, values))}"
    )


def _refuse(message: str) -> Any:
    raise AnswerError(message)


def convert_inputs(
    journey: Journey, inputs: Mapping[str, Any], as_text: bool = False
) -> dict[str, Any]:
    """The journey's inputs at start: unknown names refused, defaults applied, types checked."""
    declared = journey.inputs
    values: dict[str, Any] = {}
    for name, value in inputs.items():
        if name not in declared:
            raise MissingInput(
                f"{journey.id!r} has no input {name!r}{did_you_mean(name, declared)}; "
                f"its inputs are {', '.join(repr(n) for n in declared) or 'none'}",
                field=name,
            )
        schema = declared[name] if isinstance(declared[name], Mapping) else {}
        if as_text:
            value = from_text(value, schema)
        problem = schema_problem(value, schema)
        if problem:
            raise MissingInput(f"input {name!r}: {problem}", field=name)
        values[name] = value
    for name, schema in declared.items():
        if name in values:
            continue
        if isinstance(schema, Mapping) and "default" in schema:
            values[name] = json.loads(json.dumps(schema["default"]))
        else:
            raise MissingInput(
                f"{journey.id!r} needs the input {name!r} to start"
                + (
                    f" ({schema['description']})"
                    if isinstance(schema, Mapping) and schema.get("description")
                    else ""
                )
                + "; give it when starting the session",
                field=name,
            )
    return values
