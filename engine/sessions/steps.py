"""One handler per node kind, in a table keyed by kind (as Rasa's flow steps).

When a session reaches a node, :func:`advance` asks the node's handler to run it; the handler
says whether to go on to the next node (``CONTINUE``: it waited for nobody), to stop there
(``WAIT``: an answer, an action's result) or that the session is done (``FINISH``). A kind
that waits for an answer also says how the answer is checked, and what its step shows; one
that the session leaves by itself (a time, a back-office event), how it wakes.

A new node kind is one entry of :data:`KINDS` (with the schema, the builder and its checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.definitions.expressions import EvaluationError, compile_expression
from engine.definitions.model import Node
from engine.errors import SessionError
from engine.sessions.events import RunAfter
from engine.sessions.session import MOVING, WAITING, Frame, Session, copy_data, enter
from engine.sessions.steps_action import enter_action
from engine.sessions.steps_common import (
    CONTINUE,
    WAIT,
    Next,
    Turn,
    arrive,
    complete,
    evaluate,
    finish,
    go,
    scope,
    text_of,
    visit,
)
from engine.sessions.values import check_option, check_value

MAX_STEPS = 10_000  # nodes passed in one step before a loop is declared runaway

#: Runs a node the session has reached: (turn, session, node, its qualified name) -> Next.
Handler = Callable[[Turn, Session, Node, str], Next]
#: Checks an answer to a node: (node, value, as_text, locale) -> the value to store.
Checker = Callable[[Node, Any, bool, str | None], Any]
#: Adds to the view of a step waiting at a node what its kind shows (its schema, options).
Shower = Callable[[Session, Node, dict[str, Any]], None]
#: Moves a session on from a node that waits for no answer: (session, node, Wake.data).
Waker = Callable[[Session, Node, Mapping[str, Any] | None], None]


@dataclass(frozen=True)
class Kind:
    """What a node kind does. ``enter``: the session reached a node of this kind. ``check``:
    only the kinds that wait for an answer have one (an answer to any other is refused).
    ``show``: what the step shows besides its text, messages and field. ``wake``: only the
    kinds whose node the session leaves by itself (a ``Wake`` event) have one."""

    enter: Handler
    check: Checker | None = None
    show: Shower | None = None
    wake: Waker | None = None


def advance(turn: Turn, s: Session) -> None:
    """Run the nodes the session reaches until it must wait or has ended."""
    if s.status != MOVING:
        return
    definitions = turn.definitions
    for _ in range(MAX_STEPS):
        frame = s.stack[-1]
        qualified = s.node or ""
        node = definitions[frame.journey].nodes[qualified[len(frame.prefix) :]]
        if KINDS[node.kind].enter(turn, s, node, qualified) is not CONTINUE:
            return
    raise SessionError(
        f"the session passed {MAX_STEPS} nodes without waiting for anyone: a loop with no "
        "question in it?",
        s.node,
    )


# ------------------------------------------------------------------------- handlers


def _ask(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    if node.field and s.context.get(node.field) is not None and not node.confirm:
        # Never ask twice: the answer is known. The step still completes (not visited).
        complete(s, node)
        go(s, node.next)
        return CONTINUE
    visit(s, qualified)
    s.status = WAITING  # its text is the step's, not a message
    return WAIT


def _question(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    """The session waits for the answer (``check`` of the kind checks it)."""
    visit(s, qualified)
    s.status = WAITING  # its text is the step's, not a message
    return WAIT


def _say(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    arrive(s, node, qualified)
    complete(s, node)
    go(s, node.next)
    return CONTINUE


def _decide(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    arrive(s, node, qualified)
    go(s, _branch(s, node))
    return CONTINUE


def _branch(s: Session, node: Node) -> str | None:
    for i, branch in enumerate(node.branches, 1):
        try:
            condition = compile_expression(branch.condition)
            if condition.evaluate(scope(s, condition)):
                return branch.next
        except EvaluationError as err:
            raise SessionError(f"node {node.id!r}, branch {i}: {err}", s.node) from None
    return node.otherwise


def _call(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    """A ``journey`` node: its inputs and the sub-journey's defaults set, on to its start."""
    arrive(s, node, qualified)
    sub = turn.definitions[node.journey or ""]
    for name, value in node.input.items():
        s.context[name] = evaluate(s, node, value, f"input {name!r}")
    for name, schema in sub.inputs.items():
        if name not in s.context and isinstance(schema, Mapping) and "default" in schema:
            s.context[name] = copy_data(schema["default"])
    s.stack.append(Frame(sub.id, qualified + "/", qualified))
    enter(s, sub.start)
    s.status = MOVING
    return CONTINUE


def _handoff(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    arrive(s, node, qualified)
    s.handoff = {"queue": node.queue, "reason": node.reason, "node": qualified}
    return finish(s, "escalated", turn.effects)


def _end(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    arrive(s, node, qualified)
    complete(s, node)
    for i, call in enumerate(node.after, 1):  # a sub-journey's `after` runs at its end
        inputs = {
            k: evaluate(s, node, v, f"after action {i} input {k!r}") for k, v in call.input.items()
        }
        turn.effects.append(
            RunAfter(call.action, inputs, f"{s.id}:{qualified}:after{i}", call.retries)
        )
    if len(s.stack) > 1:
        _return(turn, s)
        return CONTINUE
    return finish(s, node.outcome or "resolved", turn.effects, survey=bool(node.survey))


def _return(turn: Turn, s: Session) -> None:
    """A sub-journey reached an end: back to the calling node's `next`."""
    frame = s.stack.pop()
    caller_local = (frame.caller or "")[len(s.stack[-1].prefix) :]
    caller = turn.definitions[s.stack[-1].journey].nodes[caller_local]
    s.node = frame.caller
    complete(s, caller)
    go(s, caller.next)


# ------------------------------------------------------------------ what steps show


def _show_ask(s: Session, node: Node, view: dict[str, Any]) -> None:
    view["schema"] = dict(node.schema or {"type": "string"})
    if node.field and s.context.get(node.field) is not None:
        view["known"] = s.context[node.field]  # confirm: the value on record


def _show_choose(s: Session, node: Node, view: dict[str, Any]) -> None:
    view["options"] = [
        {
            "value": o.value,
            "label": text_of(s, node, o.label) if o.label is not None else str(o.value),
        }
        for o in node.options
    ]


KINDS: dict[str, Kind] = {
    "say": Kind(_say),
    "ask": Kind(_ask, check_value, _show_ask),
    "choose": Kind(_question, check_option, _show_choose),
    "decide": Kind(_decide),
    "action": Kind(enter_action),
    "journey": Kind(_call),
    "handoff": Kind(_handoff),
    "end": Kind(_end),
}


def takes_answers(node: Node) -> bool:
    """Whether a session waiting at ``node`` waits for someone's answer."""
    kind = KINDS.get(node.kind)
    return kind is not None and kind.check is not None
