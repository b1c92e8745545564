"""What every step does to a session, whatever the node's kind: arrive at a node, evaluate its
values and texts, complete it, go on to the next one, finish.

The handlers of :mod:`engine.sessions.steps` and the event entry points of :mod:`engine.sessions.runtime` are
written with these, so that a kind's handler says only what is particular to its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engine.definitions.expressions import (
    EvaluationError,
    Expression,
    compile_expression,
    is_expression,
    literal,
    render,
)
from engine.definitions.model import Node, Policy, Text
from engine.errors import SessionError
from engine.sessions.events import Effect, Ended
from engine.sessions.identity import scope_value
from engine.sessions.session import ENDED, MOVING, SURVEY, Definitions, Session, enter


class Next(Enum):
    """What a node's handler tells the loop of :func:`engine.sessions.steps.advance`."""

    CONTINUE = "continue"  # the session is at another node (moving): run that one
    WAIT = "wait"  # the session waits: for an answer, an action's result, the customer's totals
    FINISH = "finish"  # the session has ended, or offers its survey


# Looked up once: a member read on its Enum class costs a descriptor call (10x a global).
CONTINUE, WAIT, FINISH = Next.CONTINUE, Next.WAIT, Next.FINISH


@dataclass(slots=True)
class Turn:
    """What one call of ``step`` works with besides the session: the pinned definitions and
    authority limits, and the effects it gives back."""

    definitions: Definitions
    policy: Policy | None
    effects: list[Effect]


def visit(s: Session, qualified: str) -> None:
    """The node is reached: it goes in the session's path and visit counts."""
    s.path.append(qualified)
    s.visits[qualified] = s.visits.get(qualified, 0) + 1


def arrive(s: Session, node: Node, qualified: str) -> None:
    """A node that waits for nobody is reached: what it says is shown with the next step."""
    s.path.append(qualified)  # as visit(), inlined: this runs at most nodes of every step
    s.visits[qualified] = s.visits.get(qualified, 0) + 1
    if node.say is not None:
        text = text_of(s, node, node.say)
        if text:
            s.messages.append(text)


def go(s: Session, node_id: str | None) -> None:
    """On to ``node_id`` of the journey the session is in."""
    if node_id is None:  # the validator (J005) refuses journeys where this can happen
        raise SessionError(f"node {s.node!r} has nowhere to go", s.node)
    enter(s, node_id)
    s.status = MOVING


def complete(s: Session, node: Node) -> None:
    """A node is done: its `set` applies (after its field or output is stored)."""
    for name, value in node.set.items():
        s.context[name] = evaluate(s, node, value, f"set {name!r}")


def evaluate(s: Session, node: Node, value: Any, where: str) -> Any:
    """A value of the node (``=expr`` or a literal) on the session's context; an expression
    that fails is a SessionError naming the node and ``where`` in it."""
    if not is_expression(value):
        return literal(value)
    try:
        expression = compile_expression(value[1:])
        return expression.evaluate(scope(s, expression))
    except EvaluationError as err:
        raise SessionError(f"node {node.id!r}, {where}: {err}", s.node) from None


def scope(s: Session, expression: Expression) -> Mapping[str, Any]:
    """The names an expression reads: the context, and the read-only ``identity`` (who the
    customer is proven to be) when it reads it."""
    if "identity" not in expression.names:
        return s.context
    return {**s.context, "identity": scope_value(s.role, s.identity)}


def text_of(s: Session, node: Node, text: Text | None) -> str | None:
    """A text of the node in the session's locale, its placeholders filled."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = text.get(s.locale or "", next(iter(text.values()), ""))
    names = s.context
    if "identity" in text:  # the engine's read-only name, given only to the texts reading it
        names = {**s.context, "identity": scope_value(s.role, s.identity)}
    try:
        return render(text, names)
    except EvaluationError as err:
        raise SessionError(
            f"node {node.id!r}: a placeholder of its text failed: {err}", s.node
        ) from None


def finish(s: Session, outcome: str, effects: list[Effect], survey: bool = False) -> Next:
    """The session reached its outcome: ended, or offering its survey first."""
    s.outcome = outcome
    s.status = SURVEY if survey else ENDED
    if not survey:
        s.node = None
        effects.append(Ended(outcome))
    return FINISH
