"""Authority limits at run time: may this role decide this action with these inputs?

Pure functions on the :class:`~engine.definitions.model.Policy` of ``policies.yaml``: the runtime asks
before it runs an action node (:func:`authorise`) and applies the :class:`Decision` it gets:
it runs the action (recording the limits that applied: who granted what) or does not (the
first limit exceeded says why).

Three scopes: one call (``max``, ``min``, ``in``), the session (``per_session``: the calls of
this session added up, known from the session itself) and the customer over a period
(``per_customer``: all sessions counted, known only to the store). For the last, the runtime
asks the store for the customer's totals (:class:`Claim`), which it reads and records under a
lock so that two sessions of one customer cannot both take the same room; both decide with
:func:`customer_breach`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.definitions.model import Limit, Policy

SELFCARE = "selfcare"
SUPERVISOR_QUEUE = "supervisor"


def default_role(channel: str | None) -> str:
    """Who performs the steps when nobody says: the customer in self-care, else an agent."""
    return "customer" if channel == SELFCARE else "agent"


@dataclass(frozen=True)
class Breach:
    """A limit exceeded: which, by what value, and by which of its rules."""

    limit: Limit
    value: Any
    rule: str  # "max", "min", "in", "per_session" or "per_customer"
    bound: Any  # the number, or the list of allowed values
    #: For a total (per_session, per_customer): what the total would have become.
    total: float | None = None
    customer: str | None = None  # per_customer: whose total

    @property
    def reason(self) -> str:
        """Why the role may not decide it, in words a supervisor reads in the queue."""
        lim = self.limit
        what = f"{lim.action} {lim.param} {_shown(self.value)}"
        if self.rule == "in":
            allowed = ", ".join(_shown(v) for v in self.bound)
            return f"{what} is not one of the values the {lim.role} may decide ({allowed})"
        if not _is_number(self.value):
            word = {"max": "limit", "min": "minimum"}.get(self.rule, "limit")
            return (
                f"{what} is not a number, so it cannot be checked against the {lim.role}'s "
                f"{word} of {_shown(self.bound)}{_per(self)}"
            )
        if self.rule == "min":
            return f"{what} is below the {lim.role}'s minimum of {_shown(self.bound)}"
        if self.rule == "per_session":
            return (
                f"{what} would bring this session's total to {_shown(self.total)}, above the "
                f"{lim.role}'s limit of {_shown(self.bound)}{_per(self)}"
            )
        if self.rule == "per_customer" and self.customer is None:
            return (
                f"{what} is limited per customer, but the session does not know its customer, "
                f"so the {lim.role}'s limit of {_shown(self.bound)}{_per(self)} cannot be checked"
            )
        if self.rule == "per_customer":
            return (
                f"{what} would bring the total of customer {self.customer} over the last "
                f"{period_words(lim.over_s)} to {_shown(self.total)}, above the {lim.role}'s "
                f"limit of {_shown(self.bound)}{_per(self)}"
            )
        return f"{what} is above the {lim.role}'s limit of {_shown(self.bound)}"


def _per(breach: Breach) -> str:
    if breach.rule == "per_session":
        return " per session"
    if breach.rule == "per_customer":
        return f" per customer over {period_words(breach.limit.over_s)}"
    return ""


def period_words(seconds: int | None) -> str:
    """30 days, 12 hours, 90 minutes: a period as a process expert says it."""
    if not seconds:
        return "no time"
    for size, word in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {word}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"  # pragma: no cover - every whole number of seconds matches


@dataclass(frozen=True)
class Applied:
    """A rule a granted decision was within: one entry of the session's grants."""

    limit: Limit
    rule: str  # as Breach.rule
    bound: Any
    total: float | None = None  # per_session, per_customer: the total with this grant
    customer: str | None = None

    @property
    def param(self) -> str:
        return self.limit.param


@dataclass(frozen=True)
class Claim:
    """One parameter of an action to count in a customer's totals. ``max`` and ``over_s``
    when the deciding role is bounded per customer (checked, then counted); None when it is
    not (counted only: another role's limit counts what this one grants)."""

    param: str
    amount: float
    max: float | None = None
    over_s: int | None = None


def decide(
    policy: Policy | None,
    role: str,
    action: str,
    inputs: Mapping[str, Any],
    session_totals: Mapping[str, float] | None = None,
) -> tuple[Breach | None, list[Applied]]:
    """The first limit the inputs exceed (None when allowed) and the rules that applied, for
    one call and for this session's totals (``session_totals``: param -> what the session
    was granted of this action so far). The totals per customer are decided afterwards, by
    :func:`customer_breach`, on the totals the store holds.

    A parameter that is not given is not decided, so not limited; one that is given must be a
    number within ``min``/``max``/``per_session`` and one of the values of ``in`` (a value
    that cannot be checked, such as a text where a number is limited, is refused).
    """
    applied: list[Applied] = []
    if policy is None:
        return None, applied
    totals = session_totals or {}
    for limit in policy.limits_for(role, action):
        if limit.param not in inputs:
            continue  # not decided here: nothing to check nor to record
        value = inputs[limit.param]
        breach = _breach(limit, value)
        if breach is not None:
            return breach, applied
        if (limit.max, limit.min, limit.allowed) != (None, None, None):
            applied.append(Applied(limit, limit.rule, limit.bound))
        if limit.per_session is not None:
            if not _is_number(value):
                return Breach(limit, value, "per_session", limit.per_session), applied
            total = added(totals.get(limit.param, 0), value)
            if total > limit.per_session:
                return Breach(limit, value, "per_session", limit.per_session, total), applied
            applied.append(Applied(limit, "per_session", limit.per_session, total))
    return None, applied


