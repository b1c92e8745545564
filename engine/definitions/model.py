"""The definitions the engine works on: frozen, format-neutral, no I/O.

YAML becomes these objects in ``engine.definitions.build`` (the only module that knows the YAML keys);
everything after that, the checks and later the runtime, reads only these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, NamedTuple

#: A text shown to people: plain, or one entry per locale.
Text = str | Mapping[str, str]

NODE_KINDS = ("say", "ask", "choose", "decide", "action", "journey", "handoff", "end")
TERMINAL_KINDS = frozenset({"end", "handoff"})
#: Kinds that must go on with a node-level ``next`` (a choose may use its options instead).
NEEDS_NEXT = frozenset({"say", "ask", "action", "journey"})
OUTCOMES = ("resolved", "unresolved", "escalated", "callback", "abandoned")
ROLES = ("agent", "customer", "supervisor")
DEFAULT_ROLES = ("agent", "customer")
SURVEYS = ("ces", "nps")


class Loc(NamedTuple):
    """Where a construct stands in its file (1-based line and column).

    A named tuple rather than a dataclass: there is one per value of a journey, and a tuple
    is several times cheaper to make.
    """

    file: str
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class Option:
    value: Any
    label: Text | None
    next: str | None
    loc: Loc
    next_loc: Loc | None = None


@dataclass(frozen=True)
class Branch:
    condition: str
    next: str | None
    loc: Loc
    condition_loc: Loc
    next_loc: Loc | None = None


@dataclass(frozen=True)
class ActionCall:
    """A back-office action run after an ``end`` (post-contact automation)."""

    action: str
    input: Mapping[str, Any]
    loc: Loc
    action_loc: Loc
    input_locs: Mapping[str, Loc]
    retries: int = 0  # tries again after a technical failure, as an action node's


@dataclass(frozen=True)
class Edge:
    """A way out of a node: where to, and what takes it (``next``, an option, a branch...)."""

    source: str
    target: str
    via: (
        str  # "next", "option 'voucher'", "branch 1", "else", "on_error", "on_denied", "on_failure"
    )
    loc: Loc


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    loc: Loc
    #: Where each key of the node is written, so findings point at the exact line.
    key_locs: Mapping[str, Loc] = _field(default_factory=dict)
    say: Text | None = None
    roles: tuple[str, ...] = DEFAULT_ROLES
    set: Mapping[str, Any] = _field(default_factory=dict)
    set_locs: Mapping[str, Loc] = _field(default_factory=dict)
    next: str | None = None
    # ask / choose
    field: str | None = None
    schema: Mapping[str, Any] | None = None
    confirm: bool = False
    options: tuple[Option, ...] = ()
    # decide
    branches: tuple[Branch, ...] = ()
    otherwise: str | None = None  # YAML key: else
    # action
    action: str | None = None
    input: Mapping[str, Any] = _field(default_factory=dict)
    input_locs: Mapping[str, Loc] = _field(default_factory=dict)
    output: str | None = None
    wait: bool = True
    retries: int = 0
    timeout: float | None = None
    on_error: str | None = None
    on_denied: str | None = None  # where to go when the policy refuses the action to the role
    on_failure: str | None = None  # where to go on a technical failure (else: an incident)
    # journey
    journey: str | None = None
    # handoff
    queue: str | None = None
    reason: str | None = None
    # end
    outcome: str | None = None
    survey: tuple[str, ...] = ()
    after: tuple[ActionCall, ...] = ()

    def at(self, key: str) -> Loc:
        """The location of one of the node's keys, or of the node itself."""
        return self.key_locs.get(key, self.loc)

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

    def edges(self) -> list[Edge]:
        """Every way out of the node, in the order an expert reads them."""
        out: list[Edge] = []
        for i, branch in enumerate(self.branches, 1):
            if branch.next:
                out.append(Edge(self.id, branch.next, f"branch {i}", branch.next_loc or branch.loc))
        if self.otherwise:
            out.append(Edge(self.id, self.otherwise, "else", self.at("else")))
        for option in self.options:
            target = option.next or self.next
            if target:
                loc = option.next_loc if option.next else self.at("next")
                out.append(Edge(self.id, target, f"option {option.value!r}", loc or option.loc))
        if self.next and not self.options:
            out.append(Edge(self.id, self.next, "next", self.at("next")))
        if self.on_error:
            out.append(Edge(self.id, self.on_error, "on_error", self.at("on_error")))
        if self.on_denied:
            out.append(Edge(self.id, self.on_denied, "on_denied", self.at("on_denied")))
        if self.on_failure:
            out.append(Edge(self.id, self.on_failure, "on_failure", self.at("on_failure")))
        return out


