"""J002: the JSON Schemas of ``schemas/``, with findings placed at the offending line.

jsonschema is imported on first use only: a warm ``journeys validate`` never needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.definitions.findings import Finding, did_you_mean, finding, one_of
from engine.definitions.model import ROLES, Loc
from engine.definitions.yamlsafe import YamlList, YamlMap

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
SCHEMA_NAMES = ("journey", "motives", "scenario", "policies")


def schema_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.schema.json"


@cache
def load_schema(name: str) -> dict[str, Any]:
    with schema_path(name).open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


_DRAFT_07 = "http://json-schema.org/draft-07/schema#"


@cache
def fast_validator(name: str) -> Callable[[Any], Any]:
    """The schema compiled to Python by fastjsonschema: about 7x faster than jsonschema.

    It only says *whether* a document is valid (a valid file is the common case); the
    findings of an invalid one come from jsonschema, which reports every error with its path.
    fastjsonschema knows draft-07, whose semantics are those of 2020-12 for every keyword our
    schemas use (a test checks both agree on every fixture and shipped file).
    """
    import fastjsonschema

    schema = dict(load_schema(name))
    schema["$schema"] = _DRAFT_07
    if name != "journey":
        return cast(Callable[[Any], Any], fastjsonschema.compile(schema))
    # A node is checked against its own kind's definition directly, which is what the
    # schema's if/then chain means, without raising (costly) for every kind it is not.
    nodes = dict(schema["properties"]["nodes"])
    nodes["additionalProperties"] = schema["$defs"]["node"]
    kinds = {
        kind: fastjsonschema.compile(
            {"$schema": _DRAFT_07, "$ref": f"#/$defs/{kind}", "$defs": schema["$defs"]}
        )
        for kind in schema["$defs"]["node"]["properties"]["kind"]["enum"]
    }
    nodes["additionalProperties"] = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": schema["$defs"]["node"]["properties"]["kind"]},
    }
    top = fastjsonschema.compile({**schema, "properties": {**schema["properties"], "nodes": nodes}})

    def validate(data: Any) -> Any:
        top(data)
        for node in data["nodes"].values():
            kinds[node["kind"]](node)
        return data

    return validate


def is_valid(name: str, data: Any) -> bool:
    from fastjsonschema import JsonSchemaException

    try:
        fast_validator(name)(data)
    except JsonSchemaException:
        return False
    return True


def check_document(name: str, data: Any, file: str) -> list[Finding]:
    """J002 findings of a whole document against schema ``name``."""
    if is_valid(name, data):
        return []
    errors = sorted(
        _validator(name).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))
    )
    found: dict[tuple[int, int, str], Finding] = {}
    for error in errors:
        for leaf in _leaves(error):
            f = _finding(leaf, data, file)
            found.setdefault((f.line, f.column, f.message), f)
    return list(found.values())


@cache
def _meta_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def check_embedded_schema(
    schema: Any, loc: Loc, what: str, journey: str, node: str | None
) -> list[Finding]:
    """J002 when an answer or input schema is not itself a valid JSON Schema."""
    key = json.dumps(schema, sort_keys=True, default=str)
    problem = _embedded_problem(key)
    if problem is not None:
        return [
            finding("J002", loc, f"{what} is not a valid JSON Schema: {problem}", journey, node)
        ]
    return [
        finding("J002", loc, f"{what}: {why}", journey, node) for why in _pattern_problems(schema)
    ]


def _pattern_problems(schema: Any) -> Iterator[str]:
    """Why each ``pattern`` (or ``patternProperties`` key) cannot check answers on RE2."""
    from engine.definitions.patterns import pattern_problem

    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, Mapping):
            continue
        patterns = [item["pattern"]] if isinstance(item.get("pattern"), str) else []
        if isinstance(item.get("patternProperties"), Mapping):
            patterns += [str(k) for k in item["patternProperties"]]
            if "unevaluatedProperties" in item:
                yield (
                    "'unevaluatedProperties' beside 'patternProperties' cannot be checked "
                    "safely; use 'additionalProperties' instead"
                )
        for pattern in patterns:
            why = pattern_problem(pattern)
            if why:
                yield why
        stack.extend(v for k, v in item.items() if k != "pattern")


@cache
def _embedded_problem(key: str) -> str | None:
    error = next(iter(_meta_validator().iter_errors(json.loads(key))), None)
    if error is None:
        return None
    if list(error.absolute_path)[-1:] == ["type"]:
        return (
            f"{error.instance!r} is not a JSON Schema type; use string, number, integer, "
            "boolean, object, array or null"
        )
    where = "/".join(map(str, error.absolute_path))
    return f"{error.message}" + (f" (at {where})" if where else "")


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The most precise errors: if/then and $ref keep their own; anyOf gets one summary."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Text is "a string or a locale map": report the closest alternative's errors
        # only when the value is a mapping (a half-right locale map); otherwise the summary.
        deep = [e for e in error.context if e.validator != "type"]
        if deep and isinstance(error.instance, Mapping):
            yield from deep
            return
    yield error


def _locate(data: Any, path: Sequence[Any], *, key: bool = False) -> tuple[int, int]:
    """The position of the value at ``path`` (or of its key), falling back to its parents."""
    pos = getattr(data, "pos", (1, 1))
    node = data
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, YamlMap) and step in node:
            pos = (node.key_pos if key and last else node.val_pos)[step]
            node = node[step]
        elif isinstance(node, YamlList) and isinstance(step, int) and step < len(node):
            pos = node.item_pos[step]
            node = node[step]
        else:
            break
    return pos


#: The collections whose items a message names, and how it names an item by its key.
_ITEM_NAMES: Mapping[str, Callable[[Any], str]] = {
    "nodes": lambda key: f"node {str(key)!r}",
    "motives": lambda key: f"motive {key!r}",
    "roles": lambda key: f"role {key!r}",
    "scenarios": lambda key: f"scenario {int(key) + 1}",
}


def _where(path: Sequence[Any]) -> tuple[str, str | None]:
    """A human description of a path, and the node id if the path is inside a node."""
    parts = list(path)
    name_item = _ITEM_NAMES.get(parts[0]) if len(parts) >= 2 else None
    if name_item is not None:
        place = name_item(parts[1])
        if parts[2:]:
            place += ", " + _describe_rest(parts[2:])
        return place, str(parts[1]) if parts[0] == "nodes" else None
    if parts:
        return _describe_rest(parts), None
    return "the file", None


def _describe_rest(parts: Sequence[Any]) -> str:
    words = []
    for p in parts:
        words.append(f"item {p + 1}" if isinstance(p, int) else f"{p!r}")
    return " > ".join(words)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}


def _lower(text: str) -> str:
    """A schema description as the end of a sentence."""
    return (text[:1].lower() + text[1:]).rstrip(".")


def _is_key(data: Any, path: Sequence[Any], value: Any) -> bool:
    """Whether ``value`` is a key (not a value) of the mapping at ``path``."""
    node = data
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    return (
        isinstance(node, Mapping)
        and isinstance(value, str)
        and value in node
        and node[value] is not value
    )


def _name_rule(container: Any) -> str:
    if container == "nodes":
        return (
            "node ids are lowercase snake_case (a-z, 0-9, _), like ask_order; 'survey' is reserved"
        )
    if container == "motives":
        return "motive ids are lowercase words joined by dots, like delivery.missing"
    if container in ("actions", *ROLES):
        return "action names are domain.verb, like payments.refund"
    return "names are letters, digits and '_', not starting with a digit, like order_id"


def _finding(error: ValidationError, data: Any, file: str) -> Finding:
    path = list(error.absolute_path)
    place, node = _where(path)
    message, path, key_pos = _explain(error, data, path, place)
    line, column = _locate(data, path, key=key_pos)
    return finding("J002", Loc(file, line, column), message, None, node)


def _explain(
    error: ValidationError, data: Any, path: list[Any], place: str
) -> tuple[str, list[Any], bool]:
    """The message of one schema error, and where it points: its path, and whether at the
    key there (rather than at the value)."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    v = error.validator
    if v == "additionalProperties":
        extra, message = _unknown_key(error, schema, place)
        return message, [*path, extra], True
    if v == "required":
        return _missing_key(error, schema, place, path), path, False
    if v in ("enum", "const"):
        return _not_allowed(error, schema, place), path, False
    if v == "type":
        return _wrong_type(error, place), path, False
    if _is_key(data, path, error.instance):
        # propertyNames: the error is about a key of the mapping at `path`.
        path = [*path, str(error.instance)]
        rule = _name_rule(path[-2] if len(path) > 1 else "")
        return f"{place}: the name {error.instance!r} is not allowed; {rule}", path, True
    return _other_rule(error, schema, place), path, False


