"""Stepping a session: ``step(definitions, state, event) -> (state, effects)``, pure.

A session is a plain record (:class:`Session`) that refers to nodes by qualified name
(``identify/ask_id`` inside a sub-journey). An event is what happened (the session started,
an answer came, an action returned); effects are what the outside world must do (show a step,
run a back-office action, run the post-contact actions). Storage, HTTP and Prefect are adapters
around this function; replaying a session's events through it rebuilds the session exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine import records
from engine.authority import (
    SUPERVISOR_QUEUE,
    Applied,
    Breach,
    Claim,
    added,
    claims,
    customer_applied,
    decide,
    default_role,
    unknown_customer,
)
from engine.errors import Conflict, InvalidAnswer, MissingInput, SessionError
from engine.expressions import (
    EvaluationError,
    Expression,
    compile_expression,
    is_expression,
    literal,
    render,
)
from engine.identity import CUSTOMER, identity_of, scope_value
from engine.model import ROLES, Journey, Node, Policy, Text
from engine.values import AnswerError, check_answer, convert_inputs

__all__ = ["Conflict", "InvalidAnswer", "MissingInput", "Session", "SessionError", "step"]

WAITING = "waiting"  # for an answer at `node`
RUNNING = "running"  # for the result of the action at `node`
SURVEY = "survey"  # the end is reached (outcome final); the survey is offered
ENDED = "ended"
#: The action at `node` failed technically after its retries: the session holds there, an
#: incident, retried by itself (``incident.retry_at``) or by an agent, or handed off.
INCIDENT = "incident"
#: Within one step only, never saved: the action at `node` waits for the customer's totals
#: (``Reserve``), which the service asks the store for at once (``Reserved``).
AUTHORISING = "authorising"

#: Queue of a session handed off from an incident: the back office finishes it.
INCIDENT_QUEUE = "backoffice"
#: Automatic retries of an incident: 30 s, then twice as long each time, at most 30 min.
RETRY_FIRST_S, RETRY_MAX_S = 30, 1800

MAX_STEPS = 10_000  # nodes passed in one step before a loop is declared runaway


@dataclass
class Frame:
    """One journey on the call stack: which journey, and the prefix of its node names."""

    journey: str
    prefix: str  # "" for the session's journey, "identify/" inside the node identify
    caller: str | None = None  # qualified name of the calling journey node


@dataclass
class Session:
    id: str
    journey: str
    version: int
    definition: str  # content hash of the pinned definitions
    status: str = WAITING
    node: str | None = None  # qualified name of the node waiting or running
    outcome: str | None = None
    seq: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # `say` texts shown with the next step
    stack: list[Frame] = field(default_factory=list)
    visits: dict[str, int] = field(default_factory=dict)
    locale: str | None = None
    channel: str | None = None
    contact_id: str | None = None
    customer_id: str | None = None
    agent: str | None = None
    motive: str | None = None
    survey: dict[str, Any] = field(default_factory=dict)
    handoff: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: While the session is an incident: {node, action, message, since, tries, retry_at}.
    incident: dict[str, Any] | None = None
    #: Who performs the steps now (agent, supervisor, customer), set by Start and Answer, and
    #: who that is when known: the authority limits of policies.yaml are the role's.
    role: str | None = None
    actor: str | None = None
    #: Every action decided within a limit: {node, action, param, value, limit, rule, role, actor}
    #: (and, for a total, ``total``; per customer also ``customer`` and ``over``).
    grants: list[dict[str, Any]] = field(default_factory=list)
    #: Who the customer is proven to be ({customer_id, by}, see engine.identity); None until
    #: proven. In self-care no action acts on a customer's account before.
    identity: dict[str, Any] | None = None
    #: What this session granted so far, action -> param -> sum, for the parameters a role
    #: bounds per session (``per_session``), whoever granted them.
    totals: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """Plain data, of the current format (engine/records.py); deep-copied unless the caller
        serializes it at once (``copy=False``)."""
        data = {name: copy_data(value) if copy else value for name, value in self.__dict__.items()}
        data["stack"] = [dict(f.__dict__) for f in self.stack]
        data[records.FORMAT] = records.SESSION_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], copy: bool = True) -> Session:
        """A session from plain data of any format (upgraded first: engine/records.py), its
        fields read one by one; ``copy=False`` when the data was just parsed and is ours."""
        data = records.upgrade_session(data)
        records.check_session_fields(data)
        c = copy_data if copy else _same
        return cls(
            id=data["id"],
            journey=data["journey"],
            version=data["version"],
            definition=data["definition"],
            status=data["status"],
            node=data["node"],
            outcome=data["outcome"],
            seq=data["seq"],
            context=c(data["context"]),
            path=c(data["path"]),
            messages=c(data["messages"]),
            stack=[Frame(f["journey"], f["prefix"], f.get("caller")) for f in data["stack"]],
            visits=c(data["visits"]),
            locale=data["locale"],
            channel=data["channel"],
            contact_id=data["contact_id"],
            customer_id=data["customer_id"],
            agent=data["agent"],
            motive=data["motive"],
            survey=c(data["survey"]),
            handoff=c(data["handoff"]),
            error=c(data["error"]),
            incident=c(data["incident"]),
            role=data["role"],
            actor=data["actor"],
            grants=c(data["grants"]),
            identity=c(data["identity"]),
            totals=c(data["totals"]),
        )

    @property
    def finished(self) -> bool:
        return self.status in (SURVEY, ENDED)

    def clone(self) -> Session:
        """A deep copy, several times cheaper than copy.deepcopy on this plain data."""
        values = {name: copy_data(value) for name, value in self.__dict__.items()}
        values["stack"] = [Frame(f.journey, f.prefix, f.caller) for f in self.stack]
        return Session(**values)


def _same(value: Any) -> Any:
    return value


def copy_data(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: copy_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_data(v) for v in value]
    return value


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    inputs: Mapping[str, Any] = field(default_factory=dict)
    as_text: bool = False  # inputs typed on a command line or a query string
    role: str | None = None  # default: customer on the selfcare channel, agent otherwise
    actor: str | None = None
    #: The customer proven when the session starts ({customer_id, by}: a signed identity
    #: checked by the adapter, or the agent or event that started it for this customer).
    identity: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    node: str
    value: Any
    seq: int | None = None
    as_text: bool = False
    role: str | None = None  # None: the role (and actor) of the session so far
    actor: str | None = None


@dataclass(frozen=True)
class ActionDone:
    """An action's outcome: its result, a business ``error`` (with its ``code``) or a
    technical ``failure``; ``at`` (ISO date-time) dates an incident and its next retry."""

    node: str
    result: Mapping[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    run_id: str | None = None
    code: str | None = None
    failure: str | None = None
    at: str | None = None
    #: The customer this successful run proved (a one-time code checked), if any.
    verified: str | None = None


@dataclass(frozen=True)
class Reserved:
    """The customer's totals the store read, under its lock, for the ``Reserve`` of ``node``:
    param -> what the customer was granted over the period of that param's limit (the grant
    itself, when within the limits, is recorded by the store with them)."""

    node: str
    totals: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry:
    """Run the failed action of an incident again (an agent, or the retry loop)."""

    node: str | None = None


@dataclass(frozen=True)
class HandOff:
    """Give up on an incident for this contact: the session goes to a queue, escalated."""

    queue: str = INCIDENT_QUEUE
    reason: str | None = None


@dataclass(frozen=True)
class SurveyAnswer:
    ces: int | None = None
    nps: int | None = None


@dataclass(frozen=True)
class SkipSurvey:
    pass


Event = Start | Answer | ActionDone | Reserved | Retry | HandOff | SurveyAnswer | SkipSurvey


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class RunAction:
    """Run a back-office action. With ``wait`` the session waits for an ActionDone."""

    node: str
    action: str
    input: Mapping[str, Any]
    wait: bool
    retries: int
    timeout: float | None
    key: str  # idempotency key: session, node, visit


@dataclass(frozen=True)
class Reserve:
    """Read the customer's totals for ``claims`` and record them as granted if they stay
    within their limits, atomically (``authority.customer_breach``); answer with Reserved.
    ``key`` (the action's idempotency key) makes a repeated reservation a no-op."""

    node: str
    action: str
    role: str
    customer_id: str
    session_id: str
    key: str
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class RunAfter:
    """A post-contact action, run in the background once the session has ended."""

    action: str
    input: Mapping[str, Any]
    key: str
    retries: int = 0  # tries again after a technical failure (the `after` entry's)


@dataclass(frozen=True)
class Ended:
    outcome: str


Effect = RunAction | Reserve | RunAfter | Ended

Definitions = Mapping[str, Journey]  # journey id -> the pinned definition


# ------------------------------------------------------------------------------ step


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
    effects: list[Effect] = []
    if isinstance(event, SurveyAnswer | SkipSurvey):
        _survey(definitions, s, event)
        effects.append(Ended(s.outcome or ""))
        return _bump(s), effects
    try:
        if isinstance(event, Start):
            _start(definitions, s, event)
        elif isinstance(event, Answer):
            _answer(definitions, s, event)
        elif isinstance(event, ActionDone):
            _action_done(definitions, s, event, policy)
        elif isinstance(event, Reserved):
            _reserved(definitions, s, event, policy, effects)
        elif isinstance(event, Retry):
            _retry(definitions, s, event, effects)
            return _bump(s), effects
        elif isinstance(event, HandOff):
            _hand_off(s, event, effects)
            return _bump(s), effects
        _advance(definitions, s, effects, policy)
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


def new_session(session_id: str, journey: Journey, definition: str, **details: Any) -> Session:
    """A session record before its Start event."""
    s = Session(id=session_id, journey=journey.id, version=journey.version, definition=definition)
    s.stack = [Frame(journey.id, "")]
    for key, value in details.items():
        setattr(s, key, value)
    if s.locale is None and journey.locales:
        s.locale = journey.locales[0]
    return s


def _start(definitions: Definitions, s: Session, event: Start) -> None:
    if s.seq != 0:
        raise Conflict("the session has already started", s.node)
    journey = definitions[s.journey]
    role = _checked_role(event.role)
    s.context.update(convert_inputs(journey, event.inputs, as_text=event.as_text))
    s.role = role or default_role(s.channel)
    s.actor = event.actor
    s.status = "moving"
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
    _enter(s, journey.start)


def _current(definitions: Definitions, s: Session) -> tuple[Journey, Frame]:
    frame = s.stack[-1]
    return definitions[frame.journey], frame


def _enter(s: Session, node_id: str) -> None:
    s.node = s.stack[-1].prefix + node_id


def _local(s: Session) -> str:
    return (s.node or "")[len(s.stack[-1].prefix) :]


def resolve_node(definitions: Definitions, s: Session, name: str) -> str:
    """The qualified name an answer's node refers to (the bare id works when unambiguous)."""
    if s.node is None:
        raise Conflict("the session is not waiting for an answer")
    if name == s.node:
        return s.node
    bare = s.node.rsplit("/", 1)[-1]
    if name == bare and unambiguous(node_names(definitions, s.journey), s.node):
        return s.node
    return name  # another node (or an ambiguous bare name): refused by the caller


def node_names(
    definitions: Definitions, journey_id: str, prefix: str = "", depth: int = 0
) -> list[str]:
    """Every qualified node name a session of ``journey_id`` has, sub-journeys included."""
    journey = definitions.get(journey_id)
    if journey is None or depth > 32:  # sub-journey cycles are refused by J011
        return []
    names = []
    for node_id, node in journey.nodes.items():
        names.append(prefix + node_id)
        if node.kind == "journey" and node.journey:
            names += node_names(definitions, node.journey, f"{prefix}{node_id}/", depth + 1)
    return names


def unambiguous(names: list[str], qualified: str) -> bool:
    """Whether the bare id of ``qualified`` names no other node of the session."""
    bare = qualified.rsplit("/", 1)[-1]
    return [n for n in names if n.rsplit("/", 1)[-1] == bare] == [qualified]


def _answer(definitions: Definitions, s: Session, event: Answer) -> None:
    if s.status != WAITING or s.node is None:
        raise Conflict(_not_waiting(s), s.node)
    target = resolve_node(definitions, s, event.node)
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
    journey, _frame = _current(definitions, s)
    node = journey.nodes[_local(s)]
    role = _checked_role(event.role)
    try:
        value = check_answer(node, event.value, as_text=event.as_text, locale=s.locale)
    except AnswerError as problem:
        raise InvalidAnswer(problem.message, s.node, node.field) from None
    if role is not None or event.actor is not None:  # someone else performs the step
        s.role = role or s.role
        s.actor = event.actor
    s.messages = []
    if node.field:
        s.context[node.field] = value
    _complete(s, node)
    _go(s, _choose_next(node, value))


def _checked_role(role: str | None) -> str | None:
    if role is not None and role not in ROLES:
        raise InvalidAnswer(
            f"{role!r} is not a role; the roles are {', '.join(ROLES)}", None, "role"
        )
    return role


def _action_done(
    definitions: Definitions, s: Session, event: ActionDone, policy: Policy | None = None
) -> None:
    if s.status != RUNNING or s.node is None:
        raise Conflict(f"no action is running (the session is {s.status})", s.node)
    if resolve_node(definitions, s, event.node) != s.node:
        raise Conflict(f"the action running is at {s.node!r}, not at {event.node!r}", s.node)
    journey, _frame = _current(definitions, s)
    node = journey.nodes[_local(s)]
    if event.failure is not None:
        _failed(s, node, event)
        return
    s.incident = None
    if event.error is None:
        if event.verified:
            s.identity = identity_of(event.verified, "code")
            s.customer_id = event.verified
        if node.output:
            s.context[node.output] = dict(event.result or {})
        _complete(s, node)
        _go(s, node.next)
        return
    _refused(s, node, policy)
    s.context["last_error"] = {
        "node": s.node,
        "action": node.action,
        "code": event.code or "refused",
        "message": event.error,
    }
    if node.on_error:
        _go(s, node.on_error)
        return
    # No way planned for the failure: the session cannot go on by itself.
    s.error = {"node": s.node, "action": node.action, "message": event.error}
    s.outcome = "unresolved"
    s.status = ENDED
    s.node = None


def _refused(s: Session, node: Node, policy: Policy | None) -> None:
    """The back office refused the action (a business error): nothing was given, so it leaves
    the session's totals (the store releases the customer's). The grants, the record of who
    decided what, stay. The context is the one the action started from: the same inputs."""
    action = node.action or ""
    for param in policy.counted_per_session(action) if policy else ():
        value = (
            _value(s, node, node.input[param], f"input {param!r}") if param in node.input else None
        )
        sums = s.totals.get(action, {})
        if isinstance(value, int | float) and not isinstance(value, bool) and param in sums:
            sums[param] = added(sums[param], -value)


def _failed(s: Session, node: Node, event: ActionDone) -> None:
    """A technical failure after the node's retries: never a business path. The journey's
    ``on_failure`` if it has one; otherwise the session holds at the node, an incident."""
    if node.on_failure:
        s.incident = None
        s.context["last_error"] = {
            "node": s.node,
            "action": node.action,
            "code": "failure",
            "message": event.failure,
        }
        _go(s, node.on_failure)
        return
    before = s.incident or {}
    tries = int(before.get("tries", 0)) + 1
    since = before.get("since") or event.at
    s.incident = {
        "node": s.node,
        "action": node.action,
        "message": event.failure,
        "since": since,
        "tries": tries,
        "retry_at": retry_time(event.at, tries),
    }
    s.status = INCIDENT


def retry_time(at: str | None, tries: int) -> str | None:
    """When an incident is retried by itself after ``tries`` failed runs (back-off)."""
    if at is None:
        return None
    delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(tries - 1, 16))
    return (datetime.fromisoformat(at) + timedelta(seconds=delay)).isoformat()


