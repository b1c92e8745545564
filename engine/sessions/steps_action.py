"""The ``action`` node: the authority decision applied, the action asked for, and what its
outcome does to the session (a business error gives its amounts back; a technical failure
is an incident or the node's ``on_failure``).

:func:`engine.sessions.authority.authorise` decides, without touching the session; this module applies
the decision: the grants recorded, the action run, the customer's totals asked for, or the
denial with its way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from engine.definitions.model import Node, Policy
from engine.sessions.authority import (
    SUPERVISOR_QUEUE,
    AskTotals,
    Breach,
    Denied,
    Granted,
    added,
    authorise,
    default_role,
)
from engine.sessions.events import ActionDone, Reserve, RunAction
from engine.sessions.session import AUTHORISING, INCIDENT, RUNNING, Session, copy_data
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
)

#: Automatic retries of an incident: 30 s, then twice as long each time, at most 30 min.
RETRY_FIRST_S, RETRY_MAX_S = 30, 1800


def enter_action(turn: Turn, s: Session, node: Node, qualified: str) -> Next:
    arrive(s, node, qualified)
    return authorise_action(turn, s, node, qualified, action_inputs(s, node))


def action_inputs(s: Session, node: Node) -> dict[str, Any]:
    """The action's inputs, evaluated on the session's context now."""
    return {k: evaluate(s, node, v, f"input {k!r}") for k, v in node.input.items()}


def authorise_action(
    turn: Turn,
    s: Session,
    node: Node,
    qualified: str,
    inputs: Mapping[str, Any],
    customer_totals: Mapping[str, float] | None = None,
) -> Next:
    """Apply the authority decision for the role performing the step (``customer_totals``
    given by ``Reserved``). Granted: the action runs. A total per customer not yet known: a
    ``Reserve`` is asked for and the session is ``authorising``. Denied: see :func:`_denied`."""
    role = s.role or default_role(s.channel)
    action = node.action or ""
    decision = authorise(
        turn.policy,
        role,
        action,
        inputs,
        s.totals.get(action),
        _customer(s, inputs),
        customer_totals,
    )
    if isinstance(decision, Denied):
        return _denied(turn, s, node, qualified, decision.breach, role)
    key = f"{s.id}:{qualified}:{s.visits[qualified]}"
    if isinstance(decision, AskTotals):
        claimed = decision.claims
        turn.effects.append(Reserve(qualified, action, role, decision.customer, s.id, key, claimed))
        s.status = AUTHORISING
        return WAIT
    _granted(s, qualified, action, inputs, decision, turn.policy, role)
    turn.effects.append(
        RunAction(qualified, action, inputs, node.wait, node.retries, node.timeout, key)
    )
    if node.wait:
        s.status = RUNNING
        return WAIT
    complete(s, node)
    go(s, node.next)
    return CONTINUE


def _customer(s: Session, inputs: Mapping[str, Any]) -> str | None:
    """Whose totals: the customer the action names (a voucher's customer_id), else the
    session's."""
    return (
        _text_or_none(inputs.get("customer_id"))
        or s.customer_id
        or _text_or_none(s.context.get("customer_id"))
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _granted(
    s: Session,
    qualified: str,
    action: str,
    inputs: Mapping[str, Any],
    decision: Granted,
    policy: Policy | None,
    role: str,
) -> None:
    """Record who granted what (each rule that applied) and add the grant to the session's
    totals of the parameters some role bounds per session."""
    for rule in decision.applied:
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


def _denied(turn: Turn, s: Session, node: Node, qualified: str, breach: Breach, role: str) -> Next:
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
        go(s, node.on_denied)
        return CONTINUE
    s.handoff = {"queue": SUPERVISOR_QUEUE, "reason": breach.reason, "node": qualified}
    return finish(s, "escalated", turn.effects)


# ------------------------------------------------------------------ its outcomes


def refused(s: Session, node: Node, policy: Policy | None) -> None:
    """The back office refused the action (a business error): nothing was given, so it leaves
    the session's totals (the store releases the customer's). The grants, the record of who
    decided what, stay. The context is the one the action started from: the same inputs."""
    action = node.action or ""
    for param in policy.counted_per_session(action) if policy else ():
        value = (
            evaluate(s, node, node.input[param], f"input {param!r}")
            if param in node.input
            else None
        )
        sums = s.totals.get(action, {})
        if isinstance(value, int | float) and not isinstance(value, bool) and param in sums:
            sums[param] = added(sums[param], -value)


def failed(s: Session, node: Node, event: ActionDone) -> None:
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
        go(s, node.on_failure)
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
