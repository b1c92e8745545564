"""What agents do beside the steps: retry or hand off an incident, find a session by a
customer's contact code, and take the self-care sessions waiting for an agent."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from engine.adapters.http.auth import Caller, caller, open_session
from engine.adapters.http.bodies import HandOffBody, RetryBody
from engine.adapters.http.limits import limit
from engine.adapters.http.problems import (
    NO_SUCH_SESSION,
    Endpoint,
    Forbidden,
    NoIncident,
    NoSuchContact,
)
from engine.adapters.http.state import AppState, served
from engine.adapters.http.views import session_view
from engine.sessions.runtime import Session


async def retry(
    session_id: str,
    body: RetryBody | None = None,
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> dict[str, Any]:
    """Run the failed action of an incident again now (agents only; same idempotency key,
    so the back office never acts twice): the session goes on where it was, or stays an
    incident with its next automatic retry. 409 when the session is not in an incident."""
    return await state.threads.run(_retry, state, session_id, who)


def _retry(state: AppState, session_id: str, who: Caller) -> dict[str, Any]:
    _held_by_incident(state, session_id, who)
    # Conflict (409): the retry loop or another agent got there first.
    return _incident_view(state, state.sessions.retry(session_id, actor=who.name))


async def hand_off(
    session_id: str,
    body: HandOffBody | None = None,
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> dict[str, Any]:
    """Give up on an incident for this contact (agents only): the session ends, escalated,
    in the back-office queue (or ``queue``) with its whole context, to be finished there.
    409 when the session is not in an incident."""
    queue = body.queue if body else None
    return await state.threads.run(_hand_off, state, session_id, who, queue)


def _hand_off(state: AppState, session_id: str, who: Caller, queue: str | None) -> dict[str, Any]:
    _held_by_incident(state, session_id, who)
    session = state.sessions.hand_off(session_id, actor=who.name, queue=queue)
    return _incident_view(state, session)


def _held_by_incident(state: AppState, session_id: str, who: Caller) -> None:
    """An agent acts on an incident, and only on a session an incident holds."""
    if who.role == "customer":
        raise Forbidden("an agent retries or hands off an incident")
    session = open_session(state, session_id, who)
    if session.status != "incident":
        raise NoIncident(
            f"session {session_id!r} is not held by an incident (it is {session.status}); "
            "only an incident can be retried or handed off",
            status=session.status,
        )


def _incident_view(state: AppState, session: Session) -> dict[str, Any]:
    shown = session_view(state.sessions, session)
    return {**shown, "incident": session.incident, "handoff": session.handoff}


async def contact(
    code: str,
    request: Request,
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> dict[str, Any]:
    """The session a customer's contact code points at (agents only): the one to continue."""
    if who.role != "customer":  # codes are short: guessing them is limited
        limit(state.limiter, "contact", request, who.name)
    return await state.threads.run(_contact, state, code, who)


def _contact(state: AppState, code: str, who: Caller) -> dict[str, Any]:
    if who.role == "customer":
        raise Forbidden("contact codes are for agents")
    found = state.store.contact_sessions(code.strip().upper())
    if not found:
        raise NoSuchContact(f"no contact has the code {code!r}; check it with the customer")
    waiting = [s for s in found if not s.finished]
    return session_view(state.sessions, (waiting or found)[0])


async def queue(
    who: Caller = Depends(caller), state: AppState = Depends(served)
) -> list[dict[str, Any]]:
    """The self-care sessions waiting at a step for an agent (agents only), the longest
    waiting first: an agent opens one with its contact code and continues it."""
    return await state.threads.run(_queue, state, who)


def _queue(state: AppState, who: Caller) -> list[dict[str, Any]]:
    if who.role == "customer":
        raise Forbidden("the queue is for agents")
    return [
        {
            "id": row["id"],
            "journey": row["journey"],
            "node": row["node"],
            "contact": row["contact_id"],
            "customer_id": row["customer_id"],
            "waiting_since": row["waiting_since"],
        }
        for row in state.sessions.agent_queue("selfcare")
    ]


ROUTES = [
    Endpoint("/v1/sessions/{session_id}/retry", retry, methods=["POST"], naming=NO_SUCH_SESSION),
    Endpoint(
        "/v1/sessions/{session_id}/handoff", hand_off, methods=["POST"], naming=NO_SUCH_SESSION
    ),
    Endpoint("/v1/contacts/{code}", contact),
    Endpoint("/v1/queue", queue),
]