def _retry(definitions: Definitions, s: Session, event: Retry, effects: list[Effect]) -> None:
    if s.status != INCIDENT or s.node is None:
        raise Conflict(f"there is no incident to retry (the session is {s.status})", s.node)
    if event.node is not None and resolve_node(definitions, s, event.node) != s.node:
        raise Conflict(f"the incident is at {s.node!r}, not at {event.node!r}", s.node)
    journey, _frame = _current(definitions, s)
    node = journey.nodes[_local(s)]
    qualified = s.node
    inputs = {k: _value(s, node, v, f"input {k!r}") for k, v in node.input.items()}
    # The same visit, so the same idempotency key: the back office never acts twice.
    key = f"{s.id}:{qualified}:{s.visits.get(qualified, 1)}"
    effects.append(
        RunAction(qualified, node.action or "", inputs, True, node.retries, node.timeout, key)
    )
    s.status = RUNNING


def _hand_off(s: Session, event: HandOff, effects: list[Effect]) -> None:
    if s.status != INCIDENT or s.node is None:
        raise Conflict(f"there is no incident to hand off (the session is {s.status})", s.node)
    incident = s.incident or {}
    reason = event.reason or f"{incident.get('action')}: {incident.get('message')}"
    s.handoff = {"queue": event.queue, "reason": reason, "node": s.node}
    _finish(s, "escalated", effects)


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
    node = journey.nodes.get(_local(s)) if s.node else None
    return node.survey if node else ("ces", "nps")


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


