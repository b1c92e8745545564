"""Authority limits at run time: may this role decide this action with these inputs?

Pure functions on the :class:`~engine.model.Policy` of ``policies.yaml``: the runtime asks
before it runs an action node, and either runs it (recording the limits that applied: who
granted what) or does not (the first limit exceeded says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.model import Limit, Policy

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
    rule: str  # "max", "min" or "in"
    bound: Any  # the number, or the list of allowed values

    @property
    def reason(self) -> str:
        """Why the role may not decide it, in words a supervisor reads in the queue."""
        lim = self.limit
        what = f"{lim.action} {lim.param} {_shown(self.value)}"
        if self.rule == "in":
            allowed = ", ".join(_shown(v) for v in self.bound)
            return f"{what} is not one of the values the {lim.role} may decide ({allowed})"
        if not _is_number(self.value):
            word = "limit" if self.rule == "max" else "minimum"
            return (
                f"{what} is not a number, so it cannot be checked against the {lim.role}'s "
                f"{word} of {_shown(self.bound)}"
            )
        if self.rule == "min":
            return f"{what} is below the {lim.role}'s minimum of {_shown(self.bound)}"
        return f"{what} is above the {lim.role}'s limit of {_shown(self.bound)}"


def decide(
    policy: Policy | None, role: str, action: str, inputs: Mapping[str, Any]
) -> tuple[Breach | None, list[Limit]]:
    """The first limit the inputs exceed (None when allowed) and the limits that applied.

    A parameter that is not given is not decided, so not limited; one that is given must be a
    number within ``min``/``max`` and one of the values of ``in`` (a value that cannot be
    checked, such as a text where a number is limited, is refused).
    """
    applied: list[Limit] = []
    if policy is None:
        return None, applied
    for limit in policy.limits_for(role, action):
        if limit.param not in inputs or (limit.max, limit.min, limit.allowed) == (None,) * 3:
            continue  # not decided here, or no rule (J002): nothing to check nor to record
        value = inputs[limit.param]
        breach = _breach(limit, value)
        if breach is not None:
            return breach, applied
        applied.append(limit)
    return None, applied


def _breach(limit: Limit, value: Any) -> Breach | None:
    if limit.max is not None and not (_is_number(value) and value <= limit.max):
        return Breach(limit, value, "max", limit.max)
    if limit.min is not None and not (_is_number(value) and value >= limit.min):
        return Breach(limit, value, "min", limit.min)
    if limit.allowed is not None and not any(_same(value, v) for v in limit.allowed):
        return Breach(limit, value, "in", list(limit.allowed))
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal, without taking true for 1 (YAML and JSON keep them apart)."""
    return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)