@dataclass(frozen=True)
class Journey:
    id: str
    version: int
    title: str
    start: str
    nodes: Mapping[str, Node]
    loc: Loc
    key_locs: Mapping[str, Loc] = _field(default_factory=dict)
    motives: tuple[str, ...] = ()
    motive_locs: tuple[Loc, ...] = ()
    channels: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    inputs: Mapping[str, Mapping[str, Any]] = _field(default_factory=dict)

    def at(self, key: str) -> Loc:
        return self.key_locs.get(key, self.loc)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        return tuple(
            n for n, s in self.inputs.items() if not isinstance(s, Mapping) or "default" not in s
        )


@dataclass(frozen=True)
class Motive:
    id: str
    title: Text
    category: str
    journey: str
    loc: Loc
    journey_loc: Loc
    keywords: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trigger:
    """An event of the back office that starts an outbound session (``motives.yaml``)."""

    event: str
    journey: str
    channel: str | None
    loc: Loc
    key_locs: Mapping[str, Loc] = _field(default_factory=dict)
    motive: str | None = None
    #: Input name -> ``=expression`` on the event's data, or a literal.
    inputs: Mapping[str, Any] = _field(default_factory=dict)
    input_locs: Mapping[str, Loc] = _field(default_factory=dict)  # where each value is
    input_names: Mapping[str, Loc] = _field(default_factory=dict)  # where each name is
    when: str | None = None  # a condition on the event's data

    def at(self, key: str) -> Loc:
        return self.key_locs.get(key, self.loc)


@dataclass(frozen=True)
class Scenario:
    name: str
    loc: Loc
    inputs: Mapping[str, Any] = _field(default_factory=dict)
    actions: Mapping[str, Any] = _field(default_factory=dict)
    action_locs: Mapping[str, Loc] = _field(default_factory=dict)
    answers: Mapping[str, Any] = _field(default_factory=dict)
    answer_locs: Mapping[str, Loc] = _field(default_factory=dict)
    outcome: str | None = None
    outcome_loc: Loc | None = None
    status: str | None = None  # "ended", "waiting" or "incident"
    node: str | None = None  # where it waits or is held (with status waiting or incident)
    locale: str | None = None
    channel: str | None = None
    role: str | None = None  # who performs the steps (default: from the channel)
    path: tuple[str, ...] | None = None
    path_locs: tuple[Loc, ...] = ()
    context: Mapping[str, Any] = _field(default_factory=dict)
    survey: Mapping[str, Any] = _field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioFile:
    journey: str
    journey_loc: Loc
    scenarios: tuple[Scenario, ...]
    loc: Loc


@dataclass(frozen=True)
class Limit:
    """How far one parameter of one action may go when one role decides (``policies.yaml``)."""

    role: str
    action: str
    param: str
    loc: Loc  # where the parameter is named
    max: float | None = None
    min: float | None = None
    allowed: tuple[Any, ...] | None = None  # YAML key: in
    key_locs: Mapping[str, Loc] = _field(default_factory=dict)
    #: The most the role may grant in all within one session (the calls added up).
    per_session: float | None = None
    #: The most the role may bring one customer's total to over the last ``over_s`` seconds,
    #: all sessions and roles counted (YAML: ``per_customer: {max, over}``).
    per_customer: float | None = None
    over_s: int | None = None
    over: str | None = None  # the period as written (30d)

    def at(self, key: str) -> Loc:
        return self.key_locs.get(key, self.loc)

    @property
    def rule(self) -> str:
        """The rule that says how far the role may go: its max, else its min, else `in`."""
        return "max" if self.max is not None else "min" if self.min is not None else "in"

    @property
    def bound(self) -> Any:
        """The value of that rule (a number, or the list of allowed values)."""
        if self.max is not None:
            return self.max
        if self.min is not None:
            return self.min
        return list(self.allowed or ())


@dataclass(frozen=True)
class Policy:
    """The authority limits of a library: per role, per action, per parameter.

    An action or a parameter that a role does not list is unlimited for that role.
    """

    limits: tuple[Limit, ...] = ()
    #: (role, action) -> where the action is named under the role, limits or not.
    actions: Mapping[tuple[str, str], Loc] = _field(default_factory=dict)

    def limits_for(self, role: str, action: str) -> tuple[Limit, ...]:
        return tuple(x for x in self.limits if x.role == role and x.action == action)

    def counted_per_session(self, action: str) -> tuple[str, ...]:
        """The parameters of ``action`` that some role bounds per session: every grant of
        them is added to the session's totals, whichever role grants it."""
        return tuple(
            dict.fromkeys(
                x.param for x in self.limits if x.action == action and x.per_session is not None
            )
        )

    def counted_per_customer(self, action: str) -> tuple[str, ...]:
        """The parameters of ``action`` that some role bounds per customer: every grant of
        them is counted in the customer's totals, whichever role grants it."""
        return tuple(
            dict.fromkeys(
                x.param for x in self.limits if x.action == action and x.per_customer is not None
            )
        )