def _choose_next(node: Node, value: Any) -> str | None:
    for option in node.options:
        if option.value == value and option.next:
            return option.next
    return node.next


def _complete(s: Session, node: Node) -> None:
    """A node is done: its `set` applies (after its field or output is stored)."""
    for name, value in node.set.items():
        s.context[name] = _value(s, node, value, f"set {name!r}")


def _value(s: Session, node: Node, value: Any, where: str) -> Any:
    if not is_expression(value):
        return literal(value)
    try:
        expression = compile_expression(value[1:])
        return expression.evaluate(_scope(s, expression))
    except EvaluationError as err:
        raise SessionError(f"node {node.id!r}, {where}: {err}", s.node) from None


def _scope(s: Session, expression: Expression) -> Mapping[str, Any]:
    """The names an expression reads: the context, and the read-only ``identity`` (who the
    customer is proven to be) when it reads it."""
    if "identity" not in expression.names:
        return s.context
    return {**s.context, "identity": scope_value(s.role, s.identity)}


def _go(s: Session, node_id: str | None) -> None:
    if node_id is None:  # the validator (J005) refuses journeys where this can happen
        raise SessionError(f"node {s.node!r} has nowhere to go", s.node)
    _enter(s, node_id)
    s.status = "moving"


def _text(s: Session, node: Node, text: Text | None) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        text = text.get(s.locale or "", next(iter(text.values()), ""))
    scope = s.context
    if "identity" in text:  # the engine's read-only name, given only to the texts reading it
        scope = {**s.context, "identity": scope_value(s.role, s.identity)}
    try:
        return render(text, scope)
    except EvaluationError as err:
        raise SessionError(
            f"node {node.id!r}: a placeholder of its text failed: {err}", s.node
        ) from None


