"""Stepping a session: ``step(definitions, state, event) -> (state, effects)``, pure.

A session is a plain record (:class:`~engine.sessions.session.Session`) that refers to nodes by
qualified name (``identify/ask_id`` inside a sub-journey). An event is what happened (the
session started, an answer came, an action returned); effects are what the outside world must
do (:mod:`engine.sessions.events`). Each event's entry point here checks that the event fits where the
session stands and applies it; then the handlers of the node kinds (:mod:`engine.sessions.steps`) run
the nodes the session reaches until it waits again. Storage, HTTP and Prefect are adapters
around this function; replaying a session's events through it rebuilds the session exactly.
"""

from __future__ import annotations

from typing import Any

from engine.definitions.model import ROLES, Node, Policy
from engine.errors import Conflict, InvalidAnswer, MissingInput, SessionError
from engine.sessions.authority import default_role
from engine.sessions.events import (
    INCIDENT_QUEUE,
    ActionDone,
    Answer,
    Effect,
    Ended,
    Event,
    HandOff,
    Reserve,
    Reserved,
    Retry,
    RunAction,
    RunAfter,
    SkipSurvey,
    Start,
    SurveyAnswer,
    Wake,
)
from engine.sessions.identity import CUSTOMER, identity_of
from engine.sessions.session import (
    AUTHORISING,
    ENDED,
    INCIDENT,
    MOVING,
    RUNNING,
    SURVEY,
    WAITING,
    Definitions,
    Frame,
    Session,
    SessionStatus,
    copy_data,
    enter,
    local,
    new_session,
    node_names,
    resolve_node,
    unambiguous,
)
from engine.sessions.steps import KINDS, MAX_STEPS, advance
from engine.sessions.steps_action import (
    RETRY_FIRST_S,
    RETRY_MAX_S,
    action_inputs,
    authorise_action,
    failed,
    refused,
    retry_time,
)
from engine.sessions.steps_common import Turn, complete, finish, go, text_of
from engine.sessions.values import AnswerError, convert_inputs

# What the rest of the project imports from here: the runtime's vocabulary in one place.
__all__ = [
    "AUTHORISING",
    "ENDED",
    "INCIDENT",
    "INCIDENT_QUEUE",
    "MAX_STEPS",
    "MOVING",
    "RETRY_FIRST_S",
    "RETRY_MAX_S",
    "RUNNING",
    "SURVEY",
    "WAITING",
    "ActionDone",
    "Answer",
    "Conflict",
    "Definitions",
    "Effect",
    "Ended",
    "Event",
    "Frame",
    "HandOff",
    "InvalidAnswer",
    "MissingInput",
    "Reserve",
    "Reserved",
    "Retry",
    "RunAction",
    "RunAfter",
    "Session",
    "SessionError",
    "SessionStatus",
    "SkipSurvey",
    "Start",
    "SurveyAnswer",
    "Wake",
    "copy_data",
    "current_step",
    "new_session",
    "node_names",
    "resolve_node",
    "retry_time",
    "step",
    "unambiguous",
]


def step(
    definitions: Definitions,
    session: Session,
    event: Event,
    *,
    in_place: bool = False,
    policy: Policy | None = None,
) -> tuple[Session, list[Effect]]:
    """Apply one event; the input session is not modified unless the caller owns it and says
    so (``in_place``: a session just loaded for this one call, saving a copy per step).

    ``policy`` holds the authority limits pinned with the session (None: no limits)."""
    s = session if in_place else session.clone()
    turn = Turn(definitions, policy, [])
    effects = turn.effects
    if isinstance(event, SurveyAnswer | SkipSurvey):
        _survey(definitions, s, event)
        effects.append(Ended(s.outcome or ""))
        return _bump(s), effects
    try:
        if isinstance(event, Start):
            _start(turn, s, event)
        elif isinstance(event, Answer):
            _answer(turn, s, event)
        elif isinstance(event, ActionDone):
            _action_done(turn, s, event)
        elif isinstance(event, Reserved):
            _reserved(turn, s, event)
        elif isinstance(event, Retry):
            _retry(turn, s, event)
        elif isinstance(event, HandOff):
            _hand_off(turn, s, event)
        else:
            _wake(turn, s, event)
        advance(turn, s)  # the nodes the session reaches now, until it waits again
    except (Conflict, InvalidAnswer, MissingInput):
        raise  # the event is refused; the session is unchanged
    except SessionError as problem:
        # The event was accepted, but the journey cannot go on from here (a condition, a
        # `set` or a text that fails on the values it got). The session ends, failed, with the
        # reason: never stuck, visible to the agent and in the reports, replayed the same way.
        s.error = {"node": problem.node or s.node, "message": problem.message}
        s.outcome = "unresolved"
        s.status = ENDED
        s.node = None
        effects.append(Ended("unresolved"))
    return _bump(s), effects


