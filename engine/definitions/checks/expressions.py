"""J007 (expressions and templates) and J012 (locales), and the list of every read.

Every place a journey computes something is listed once here as a :class:`Use`; the sandbox
check (J007) and the dataflow check (J008) both work from that list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.definitions.bounds import static_problem
from engine.definitions.expressions import (
    RESERVED,
    Expression,
    ExpressionError,
    compile_expression,
    compile_template,
    is_expression,
)
from engine.definitions.findings import Finding, finding
from engine.definitions.model import Journey, Loc, Node, Trigger


@dataclass(frozen=True)
class Use:
    """One expression of a node and what it can see."""

    node: str
    where: str  # for messages: "branch 1", "input 'amount'", "say (fr)", ...
    expression: Expression
    loc: Loc
    #: "before": sees what is set when the node starts; "after": also the node's own field,
    #: output and (for 'after' actions of an end) its 'set'.
    phase: str


def check_expressions(journey: Journey) -> tuple[list[Finding], list[Use]]:
    found: list[Finding] = []
    uses: list[Use] = []
    jid = journey.id or None
    for node in journey.nodes.values():
        for where, source, loc, phase, kind in _sources(node):
            try:
                if kind == "template":
                    compiled = [p.expression for p in compile_template(source)]
                else:
                    compiled = [compile_expression(source)]
                uses += [Use(node.id, where, e, loc, phase) for e in compiled]
                _bounded(compiled)
            except ExpressionError as err:
                what = "template" if kind == "template" else "expression"
                found.append(
                    finding(
                        "J007",
                        loc,
                        f"node {node.id!r}, {where}: the {what} {_clip(source)!r} {_reason(err)}",
                        jid,
                        node.id,
                    )
                )
        found.extend(_reserved_names(node, jid))
    return found, uses


def check_trigger_expressions(triggers: tuple[Trigger, ...]) -> list[Finding]:
    """J007 for the ``when`` and ``=inputs`` of the triggers in ``motives.yaml``."""
    found: list[Finding] = []
    for trigger in triggers:
        sources = [("'when'", trigger.when, trigger.at("when"))] if trigger.when else []
        sources += [
            (f"input {name!r}", value[1:], trigger.input_locs.get(name, trigger.at("inputs")))
            for name, value in trigger.inputs.items()
            if is_expression(value)
        ]
        for where, source, loc in sources:
            try:
                _bounded([compile_expression(source)])
            except ExpressionError as err:
                found.append(
                    finding(
                        "J007",
                        loc,
                        f"the trigger of {trigger.event!r} (journey {trigger.journey!r}), "
                        f"{where}: the expression {_clip(source)!r} {_reason(err)}",
                        trigger.journey or None,
                    )
                )
    return found


def _bounded(expressions: list[Expression]) -> None:
    """An expression whose literals show it can never be built within the bounds of a value
    (engine/definitions/bounds.py) is refused here, not when a customer is waiting."""
    for expression in expressions:
        problem = static_problem(expression.tree)
        if problem:
            raise ExpressionError(f"it can never be evaluated: {problem}")


def _reason(err: ExpressionError) -> str:
    return err.message if err.message.startswith("does not") else f"is refused: {err.message}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sources(node: Node) -> Iterator[tuple[str, str, Loc, str, str]]:
    """(where, source, loc, phase, kind) of every expression and template of a node."""
    for where, text, loc in _texts(node):
        yield where, text, loc, "before", "template"
    for i, branch in enumerate(node.branches, 1):
        yield f"branch {i} 'if'", branch.condition, branch.condition_loc, "before", "expression"
    for name, value in node.input.items():
        if is_expression(value):
            loc = node.input_locs.get(name, node.at("input"))
            yield f"input {name!r}", value[1:], loc, "before", "expression"
    for name, value in node.set.items():
        if is_expression(value):
            loc = node.set_locs.get(name, node.at("set"))
            yield f"set {name!r}", value[1:], loc, "after", "expression"
    for i, call in enumerate(node.after, 1):
        for name, value in call.input.items():
            if is_expression(value):
                loc = call.input_locs.get(name, call.loc)
                yield (
                    f"after action {i} ({call.action}) input {name!r}",
                    value[1:],
                    loc,
                    "after",
                    "expression",
                )


def _texts(node: Node) -> Iterator[tuple[str, str, Loc]]:
    """Every text shown to people, per locale, with the place it is written."""
    if node.say is not None:
        yield from _locales("'say'", node.say, node.at("say"))
    for option in node.options:
        if option.label is not None:
            yield from _locales(f"label of option {option.value!r}", option.label, option.loc)


def _locales(where: str, text: Any, loc: Loc) -> Iterator[tuple[str, str, Loc]]:
    if isinstance(text, str):
        yield where, text, loc
    elif isinstance(text, Mapping):
        for locale, value in text.items():
            if isinstance(value, str):
                yield f"{where} ({locale})", value, loc


def _reserved_names(node: Node, jid: str | None) -> list[Finding]:
    found = []
    names = [("field", node.field), ("output", node.output)] + [("set", n) for n in node.set]
    for what, name in names:
        if name and name in RESERVED:
            found.append(
                finding(
                    "J007",
                    node.at(what),
                    f"node {node.id!r}: {name!r} cannot name a value ({what}): it is a word of "
                    "the expression language; choose another name",
                    jid,
                    node.id,
                )
            )
    return found


def check_locales(journey: Journey) -> list[Finding]:
    """J012: with ``locales`` declared, every text is a map holding each of them."""
    if not journey.locales:
        return []
    found = []
    jid = journey.id or None
    wanted = journey.locales
    for node in journey.nodes.values():
        texts: list[tuple[str, Any, Loc]] = []
        if node.say is not None:
            texts.append(("'say'", node.say, node.at("say")))
        texts += [
            (f"label of option {o.value!r}", o.label, o.loc)
            for o in node.options
            if o.label is not None
        ]
        for where, text, loc in texts:
            if isinstance(text, str):
                found.append(
                    finding(
                        "J012",
                        loc,
                        f"node {node.id!r}, {where}: plain text, but the journey declares locales "
                        f"{', '.join(wanted)}; write one entry per locale, e.g. "
                        f"{{{', '.join(f'{lc}: ...' for lc in wanted)}}}",
                        jid,
                        node.id,
                    )
                )
            elif isinstance(text, Mapping):
                lacking = [lc for lc in wanted if lc not in text]
                if lacking:
                    found.append(
                        finding(
                            "J012",
                            loc,
                            f"node {node.id!r}, {where}: no text in {', '.join(map(repr, lacking))} "
                            f"(the journey declares locales {', '.join(wanted)})",
                            jid,
                            node.id,
                        )
                    )
    return found


def attribute_reads(expression: Expression) -> Iterator[tuple[str, str]]:
    """(name, key) for each ``name.key`` or ``name["key"]`` an expression reads."""
    return iter(expression.keys)