def _advance(
    definitions: Definitions, s: Session, effects: list[Effect], policy: Policy | None = None
) -> None:
    """Walk through non-interactive nodes until the session must wait or has ended."""
    for _ in range(MAX_STEPS):
        if s.status != "moving":
            return
        journey, _frame = _current(definitions, s)
        local = _local(s)
        node = journey.nodes[local]
        qualified = s.node or local
        if (
            node.kind == "ask"
            and node.field
            and s.context.get(node.field) is not None
            and not node.confirm
        ):
            # Never ask twice: the answer is known. The step still completes.
            _complete(s, node)
            _go(s, node.next)
            continue
        s.path.append(qualified)
        s.visits[qualified] = s.visits.get(qualified, 0) + 1
        if node.kind in ("ask", "choose"):
            s.status = WAITING
            return
        text = _text(s, node, node.say)
        if text:  # what a non-interactive node says is shown with the next step
            s.messages.append(text)
        if node.kind == "say":
            _complete(s, node)
            _go(s, node.next)
        elif node.kind == "decide":
            _go(s, _decide(s, node))
        elif node.kind == "action":
            inputs = {k: _value(s, node, v, f"input {k!r}") for k, v in node.input.items()}
            _authorise(s, node, qualified, inputs, policy, effects)
            if s.status != "moving":  # waiting for the customer's totals, or escalated
                return
        elif node.kind == "journey":
            sub = definitions[node.journey or ""]
            for name, value in node.input.items():
                s.context[name] = _value(s, node, value, f"input {name!r}")
            for name, schema in sub.inputs.items():
                if name not in s.context and isinstance(schema, Mapping) and "default" in schema:
                    s.context[name] = copy_data(schema["default"])
            s.stack.append(Frame(sub.id, qualified + "/", qualified))
            _enter(s, sub.start)
            s.status = "moving"
        elif node.kind == "handoff":
            s.handoff = {"queue": node.queue, "reason": node.reason, "node": qualified}
            _finish(s, "escalated", effects)
            return
        elif node.kind == "end":
            _complete(s, node)
            for i, call in enumerate(node.after, 1):  # a sub-journey's `after` runs at its end
                inputs = {
                    k: _value(s, node, v, f"after action {i} input {k!r}")
                    for k, v in call.input.items()
                }
                effects.append(
                    RunAfter(call.action, inputs, f"{s.id}:{qualified}:after{i}", call.retries)
                )
            if len(s.stack) > 1:
                _return(definitions, s)
                continue
            _finish(s, node.outcome or "resolved", effects, survey=bool(node.survey))
            return
    raise SessionError(
        f"the session passed {MAX_STEPS} nodes without waiting for anyone: a loop with no "
        "question in it?",
        s.node,
    )