def _unknown_key(error: ValidationError, schema: Mapping[str, Any], place: str) -> tuple[str, str]:
    """additionalProperties: the first key the schema does not allow, and the message."""
    allowed = set(schema.get("properties", {}))
    extras = (
        [k for k in error.instance if k not in allowed]
        if isinstance(error.instance, Mapping)
        else []
    )
    extra = extras[0] if extras else "?"
    kind = error.instance.get("kind") if isinstance(error.instance, Mapping) else None
    article = "an" if str(kind)[:1] in "aeiou" else "a"
    owner = f"{article} {kind!r} node" if kind and place.startswith("node") else place
    return extra, (
        f"{place}: unknown key {extra!r}{did_you_mean(extra, allowed)}; "
        f"{owner} takes {one_of(allowed, 12)}"
    )


def _missing_key(
    error: ValidationError, schema: Mapping[str, Any], place: str, path: list[Any]
) -> str:
    missing = error.message.split("'")[1] if "'" in error.message else error.message
    prop = schema.get("properties", {}).get(missing, {})
    why = (
        f" ({_lower(prop['description'])})"
        if isinstance(prop, Mapping) and prop.get("description")
        else ""
    )
    return f"{place + ': ' if path else ''}{missing!r} is missing{why}"


def _not_allowed(error: ValidationError, schema: Mapping[str, Any], place: str) -> str:
    allowed_values = schema.get("enum", [schema.get("const")])
    word = did_you_mean(str(error.instance), [str(a) for a in allowed_values])
    return (
        f"{place}: {_shown(error.instance)} is not allowed{word}; use one of "
        f"{', '.join(repr(a) for a in allowed_values)}"
    )


