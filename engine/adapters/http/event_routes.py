"""Back-office events over HTTP: the outbound sessions their triggers start (motives.yaml)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from engine.adapters.http.auth import Caller, caller
from engine.adapters.http.bodies import EventBody
from engine.adapters.http.problems import Endpoint, Forbidden, Named, Naming
from engine.adapters.http.state import AppState, served
from engine.adapters.http.views import session_view
from engine.errors import SessionError
from engine.sessions.triggers import start_outbound

#: An event no trigger can use as sent (TriggerError), or a session it cannot start.
RAISING: Naming = {SessionError: Named("Invalid event", 422)}


async def raise_event(
    body: EventBody, who: Caller = Depends(caller), state: AppState = Depends(served)
) -> dict[str, Any]:
    """A back-office event: the outbound sessions its triggers start (motives.yaml)."""
    return await state.threads.run(_raise_event, state, body, who)


def _raise_event(state: AppState, body: EventBody, who: Caller) -> dict[str, Any]:
    if who.role == "customer":
        raise Forbidden("events come from the back office, with an agent key")
    started, nothing = start_outbound(
        state.sessions, body.event, body.data, as_text=False, locale=body.locale
    )
    return {
        "event": body.event,
        "message": nothing,
        "sessions": [
            {**session_view(state.sessions, s), "token": state.tokens.issue(s.id)} for s in started
        ],
    }


ROUTES = [Endpoint("/v1/events", raise_event, methods=["POST"], naming=RAISING)]