def _authorise(
    s: Session,
    node: Node,
    qualified: str,
    inputs: Mapping[str, Any],
    policy: Policy | None,
    effects: list[Effect],
    customer_totals: Mapping[str, float] | None = None,
) -> None:
    """Whether the role performing the step may run the action with these inputs, for this
    call and this session's totals, then (``customer_totals`` given by ``Reserved``) for the
    customer's totals. Allowed: the action runs. A total per customer not yet known: a
    ``Reserve`` is asked for and the session is ``authorising``. Denied: see :func:`_denied`."""
    role = s.role or default_role(s.channel)
    action = node.action or ""
    breach, applied = decide(policy, role, action, inputs, s.totals.get(action))
    if breach is not None:
        _denied(s, node, qualified, breach, role, effects)
        return
    breach, claimed = claims(policy, role, action, inputs)
    # Whose totals: the customer the action names (a voucher's customer_id), else the session's.
    customer = (
        _text_or_none(inputs.get("customer_id"))
        or s.customer_id
        or _text_or_none(s.context.get("customer_id"))
    )
    if breach is None and claimed and policy is not None:
        if customer is None:
            breach = unknown_customer(policy, role, claimed, action)
        elif customer_totals is None:
            key = f"{s.id}:{qualified}:{s.visits[qualified]}"
            effects.append(Reserve(qualified, action, role, customer, s.id, key, tuple(claimed)))
            s.status = AUTHORISING
            return
        else:
            breach, more = customer_applied(
                policy, role, action, claimed, customer_totals, customer
            )
            applied += more
    if breach is not None:
        _denied(s, node, qualified, breach, role, effects)
        return
    _granted(s, qualified, action, inputs, applied, policy, role)
    key = f"{s.id}:{qualified}:{s.visits[qualified]}"
    effects.append(RunAction(qualified, action, inputs, node.wait, node.retries, node.timeout, key))
    if node.wait:
        s.status = RUNNING
        return
    _complete(s, node)
    _go(s, node.next)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _granted(
    s: Session,
    qualified: str,
    action: str,
    inputs: Mapping[str, Any],
    applied: list[Applied],
    policy: Policy | None,
    role: str,
) -> None:
    """Record who granted what (each rule that applied) and add the grant to the session's
    totals of the parameters some role bounds per session."""
    for rule in applied:
        grant = {
            "node": qualified,
            "action": action,
            "param": rule.param,
            "value": copy_data(inputs[rule.param]),
            "limit": rule.bound,
            "rule": rule.rule,
            "role": role,
            "actor": s.actor,
        }
        if rule.total is not None:
            grant["total"] = rule.total
        if rule.rule == "per_customer":
            grant["customer"] = rule.customer
            grant["over"] = rule.limit.over
        s.grants.append(grant)
    for param in policy.counted_per_session(action) if policy else ():
        value = inputs.get(param)
        if isinstance(value, int | float) and not isinstance(value, bool):
            sums = s.totals.setdefault(action, {})
            sums[param] = added(sums.get(param, 0), value)


