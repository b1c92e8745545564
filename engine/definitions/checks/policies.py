"""The authority limits of ``policies.yaml`` against the action catalogue.

J009: an action that is not in the catalogue, a parameter the action does not take, a ``max``,
``min``, ``per_session`` or ``per_customer`` on a parameter that is not a number, an allowed
value of the wrong type.
J002 (beyond the JSON Schema): a limit that sets no rule, a ``min`` above the ``max``.
W003 (with the journeys): an action on a loop that a role may decide up to a limit per call only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.definitions.checks.actions import _TYPE_WORDS, ActionLike, Catalogue, _type_ok
from engine.definitions.findings import Finding, did_you_mean, finding, one_of
from engine.definitions.model import Limit, Loc, Policy

#: The names the policy file may have, at the library's root.
POLICY_FILES = ("policies.yaml", "policies.yml")

_NUMBERS = ("number", "integer")
_RULES = ("max", "min", "in", "per_session", "per_customer")


def check_policy(policy: Policy, catalogue: Catalogue) -> list[Finding]:
    found = [
        finding(
            "J009",
            loc,
            f"role {role!r}: {action!r} is not a back-office action of the catalogue"
            f"{did_you_mean(action, catalogue)}",
        )
        for (role, action), loc in policy.actions.items()
        if action not in catalogue
    ]
    for limit in policy.limits:
        found += _limit_rules(limit)
        spec = catalogue.get(limit.action)
        if spec is not None:  # else reported once, at the action
            found += _limit_against_action(limit, spec)
    return found


def _limit_rules(limit: Limit) -> list[Finding]:
    """J002: a limit that sets no rule, or whose ``min`` is above its ``max``."""
    where = f"role {limit.role!r}, {limit.action} {limit.param!r}"
    found = []
    if not any(k in limit.key_locs for k in _RULES):
        found.append(
            finding(
                "J002",
                limit.loc,
                f"{where}: no limit is given; write max and/or min for a number, or in with "
                "the allowed values, or per_session / per_customer for a total (a parameter "
                "that is not listed is unlimited)",
            )
        )
    if limit.max is not None and limit.min is not None and limit.min > limit.max:
        found.append(
            finding(
                "J002",
                limit.at("min"),
                f"{where}: min {limit.min} is above max {limit.max}, so no value would be allowed",
            )
        )
    return found


def _limit_against_action(limit: Limit, spec: ActionLike) -> list[Finding]:
    """J009: the limited parameter is one the action takes, a number for a numeric rule, and
    each allowed value of its type."""
    declared = {p.name: p for p in spec.params}
    param = declared.get(limit.param)
    if param is None:
        return [
            finding(
                "J009",
                limit.loc,
                f"role {limit.role!r}: {limit.action} has no parameter {limit.param!r}"
                f"{did_you_mean(limit.param, declared)}; it takes {one_of(declared)}",
            )
        ]
    where = f"role {limit.role!r}, {limit.action} {limit.param!r}"
    kind = _TYPE_WORDS.get(param.type, param.type)
    found = [
        finding(
            "J009",
            limit.at(key),
            f"{where}: {key!r} needs a number, but {limit.param!r} of "
            f"{limit.action} is {kind}; list the allowed values with 'in' instead",
        )
        for key in ("max", "min", "per_session", "per_customer")
        if key in limit.key_locs and param.type not in _NUMBERS
    ]
    found += [
        finding(
            "J009",
            limit.at("in"),
            f"{where}: the allowed value {value!r} can never match: "
            f"{limit.param!r} of {limit.action} is {kind}",
        )
        for value in limit.allowed or ()
        if not _type_ok(value, param.type, param.nullable)
    ]
    return found


def per_call_only(policy: Policy) -> dict[str, Any]:
    """The limits with a ``max`` per call and no total (per_session, per_customer): what a
    loop in a journey multiplies. ``{"per_call": [[role, action, param, max], ...]}``."""
    return {
        "per_call": [
            [x.role, x.action, x.param, x.max]
            for x in policy.limits
            if x.max is not None and x.per_session is None and x.per_customer is None
        ]
    }


def check_looped_limits(
    journeys: Mapping[str, Mapping[str, Any]], policy: Mapping[str, Any] | None
) -> list[Finding]:
    """W003: an action node the journey comes back to after it succeeded, whose action a role
    may decide up to a limit per call only: the loop grants the limit again at every turn."""
    if not policy or policy.get("unreadable"):
        return []
    by_action: dict[str, list[list[Any]]] = {}
    for role, action, param, most in policy.get("per_call", []):
        by_action.setdefault(action, []).append([role, param, most])
    found = _looped_calls(journeys, by_action)
    for file, summary in journeys.items():
        for node_id, action, line, column, loop in summary.get("loops", []):
            limits = by_action.get(action)
            if not limits:
                continue
            which = "; ".join(
                f"{role}: {param} up to {_shown(most)} a call" for role, param, most in limits
            )
            found.append(
                finding(
                    "W003",
                    Loc(file, line, column),
                    f"node {node_id!r} runs {action} on a loop ({' → '.join(loop)}), but "
                    f"policies.yaml limits it per call only ({which}): each turn of the loop "
                    "may grant it again; bound the total with per_session (one session) or "
                    "per_customer (the customer's total over a period)",
                    summary.get("id"),
                    node_id,
                )
            )
    return found


def _looped_calls(
    journeys: Mapping[str, Mapping[str, Any]], by_action: Mapping[str, list[list[Any]]]
) -> list[Finding]:
    """W003 on a sub-journey call on a loop, when the sub-journey (or one it calls) runs an
    action limited per call only: each turn of the caller's loop grants it again."""
    by_id = {s.get("id"): s for s in journeys.values() if s.get("id")}
    found = []
    for file, summary in journeys.items():
        for node_id, called, line, column, loop in summary.get("looped_calls", []):
            actions = _actions_under(str(called), by_id)
            limited = [a for a in actions if a in by_action]
            if not limited:
                continue
            which = "; ".join(
                f"{action} ({role}: {param} up to {_shown(most)} a call)"
                for action in limited
                for role, param, most in by_action[action]
            )
            found.append(
                finding(
                    "W003",
                    Loc(file, line, column),
                    f"node {node_id!r} calls the journey {called!r} on a loop "
                    f"({' → '.join(loop)}), and it runs actions that policies.yaml limits per "
                    f"call only: {which}; each turn of the loop may grant them again; bound "
                    "the total with per_session (one session) or per_customer (the "
                    "customer's total over a period)",
                    summary.get("id"),
                    node_id,
                )
            )
    return found


def _actions_under(journey_id: str, by_id: Mapping[Any, Mapping[str, Any]]) -> list[str]:
    """The actions a journey runs, its own and those of the journeys it calls (each once)."""
    seen: set[str] = set()
    actions: set[str] = set()
    waiting = [journey_id]
    while waiting:
        current = waiting.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        actions.update(by_id[current].get("actions", []))
        waiting.extend(str(call[1]) for call in by_id[current].get("calls", []))
    return sorted(actions)


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
