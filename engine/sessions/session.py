"""A session's running state: a plain record that refers to nodes by qualified name.

A node inside a sub-journey is named by the path of its callers (``identify/ask_id``); the
record holds the call stack (:class:`Frame`) that says which journey each prefix is. Nothing
here runs a step: :mod:`engine.sessions.runtime` does, through the handlers of :mod:`engine.sessions.steps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.definitions.model import Journey
from engine.errors import Conflict
from engine.sessions import records


class SessionStatus(StrEnum):
    """Where a session stands. A ``str``: records, JSON and database columns hold the value."""

    #: Within one step only, never saved: passing the nodes that wait for nobody.
    MOVING = "moving"
    WAITING = "waiting"  # for an answer at `node`
    RUNNING = "running"  # for the result of the action at `node`
    #: Within one step only, never saved: the action at `node` waits for the customer's totals
    #: (``Reserve``), which the service asks the store for at once (``Reserved``).
    AUTHORISING = "authorising"
    #: The action at `node` failed technically after its retries: the session holds there, an
    #: incident, retried by itself (``incident.retry_at``) or by an agent, or handed off.
    INCIDENT = "incident"
    SURVEY = "survey"  # the end is reached (outcome final); the survey is offered
    ENDED = "ended"


MOVING = SessionStatus.MOVING
WAITING = SessionStatus.WAITING
RUNNING = SessionStatus.RUNNING
AUTHORISING = SessionStatus.AUTHORISING
INCIDENT = SessionStatus.INCIDENT
SURVEY = SessionStatus.SURVEY
ENDED = SessionStatus.ENDED

_STATUSES = {str(status): status for status in SessionStatus}  # 10x faster than the call

Definitions = Mapping[str, Journey]  # journey id -> the pinned definition


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
    status: SessionStatus = WAITING
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
    #: Who the customer is proven to be ({customer_id, by}, see engine.sessions.identity); None until
    #: proven. In self-care no action acts on a customer's account before.
    identity: dict[str, Any] | None = None
    #: What this session granted so far, action -> param -> sum, for the parameters a role
    #: bounds per session (``per_session``), whoever granted them.
    totals: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, copy: bool = True) -> dict[str, Any]:
        """Plain data, of the current format (engine/sessions/records.py); deep-copied unless the caller
        serializes it at once (``copy=False``)."""
        data = dict(self.__dict__)
        if copy:  # only the fields that hold dicts and lists (the scalars are kept as they are)
            for name, value in data.items():
                if isinstance(value, _NESTED):
                    data[name] = copy_data(value)
        data["status"] = str(self.status)  # a plain str, for any serializer
        data["stack"] = [dict(f.__dict__) for f in self.stack]
        data[records.FORMAT] = records.SESSION_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], copy: bool = True) -> Session:
        """A session from plain data of any format (upgraded first: engine/sessions/records.py), its
        fields read one by one; ``copy=False`` when the data was just parsed and is ours."""
        data = records.upgrade_session(data)
        records.check_session_fields(data)
        c = copy_data if copy else _same
        return cls(
            id=data["id"],
            journey=data["journey"],
            version=data["version"],
            definition=data["definition"],
            status=_STATUSES[data["status"]],
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
        values = dict(self.__dict__)
        for name, value in values.items():
            if isinstance(value, _NESTED):
                values[name] = copy_data(value)
        values["stack"] = [Frame(f.journey, f.prefix, f.caller) for f in self.stack]
        return Session(**values)


def copy_data(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars)."""
    # Scalars are kept without a call: most values are, and this runs twice a step in memory.
    if isinstance(value, dict):
        return {k: copy_data(v) if isinstance(v, _NESTED) else v for k, v in value.items()}
    if isinstance(value, list):
        return [copy_data(v) if isinstance(v, _NESTED) else v for v in value]
    return value


_NESTED = (dict, list)  # a tuple: ``dict | list`` would build a union at every call


def new_session(session_id: str, journey: Journey, definition: str, **details: Any) -> Session:
    """A session record before its Start event."""
    s = Session(id=session_id, journey=journey.id, version=journey.version, definition=definition)
    s.stack = [Frame(journey.id, "")]
    for key, value in details.items():
        setattr(s, key, value)
    if s.locale is None and journey.locales:
        s.locale = journey.locales[0]
    return s


# ------------------------------------------------------------------ where it stands


def current(definitions: Definitions, s: Session) -> tuple[Journey, Frame]:
    """The journey the session is in now (the top of its call stack), and that frame."""
    frame = s.stack[-1]
    return definitions[frame.journey], frame


def local(s: Session) -> str:
    """The node's id within the journey it is in (its qualified name without the prefix)."""
    return (s.node or "")[len(s.stack[-1].prefix) :]


def enter(s: Session, node_id: str) -> None:
    """Put the session at ``node_id`` of the journey it is in."""
    s.node = s.stack[-1].prefix + node_id


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


def _same(value: Any) -> Any:
    return value
