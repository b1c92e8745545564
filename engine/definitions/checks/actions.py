"""J009: back-office action names, inputs and outputs against the declared catalogue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.definitions.checks.expressions import Use, attribute_reads
from engine.definitions.expressions import is_expression, literal
from engine.definitions.findings import Finding, did_you_mean, finding, one_of
from engine.definitions.model import Journey, Loc


class ParamLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def nullable(self) -> bool: ...


class ActionLike(Protocol):
    """What the checks need of a declared action (``actions.registry.ActionSpec`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def params(self) -> Sequence[ParamLike]: ...
    @property
    def output(self) -> Sequence[str]: ...


Catalogue = Mapping[str, ActionLike]

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}


def _type_ok(value: Any, json_type: str, nullable: bool) -> bool:
    if value is None:
        return nullable
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, Mapping)
    if json_type == "array":
        return isinstance(value, list)
    return True


def check_call(
    action: str,
    inputs: Mapping[str, Any],
    input_locs: Mapping[str, Loc],
    action_loc: Loc,
    where: str,
    catalogue: Catalogue,
    jid: str | None,
    node: str | None,
) -> list[Finding]:
    """J009 findings of one call: its name, missing and unknown inputs, literal types."""
    spec = catalogue.get(action)
    if spec is None:
        message = (
            f"{where}: {action!r} is not a back-office action of the catalogue"
            f"{did_you_mean(action, catalogue)}"
        )
        return [finding("J009", action_loc, message, jid, node)]
    found = []
    declared = {p.name: p for p in spec.params}
    for name, value in inputs.items():
        problem = _input_problem(action, declared, name, value, where)
        if problem:
            found.append(finding("J009", input_locs.get(name, action_loc), problem, jid, node))
    for problem in _missing_inputs(action, spec, inputs, where):
        found.append(finding("J009", action_loc, problem, jid, node))
    return found


def _input_problem(
    action: str, declared: Mapping[str, ParamLike], name: str, value: Any, where: str
) -> str | None:
    """What is wrong with one given input: the action has no such parameter, or its literal
    value is of the wrong type (an ``=expression`` has no value to check before it runs)."""
    param = declared.get(name)
    if param is None:
        return (
            f"{where}: {action} has no input {name!r}{did_you_mean(name, declared)}; "
            f"it takes {one_of(declared)}"
        )
    if not is_expression(value) and not _type_ok(literal(value), param.type, param.nullable):
        return (
            f"{where}: input {name!r} of {action} must be {_TYPE_WORDS[param.type]}, "
            f"found {literal(value)!r}"
        )
    return None


def _missing_inputs(
    action: str, spec: ActionLike, inputs: Mapping[str, Any], where: str
) -> list[str]:
    return [
        f"{where}: {action} needs the input {param.name!r}, which is not given"
        for param in spec.params
        if param.required and param.name not in inputs
    ]


def check_actions(journey: Journey, uses: Sequence[Use], catalogue: Catalogue) -> list[Finding]:
    jid = journey.id or None
    found: list[Finding] = []
    producers: dict[str, set[str]] = {}  # output name -> the actions that set it
    other_setters: set[str] = set(journey.inputs)
    for node in journey.nodes.values():
        if node.kind == "action" and node.action:
            found += check_call(
                node.action,
                node.input,
                node.input_locs,
                node.at("action"),
                f"node {node.id!r}",
                catalogue,
                jid,
                node.id,
            )
            if node.output:
                producers.setdefault(node.output, set()).add(node.action)
        for i, call in enumerate(node.after, 1):
            found += check_call(
                call.action,
                call.input,
                call.input_locs,
                call.action_loc,
                f"node {node.id!r}, after action {i}",
                catalogue,
                jid,
                node.id,
            )
        if node.field:
            other_setters.add(node.field)
        other_setters.update(node.set)
    # A typo in a result key ("tracking.stauts") is caught where the result comes from one
    # known action only.
    for use in uses:
        for name, key in attribute_reads(use.expression):
            actions = producers.get(name)
            if not actions or name in other_setters or len(actions) != 1:
                continue
            spec = catalogue.get(next(iter(actions)))
            if spec is None or not spec.output or key in spec.output:
                continue
            found.append(
                finding(
                    "J009",
                    use.loc,
                    f"node {use.node!r}, {use.where}: {name!r} is the result of {spec.name}, which "
                    f"has no {key!r}{did_you_mean(key, spec.output)}; it returns {one_of(spec.output)}",
                    jid,
                    use.node,
                )
            )
    return found