def _bump(s: Session) -> Session:
    s.seq += 1
    return s


def _node(definitions: Definitions, s: Session) -> Node:
    """The node the session stands at (as current() and local(), in one call: every event)."""
    frame = s.stack[-1]
    return definitions[frame.journey].nodes[(s.node or "")[len(frame.prefix) :]]


# --------------------------------------------------------------------------- events


def _start(turn: Turn, s: Session, event: Start) -> None:
    if s.seq != 0:
        raise Conflict("the session has already started", s.node)
    journey = turn.definitions[s.journey]
    role = _checked_role(event.role)
    s.context.update(convert_inputs(journey, event.inputs, as_text=event.as_text))
    s.role = role or default_role(s.channel)
    s.actor = event.actor
    s.status = MOVING
    if event.identity:
        # The proven customer, whatever number the inputs claimed.
        s.identity = identity_of(
            str(event.identity["customer_id"]),
            str(event.identity.get("by") or "signed"),
            event.identity.get("issuer"),
        )
        s.customer_id = s.identity["customer_id"]
        s.context["customer_id"] = s.customer_id
    elif (
        s.customer_id is None
        and isinstance(s.context.get("customer_id"), str)
        and s.role != CUSTOMER  # a self-care customer's number is a claim until proven
    ):
        s.customer_id = s.context["customer_id"]
    enter(s, journey.start)


def _answer(turn: Turn, s: Session, event: Answer) -> None:
    if s.status != WAITING or s.node is None:
        raise Conflict(_not_waiting(s), s.node)
    target = resolve_node(turn.definitions, s, event.node)
    if target != s.node:
        raise Conflict(
            f"the session is waiting at {s.node!r}, not at {event.node!r}; answer {s.node!r}",
            s.node,
        )
    if event.seq is not None and event.seq != s.seq:
        raise Conflict(
            f"the answer is for step {event.seq}, but the session is at step {s.seq} "
            "(someone else answered first); reload the session",
            s.node,
        )
    node = _node(turn.definitions, s)
    check = KINDS[node.kind].check
    if check is None:
        raise Conflict(f"the step at {s.node!r} takes no answer: it goes on by itself", s.node)
    role = _checked_role(event.role) if event.role is not None else None
    try:
        value = check(node, event.value, event.as_text, s.locale)
    except AnswerError as problem:
        raise InvalidAnswer(problem.message, s.node, node.field) from None
    if role is not None or event.actor is not None:  # someone else performs the step
        s.role = role or s.role
        s.actor = event.actor
    s.messages = []
    if node.field:
        s.context[node.field] = value
    complete(s, node)
    go(s, _chosen_next(node, value))


def _chosen_next(node: Node, value: Any) -> str | None:
    for option in node.options:
        if option.value == value and option.next:
            return option.next
    return node.next


def _checked_role(role: str | None) -> str | None:
    if role is not None and role not in ROLES:
        raise InvalidAnswer(
            f"{role!r} is not a role; the roles are {', '.join(ROLES)}", None, "role"
        )
    return role


def _not_waiting(s: Session) -> str:
    if s.status in (ENDED, SURVEY):
        return f"the session has ended (outcome {s.outcome!r}); start a new one"
    if s.status == INCIDENT:
        action = (s.incident or {}).get("action")
        return (
            f"the session is held by an incident: the back-office action {action!r} could "
            "not run; retry it or hand the contact off"
        )
    return f"the session is not waiting for an answer: the action at {s.node!r} is running"


def _action_done(turn: Turn, s: Session, event: ActionDone) -> None:
    if s.status != RUNNING or s.node is None:
        raise Conflict(f"no action is running (the session is {s.status})", s.node)
    if resolve_node(turn.definitions, s, event.node) != s.node:
        raise Conflict(f"the action running is at {s.node!r}, not at {event.node!r}", s.node)
    node = _node(turn.definitions, s)
    if event.failure is not None:
        failed(s, node, event)
        return
    s.incident = None
    if event.error is None:
        if event.verified:
            s.identity = identity_of(event.verified, "code")
            s.customer_id = event.verified
        if node.output:
            s.context[node.output] = dict(event.result or {})
        complete(s, node)
        go(s, node.next)
        return
    refused(s, node, turn.policy)
    s.context["last_error"] = {
        "node": s.node,
        "action": node.action,
        "code": event.code or "refused",
        "message": event.error,
    }
    if node.on_error:
        go(s, node.on_error)
        return
    # No way planned for the failure: the session cannot go on by itself.
    s.error = {"node": s.node, "action": node.action, "message": event.error}
    s.outcome = "unresolved"
    s.status = ENDED
    s.node = None


