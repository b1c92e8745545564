"""Opening a contact's session: continue one by its id, or start a journey, unless the
customer already has a session of it waiting, which is resumed instead (once and done: the
customer is never asked twice for what they already said).

The decisions of ``journeys run`` before the first step, in the engine so that any entry
point makes the same ones; the command only says what happened. No I/O here beyond the
``Sessions`` service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from engine.errors import Conflict, JourneyHasErrors
from engine.sessions.runtime import INCIDENT, Session
from engine.sessions.service import Sessions


class Opened(NamedTuple):
    """The session to go on with, and the waiting one it resumes (as found), if any."""

    session: Session
    resumed: Session | None = None


def check_startable(refused: Mapping[str, str], journey_id: str) -> None:
    """Refuse (:class:`JourneyHasErrors`, with the reason) a journey that `journeys
    validate` finds errors in: ``refused`` is ``engine.definitions.library.refusals``."""
    reason = refused.get(journey_id)
    if reason:
        raise JourneyHasErrors(reason)


def resume_or_start(
    sessions: Sessions,
    journey_id: str,
    inputs: Mapping[str, Any],
    *,
    force_new: bool = False,
    channel: str | None = None,
    locale: str | None = None,
    agent: str | None = None,
    role: str | None = None,
) -> Opened:
    """The customer's waiting session of the journey, resumed (on ``channel`` or by
    ``role`` when given), else a new one; ``force_new`` always starts one. A journey with
    errors is refused before (:func:`check_startable`)."""
    customer = inputs.get("customer_id")
    waiting = (
        []
        if force_new or "customer_id" not in inputs
        else sessions.open_for(str(customer), journey_id)
    )
    if waiting:
        found = waiting[0]
        session = (
            sessions.resume(found.id, channel, actor=agent, role=role) if channel or role else found
        )
        return Opened(session, found)
    started = sessions.start(
        journey_id,
        inputs,
        channel=channel,
        locale=locale,
        as_text=True,
        agent=agent,
        actor=agent,
        role=role,
    )
    return Opened(started)


def continue_session(
    sessions: Sessions,
    session_id: str,
    *,
    channel: str | None = None,
    role: str | None = None,
    actor: str | None = None,
    before_retry: Callable[[Mapping[str, Any]], None] | None = None,
) -> Session:
    """The session ``session_id``, moved to ``channel`` or ``role`` when given. A finished
    session cannot go on (:class:`Conflict`); a session held by an incident goes on by
    running its action again (``before_retry(incident)`` is told first: it may take time)."""
    session = (
        sessions.resume(session_id, channel, actor=actor, role=role)
        if channel or role
        else sessions.get(session_id)
    )
    if session.finished:
        raise Conflict(f"session {session_id!r} has ended (outcome {session.outcome!r})")
    if session.status == INCIDENT:
        if before_retry is not None:
            before_retry(session.incident or {})
        session = sessions.retry(session.id, actor=actor)
    return session