def claims(
    policy: Policy | None, role: str, action: str, inputs: Mapping[str, Any]
) -> tuple[Breach | None, list[Claim]]:
    """What a grant of ``action`` adds to its customer's totals: the parameters some role
    bounds per customer, checked against this role's limit when it has one. A value that is
    not a number where this role is bounded is a breach (it cannot be counted)."""
    if policy is None:
        return None, []
    own = {x.param: x for x in policy.limits_for(role, action) if x.per_customer is not None}
    found = []
    for param in policy.counted_per_customer(action):
        if param not in inputs:
            continue
        value, limit = inputs[param], own.get(param)
        if not _is_number(value):
            if limit is not None:
                return Breach(limit, value, "per_customer", limit.per_customer), []
            continue
        if limit is None:
            found.append(Claim(param, value))
        else:
            found.append(Claim(param, value, limit.per_customer, limit.over_s))
    return None, found


@dataclass(frozen=True)
class Granted:
    """Within every limit: the action runs. ``applied``: the rules it was within (the
    session's grants)."""

    applied: tuple[Applied, ...] = ()


@dataclass(frozen=True)
class Denied:
    """A limit exceeded: the action does not run (the breach says which and why)."""

    breach: Breach


@dataclass(frozen=True)
class AskTotals:
    """Limits per customer apply: the decision needs the customer's totals, which only the
    store knows (it reads them, and records the claims, under its lock)."""

    customer: str
    claims: tuple[Claim, ...]


Decision = Granted | Denied | AskTotals


def authorise(
    policy: Policy | None,
    role: str,
    action: str,
    inputs: Mapping[str, Any],
    session_totals: Mapping[str, float] | None,
    customer: str | None,
    customer_totals: Mapping[str, float] | None = None,
) -> Decision:
    """Whether ``role`` may run ``action`` with ``inputs``: for this call and this session's
    totals (:func:`decide`), then for the totals of ``customer`` (the one whose totals count).
    Those are asked for (:class:`AskTotals`) until ``customer_totals`` gives them. The caller
    applies the decision; nothing here changes a session."""
    breach, applied = decide(policy, role, action, inputs, session_totals)
    if breach is not None:
        return Denied(breach)
    breach, claimed = claims(policy, role, action, inputs)
    if breach is None and claimed and policy is not None:
        if customer is None:
            breach = unknown_customer(policy, role, claimed, action)
        elif customer_totals is None:
            return AskTotals(customer, tuple(claimed))
        else:
            breach, more = customer_applied(
                policy, role, action, claimed, customer_totals, customer
            )
            applied += more
    if breach is not None:
        return Denied(breach)
    return Granted(tuple(applied)) if applied else _WITHIN_NO_LIMIT


_WITHIN_NO_LIMIT = Granted()  # the common case, built once


def customer_breach(claimed: Sequence[Claim], totals: Mapping[str, float]) -> Claim | None:
    """The first claim that would bring the customer's total over its period (``totals``:
    param -> what the customer was granted over that claim's period) above its max. Pure: the
    store runs it under its lock, the runtime again on the totals the store returned."""
    for claim in claimed:
        if claim.max is not None and added(totals.get(claim.param, 0), claim.amount) > claim.max:
            return claim
    return None


def customer_applied(
    policy: Policy,
    role: str,
    action: str,
    claimed: Sequence[Claim],
    totals: Mapping[str, float],
    customer: str | None,
) -> tuple[Breach | None, list[Applied]]:
    """The per-customer rules of this role, decided on the customer's ``totals``: the breach
    (the first claim over its max) or the rules that applied."""
    own = {x.param: x for x in policy.limits_for(role, action) if x.per_customer is not None}
    over = customer_breach(claimed, totals)
    applied = []
    for claim in claimed:
        limit = own.get(claim.param)
        if limit is None or claim.max is None:
            continue
        total = added(totals.get(claim.param, 0), claim.amount)
        if claim is over:
            return Breach(limit, claim.amount, "per_customer", claim.max, total, customer), []
        applied.append(Applied(limit, "per_customer", claim.max, total, customer))
    return None, applied


def unknown_customer(
    policy: Policy, role: str, claimed: Sequence[Claim], action: str
) -> Breach | None:
    """A claim this role is bounded for, in a session that does not know its customer: it
    cannot be checked, so it is refused (the per-call rule of failing closed)."""
    own = {x.param: x for x in policy.limits_for(role, action) if x.per_customer is not None}
    for claim in claimed:
        if claim.max is not None:
            return Breach(own[claim.param], claim.amount, "per_customer", claim.max)
    return None


def added(total: float, amount: float) -> float:
    """A total plus an amount, rounded to 9 decimals: 10.1 + 19.9 is 30, within a limit of 30
    (binary floats would make it 30.000000000000004, above)."""
    return round(total + amount, 9)


def _breach(limit: Limit, value: Any) -> Breach | None:
    if limit.max is not None and not (_is_number(value) and value <= limit.max):
        return Breach(limit, value, "max", limit.max)
    if limit.min is not None and not (_is_number(value) and value >= limit.min):
        return Breach(limit, value, "min", limit.min)
    if limit.allowed is not None and not any(_same(value, v) for v in limit.allowed):
        return Breach(limit, value, "in", list(limit.allowed))
    return None


def _is_number(value: Any) -> bool:
    """A number a limit can compare: not a boolean, not NaN nor an infinity (NaN compares
    false with everything, so it would pass any total)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    """Equal, without taking true for 1 (YAML and JSON keep them apart)."""
    return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)