def _wrong_type(error: ValidationError, place: str) -> str:
    expected: Any = error.validator_value
    types = [str(t) for t in (expected if isinstance(expected, list) else [expected])]
    return (
        f"{place}: expected {' or '.join(_TYPE_WORDS.get(t, t) for t in types)}, "
        f"found {_shown(error.instance)}"
    )


def _other_rule(error: ValidationError, schema: Mapping[str, Any], place: str) -> str:
    """The other rules in words for a process expert; else jsonschema's own message."""
    v = error.validator
    help_text = schema.get("description", "")
    if v == "pattern" and isinstance(error.instance, str):
        message = (
            f"{place}: {error.instance!r} is not a valid {schema.get('title', 'value').lower()}"
        )
        return message + (
            f"; {_lower(help_text)}" if help_text else f" (it must match {error.validator_value!r})"
        )
    if v in ("anyOf", "oneOf"):
        title = schema.get("title", "value")
        message = f"{place}: {_shown(error.instance)} is not a valid {title.lower()}"
        return message + (f"; {help_text}" if help_text else "")
    if v == "minProperties" and error.validator_value == 1:
        return f"{place}: must not be empty"
    if v == "minItems" and error.validator_value == 1:
        return f"{place}: the list must not be empty"
    if v == "uniqueItems":
        return f"{place}: the list has the same item twice"
    return f"{place}: {error.message}"