def _reserved(turn: Turn, s: Session, event: Reserved) -> None:
    """The customer's totals came: the action node's decision is taken again, now whole
    (the same inputs and session totals give the same answer for one call and the session)."""
    if s.status != AUTHORISING or s.node is None:
        raise Conflict(f"no action waits for its authority limits (the session is {s.status})")
    if resolve_node(turn.definitions, s, event.node) != s.node:
        raise Conflict(f"the action waiting for its limits is at {s.node!r}, not {event.node!r}")
    node = _node(turn.definitions, s)
    inputs = action_inputs(s, node)
    s.status = MOVING
    authorise_action(turn, s, node, s.node, inputs, dict(event.totals))


def _retry(turn: Turn, s: Session, event: Retry) -> None:
    if s.status != INCIDENT or s.node is None:
        raise Conflict(f"there is no incident to retry (the session is {s.status})", s.node)
    if event.node is not None and resolve_node(turn.definitions, s, event.node) != s.node:
        raise Conflict(f"the incident is at {s.node!r}, not at {event.node!r}", s.node)
    node = _node(turn.definitions, s)
    qualified = s.node
    inputs = action_inputs(s, node)
    # The same visit, so the same idempotency key: the back office never acts twice.
    key = f"{s.id}:{qualified}:{s.visits.get(qualified, 1)}"
    turn.effects.append(
        RunAction(qualified, node.action or "", inputs, True, node.retries, node.timeout, key)
    )
    s.status = RUNNING


def _hand_off(turn: Turn, s: Session, event: HandOff) -> None:
    if s.status != INCIDENT or s.node is None:
        raise Conflict(f"there is no incident to hand off (the session is {s.status})", s.node)
    incident = s.incident or {}
    reason = event.reason or f"{incident.get('action')}: {incident.get('message')}"
    s.handoff = {"queue": event.queue, "reason": reason, "node": s.node}
    finish(s, "escalated", turn.effects)


def _wake(turn: Turn, s: Session, event: Wake) -> None:
    if s.status != WAITING or s.node is None:
        raise Conflict(f"the session waits for nothing (it is {s.status})", s.node)
    if resolve_node(turn.definitions, s, event.node) != s.node:
        raise Conflict(f"the session is waiting at {s.node!r}, not at {event.node!r}", s.node)
    node = _node(turn.definitions, s)
    wake = KINDS[node.kind].wake
    if wake is None:
        raise Conflict(
            f"the step at {s.node!r} waits for an answer, not to go on by itself", s.node
        )
    s.messages = []
    wake(s, node, event.data)


def _survey(definitions: Definitions, s: Session, event: SurveyAnswer | SkipSurvey) -> None:
    if s.status != SURVEY:
        raise Conflict(f"no survey is offered (the session is {s.status})", s.node)
    if isinstance(event, SurveyAnswer):
        offered = _offered_surveys(definitions, s)
        for name, value, low, high in (("ces", event.ces, 1, 7), ("nps", event.nps, 0, 10)):
            if value is None or name not in offered:  # only what this end asked is recorded
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidAnswer(
                    f"the {name.upper()} answer must be a whole number from {low} to {high}, "
                    f"not {value!r}",
                    s.node,
                    name,
                )
            s.survey[name] = value
    s.status = ENDED
    s.node = None


def _offered_surveys(definitions: Definitions, s: Session) -> tuple[str, ...]:
    journey = definitions[s.stack[-1].journey] if s.stack else definitions[s.journey]
    node = journey.nodes.get(local(s)) if s.node else None
    return node.survey if node else ("ces", "nps")


# ----------------------------------------------------------------------- what to show


def current_step(definitions: Definitions, s: Session) -> dict[str, Any] | None:
    """What to show now: the waiting node's text, its field and what its kind shows (the
    schema of an ``ask``, the options of a ``choose``); the survey; the incident."""
    if s.status == SURVEY:
        return {
            "node": s.node,
            "kind": "survey",
            "messages": list(s.messages),
            "surveys": list(_offered_surveys(definitions, s)),
        }
    if s.status == INCIDENT and s.node is not None:
        return _incident_step(s, s.node)
    if s.status not in (WAITING, RUNNING) or s.node is None:
        return None
    node = _node(definitions, s)
    view: dict[str, Any] = {
        "node": s.node,
        "kind": node.kind,
        "text": text_of(s, node, node.say) if s.status == WAITING else None,
        "messages": list(s.messages),
        "roles": list(node.roles),
    }
    if node.field:
        view["field"] = node.field
    show = KINDS[node.kind].show
    if show is not None:
        show(s, node, view)
    if s.status == RUNNING:
        view["action"] = node.action
    return view


def _incident_step(s: Session, node: str) -> dict[str, Any]:
    incident = dict(s.incident or {})
    return {
        "node": node,
        "kind": "incident",
        "messages": list(s.messages),
        "action": incident.get("action"),
        "message": incident.get("message"),
        "since": incident.get("since"),
        "tries": incident.get("tries"),
        "retry_at": incident.get("retry_at"),
    }