def _denied(
    s: Session, node: Node, qualified: str, breach: Breach, role: str, effects: list[Effect]
) -> None:
    """The action does not run, ``last_denial`` says why, and the session goes to
    ``on_denied`` or, without one, is handed to the supervisor queue."""
    denial = {
        "node": qualified,
        "action": node.action,
        "param": breach.limit.param,
        "value": copy_data(breach.value),
        "limit": breach.bound,
        "rule": breach.rule,
        "role": role,
    }
    if breach.total is not None:
        denial["total"] = breach.total
    if breach.rule == "per_customer":
        denial["customer"] = breach.customer
        denial["over"] = breach.limit.over
    s.context["last_denial"] = denial
    if node.on_denied:
        _go(s, node.on_denied)
        return
    s.handoff = {"queue": SUPERVISOR_QUEUE, "reason": breach.reason, "node": qualified}
    _finish(s, "escalated", effects)


def _reserved(
    definitions: Definitions,
    s: Session,
    event: Reserved,
    policy: Policy | None,
    effects: list[Effect],
) -> None:
    """The customer's totals came: the action node's decision is taken again, now whole
    (the same inputs and session totals give the same answer for one call and the session)."""
    if s.status != AUTHORISING or s.node is None:
        raise Conflict(f"no action waits for its authority limits (the session is {s.status})")
    if resolve_node(definitions, s, event.node) != s.node:
        raise Conflict(f"the action waiting for its limits is at {s.node!r}, not {event.node!r}")
    journey, _frame = _current(definitions, s)
    node = journey.nodes[_local(s)]
    inputs = {k: _value(s, node, v, f"input {k!r}") for k, v in node.input.items()}
    s.status = "moving"
    _authorise(s, node, s.node, inputs, policy, effects, dict(event.totals))


