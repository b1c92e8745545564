"""A session as the commands print it: the data of ``--format json``, and its lines of text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from engine.sessions.runtime import Session
    from engine.sessions.service import Sessions


def result_of(session: Session) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session": session.id,
        "journey": session.journey,
        "version": session.version,
        "status": "ended" if session.status == "survey" else session.status,
        "outcome": session.outcome,
        "path": session.path,
        "context": session.context,
    }
    if session.status in ("waiting", "running", "incident"):
        data["node"] = session.node
    if session.incident:  # a system down: held at the node, never a business path
        data["incident"] = session.incident
    if session.error:
        data["error"] = session.error
    if session.handoff:
        data["handoff"] = session.handoff
    if session.grants:
        data["grants"] = session.grants
    if session.survey:
        data["survey"] = session.survey
    return data


def print_result(result: dict[str, Any]) -> None:
    for grant in result.get("grants", []):
        over = f" over {grant['over']}" if grant.get("over") else ""
        total = f", total {grant['total']}" if grant.get("total") is not None else ""
        click.echo(
            f"Granted by the {grant['role']}{' ' + grant['actor'] if grant['actor'] else ''}: "
            f"{grant['action']} {grant['param']} {grant['value']} (limit: {grant['rule']} "
            f"{grant['limit']}{over}{total})"
        )
    click.echo(_where_it_is(result))


def _where_it_is(result: dict[str, Any]) -> str:
    session = result["session"]
    if result["status"] == "ended" and result.get("handoff"):
        handoff = result["handoff"]
        why = f" ({handoff['reason']})" if handoff.get("reason") else ""
        return (
            f"Session {session} ended: {result['outcome']}, handed to the "
            f"{handoff['queue']} queue{why}"
        )
    if result["status"] == "ended":
        return f"Session {session} ended: {result['outcome']}"
    if result["status"] == "incident":
        held = result["incident"]
        return (
            f"Session {session} is held at {result.get('node')!r}: the back office did "
            f"not answer ({held['action']}: {held['message']}), since {held['since']}, "
            f"{held['tries']} tr{'ies' if held['tries'] != 1 else 'y'}. Nothing is lost: "
            f"`journeys serve` retries it by itself, or retry it with: "
            f"journeys run --session {session}"
        )
    return (
        f"Session {session} is waiting at {result.get('node')!r}. "
        f"Continue it with: journeys run --session {session}"
    )


def outbound_of(sessions: Sessions, session: Session) -> dict[str, Any]:
    """A started outbound session, with the step the customer now sees."""
    from engine.sessions.runtime import current_step

    data = result_of(session)
    data["channel"], data["motive"] = session.channel, session.motive
    step = current_step(sessions.bundle_of(session).definitions, session)
    if step is not None and session.status == "waiting":
        data["step"] = step
    elif session.messages:  # ended at once: its last texts are the message sent
        data["messages"] = list(session.messages)
    return data


def print_outbound(item: dict[str, Any]) -> None:
    where = f"waiting at {item['node']!r}" if "node" in item else f"ended: {item['outcome']}"
    click.echo(
        f"Session {item['session']} of {item['journey']} on {item['channel'] or 'no channel'} "
        f"(motive {item['motive'] or 'none'}): {where}"
    )
    step = item.get("step") or {"messages": item.get("messages", [])}
    for text in [*step.get("messages", []), step.get("text")]:
        if text:
            click.echo(f"  > {text}")
    for option in step.get("options", []):
        click.echo(f"    - {option['value']}: {option['label']}")
    if "node" in item:
        click.echo(f"  Continue it with: journeys run --session {item['session']}")
    if item.get("error"):
        click.echo(f"  Error: {item['error'].get('message')}")
