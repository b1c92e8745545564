"""The authority limits of ``policies.yaml`` against the action catalogue.

J009: an action that is not in the catalogue, a parameter the action does not take, a ``max``
or ``min`` on a parameter that is not a number, an allowed value of the wrong type.
J002 (beyond the JSON Schema): a limit that sets no rule, a ``min`` above the ``max``.
"""

from __future__ import annotations

from engine.checks.actions import _TYPE_WORDS, Catalogue, _type_ok
from engine.findings import Finding, did_you_mean, finding, one_of
from engine.model import Policy

#: The names the policy file may have, at the library's root.
POLICY_FILES = ("policies.yaml", "policies.yml")

_NUMBERS = ("number", "integer")


def check_policy(policy: Policy, catalogue: Catalogue) -> list[Finding]:
    found: list[Finding] = []
    for (role, action), loc in policy.actions.items():
        if action not in catalogue:
            found.append(
                finding(
                    "J009",
                    loc,
                    f"role {role!r}: {action!r} is not a back-office action of the catalogue"
                    f"{did_you_mean(action, catalogue)}",
                )
            )
    for limit in policy.limits:
        where = f"role {limit.role!r}, {limit.action} {limit.param!r}"
        rules = [k for k in ("max", "min", "in") if k in limit.key_locs]
        if not rules:
            found.append(
                finding(
                    "J002",
                    limit.loc,
                    f"{where}: no limit is given; write max and/or min for a number, or in with "
                    "the allowed values (a parameter that is not listed is unlimited)",
                )
            )
        if limit.max is not None and limit.min is not None and limit.min > limit.max:
            found.append(
                finding(
                    "J002",
                    limit.at("min"),
                    f"{where}: min {limit.min} is above max {limit.max}, so no value would be "
                    "allowed",
                )
            )
        spec = catalogue.get(limit.action)
        if spec is None:
            continue  # reported once, at the action
        declared = {p.name: p for p in spec.params}
        param = declared.get(limit.param)
        if param is None:
            found.append(
                finding(
                    "J009",
                    limit.loc,
                    f"role {limit.role!r}: {limit.action} has no parameter {limit.param!r}"
                    f"{did_you_mean(limit.param, declared)}; it takes {one_of(declared)}",
                )
            )
            continue
        for key in ("max", "min"):
            if key in limit.key_locs and param.type not in _NUMBERS:
                found.append(
                    finding(
                        "J009",
                        limit.at(key),
                        f"{where}: {key!r} needs a number, but {limit.param!r} of "
                        f"{limit.action} is {_TYPE_WORDS.get(param.type, param.type)}; "
                        "list the allowed values with 'in' instead",
                    )
                )
        for value in limit.allowed or ():
            if not _type_ok(value, param.type, param.nullable):
                found.append(
                    finding(
                        "J009",
                        limit.at("in"),
                        f"{where}: the allowed value {value!r} can never match: "
                        f"{limit.param!r} of {limit.action} is "
                        f"{_TYPE_WORDS.get(param.type, param.type)}",
                    )
                )
    return found