def _decide(s: Session, node: Node) -> str | None:
    for i, branch in enumerate(node.branches, 1):
        try:
            condition = compile_expression(branch.condition)
            if condition.evaluate(_scope(s, condition)):
                return branch.next
        except EvaluationError as err:
            raise SessionError(f"node {node.id!r}, branch {i}: {err}", s.node) from None
    return node.otherwise


def _return(definitions: Definitions, s: Session) -> None:
    """A sub-journey reached an end: back to the calling node's `next`."""
    frame = s.stack.pop()
    caller_local = (frame.caller or "")[len(s.stack[-1].prefix) :]
    journey = definitions[s.stack[-1].journey]
    caller = journey.nodes[caller_local]
    s.node = frame.caller
    _complete(s, caller)
    _go(s, caller.next)


def _finish(s: Session, outcome: str, effects: list[Effect], survey: bool = False) -> None:
    s.outcome = outcome
    s.status = SURVEY if survey else ENDED
    if not survey:
        s.node = None
        effects.append(Ended(outcome))


# ----------------------------------------------------------------------- what to show


def current_step(definitions: Definitions, s: Session) -> dict[str, Any] | None:
    """What to show now: the waiting node's text, its field and schema, its options."""
    if s.status == SURVEY:
        journey = definitions[s.stack[-1].journey] if s.stack else definitions[s.journey]
        node = journey.nodes.get(_local(s)) if s.node else None
        return {
            "node": s.node,
            "kind": "survey",
            "messages": list(s.messages),
            "surveys": list(node.survey) if node else ["ces", "nps"],
        }
    if s.status == INCIDENT and s.node is not None:
        incident = dict(s.incident or {})
        return {
            "node": s.node,
            "kind": "incident",
            "messages": list(s.messages),
            "action": incident.get("action"),
            "message": incident.get("message"),
            "since": incident.get("since"),
            "tries": incident.get("tries"),
            "retry_at": incident.get("retry_at"),
        }
    if s.status not in (WAITING, RUNNING) or s.node is None:
        return None
    journey, _frame = _current(definitions, s)
    node = journey.nodes[_local(s)]
    step_view: dict[str, Any] = {
        "node": s.node,
        "kind": node.kind,
        "text": _text(s, node, node.say) if s.status == WAITING else None,
        "messages": list(s.messages),
        "roles": list(node.roles),
    }
    if node.field:
        step_view["field"] = node.field
    if node.kind == "ask":
        step_view["schema"] = dict(node.schema or {"type": "string"})
        if node.field and s.context.get(node.field) is not None:
            step_view["known"] = s.context[node.field]  # confirm: the value on record
    if node.kind == "choose":
        step_view["options"] = [
            {
                "value": o.value,
                "label": _text(s, node, o.label) if o.label is not None else str(o.value),
            }
            for o in node.options
        ]
    if s.status == RUNNING:
        step_view["action"] = node.action
    return step_view
