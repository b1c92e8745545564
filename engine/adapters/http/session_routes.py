"""A session's life over HTTP: start it, answer its steps, read it, resume it.

The hot endpoints (a session's start and its answers) take the request itself: they identify
the caller, parse the body with pydantic and encode the answer with orjson. FastAPI's
dependency solving, body decoding and response validation cost a third of the server's time
per step (bench/serving.py); the OpenAPI description is the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from engine.adapters.http.auth import Caller, caller, identify, open_session
from engine.adapters.http.bodies import (
    AnswerBody,
    FastJSON,
    ResumeBody,
    StartBody,
    documented_body,
    parse_body,
)
from engine.adapters.http.limits import limit
from engine.adapters.http.problems import (
    NO_SUCH_SESSION,
    Endpoint,
    Forbidden,
    InvalidRequest,
    Named,
    Naming,
)
from engine.adapters.http.raw_route import RawRoute
from engine.adapters.http.signed_identity import IdentityError, IdentityUnavailable
from engine.adapters.http.state import AppState, served, state_of
from engine.adapters.http.views import session_detail, session_view
from engine.definitions.library import LibraryError
from engine.errors import Conflict, InvalidAnswer, MissingInput, NotReady, SessionError
from engine.sessions.identity import CUSTOMER
from engine.sessions.runtime import current_step

#: How starting names what the service raises (the first class of the error's __mro__).
STARTING: Naming = {
    LibraryError: Named("No such journey", 404),
    MissingInput: Named("Invalid inputs", 422),
    IdentityUnavailable: Named("Service unavailable", 503),
    IdentityError: Named("Unauthorized", 401, "identity: {message}"),
    NotReady: Named("Service unavailable", 503),  # its subclass BackofficeStarting: its own
    SessionError: Named("Cannot start"),
}

#: How answering names what the service raises.
ANSWERING: Naming = {
    **NO_SUCH_SESSION,
    InvalidAnswer: Named("Invalid answer", 422),
    Conflict: Named("Conflict", 409),
    NotReady: Named("Service unavailable", 503),
    SessionError: Named("Cannot answer"),
}


async def start(request: Request) -> FastJSON:
    who = identify(request)
    body = parse_body(StartBody, await request.body())
    state = state_of(request)
    return FastJSON(await state.threads.run(_start, state, body, who), status_code=201)


def _start(state: AppState, body: StartBody, who: Caller) -> dict[str, Any]:
    name = body.journey or body.motive
    if not name:
        raise InvalidRequest("give 'journey' or 'motive'")
    inputs = dict(body.inputs)
    if body.customer_id and "customer_id" not in inputs:
        inputs["customer_id"] = body.customer_id
    channel = _start_channel(body.channel, who)
    identity = _start_identity(state, body.identity, inputs, channel, who)
    session = state.sessions.start(
        name,
        inputs,
        channel=channel,
        locale=body.locale,
        actor=who.name,
        # Self-care is performed by the customer, whoever opened the page.
        role=CUSTOMER if channel == "selfcare" else who.role,
        identity=identity,
    )
    # A self-care session is shown as its customer sees it (on loopback without agent
    # keys the page that starts it is served as an agent).
    customer = who.role == "customer" or session.channel == "selfcare"
    shown = session_view(state.sessions, session, customer)
    return {**shown, "token": state.tokens.issue(session.id)}


def _start_channel(channel: str | None, who: Caller) -> str | None:
    """The channel a session starts on: a self-care customer's is ``selfcare``, always (the
    channel decides who performs the steps; an agent's channel is for agents)."""
    if who.role != CUSTOMER:
        return channel
    if channel not in (None, "selfcare"):
        raise Forbidden(
            f"a self-care customer starts on the selfcare channel, not {channel!r}; "
            "the other channels are for agents (give an agent key)"
        )
    return "selfcare"


def _start_identity(
    state: AppState,
    token: str | None,
    inputs: dict[str, Any],
    channel: str | None,
    who: Caller,
) -> dict[str, Any] | None:
    """Who the customer of a new session is proven to be, if anyone: the signed identity
    handed over (its number replaces any other), or the customer an agent starts a
    self-care session for. A self-care customer's own number is only a claim: the identify
    journey has them prove it."""
    if token is not None:
        if state.signed_identity is None:
            raise InvalidRequest(
                "identity: this server accepts no signed identity (JOURNEYS_IDENTITY_KEY or "
                "JOURNEYS_IDENTITY_JWKS is not set); start without it"
            )
        identity = state.signed_identity.check(token)  # IdentityError: 401 (STARTING)
        claimed = inputs.get("customer_id")
        if claimed is not None and claimed != identity["customer_id"]:
            raise Forbidden(
                f"the customer number given ({claimed!r}) is not the one of the signed identity"
            )
        inputs["customer_id"] = identity["customer_id"]
        return identity
    customer = inputs.get("customer_id")
    if who.role != CUSTOMER and channel == "selfcare" and isinstance(customer, str):
        return {"customer_id": customer, "by": "agent"}  # the agent vouches for the customer
    return None


async def answer(session_id: str, request: Request) -> FastJSON:
    who = identify(request)
    body = parse_body(AnswerBody, await request.body())
    state = state_of(request)
    return FastJSON(await state.threads.run(_answer, state, session_id, body, who, request))


def _answer(
    state: AppState, session_id: str, body: AnswerBody, who: Caller, request: Request
) -> dict[str, Any]:
    if who.role == "customer":  # an agent's answer needs no extra read: the step checks it
        _may_answer(state, session_id, who, request)
    session = state.sessions.answer(
        session_id, body.node, body.value, seq=body.seq, actor=who.name, role=who.role
    )
    return session_view(state.sessions, session, who.role == "customer")


def _may_answer(state: AppState, session_id: str, who: Caller, request: Request) -> None:
    """A customer answers their own session, at a step for customers, and guesses no
    customer number or one-time code."""
    session = open_session(state, session_id, who)
    if session.identity is None:  # a customer number or a one-time code: not guessed
        limit(state.limiter, "otp", request, session.id)
    step = current_step(state.sessions.bundle_of(session).definitions, session)
    if step and "customer" not in step.get("roles", ["customer"]):
        raise Forbidden(
            f"the session is waiting for an agent at step {step['node']!r}; an agent "
            f"continues it (contact code {session.contact_id!r}, to give if you call)",
            waiting_for="agent",
            contact=session.contact_id,
        )


async def read(
    session_id: str, who: Caller = Depends(caller), state: AppState = Depends(served)
) -> dict[str, Any]:
    return await state.threads.run(_read, state, session_id, who)


def _read(state: AppState, session_id: str, who: Caller) -> dict[str, Any]:
    session = open_session(state, session_id, who)
    return session_detail(state.sessions, state.store, session, who.role == "customer")


async def resume(
    session_id: str,
    body: ResumeBody,
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> dict[str, Any]:
    return await state.threads.run(_resume, state, session_id, body, who)


def _resume(state: AppState, session_id: str, body: ResumeBody, who: Caller) -> dict[str, Any]:
    open_session(state, session_id, who)
    if who.role == CUSTOMER and body.channel not in (None, "selfcare"):
        raise Forbidden(
            f"a self-care session stays on the selfcare channel; an agent continues it on "
            f"{body.channel!r} (give them the contact code)"
        )
    session = state.sessions.resume(session_id, body.channel, actor=who.name)
    return {
        **session_view(state.sessions, session, who.role == "customer"),
        "context": session.context,
    }


ROUTES = [
    # The hot two parse their own bodies: served past FastAPI's dependency solving (raw_route)
    RawRoute(
        "/v1/sessions",
        start,
        methods=["POST"],
        status_code=201,
        openapi_extra=documented_body(StartBody),
        naming=STARTING,
    ),
    RawRoute(
        "/v1/sessions/{session_id}/answers",
        answer,
        methods=["POST"],
        openapi_extra=documented_body(AnswerBody),
        naming=ANSWERING,
    ),
    Endpoint("/v1/sessions/{session_id}", read, naming=NO_SUCH_SESSION),
    Endpoint("/v1/sessions/{session_id}/resume", resume, methods=["POST"], naming=NO_SUCH_SESSION),
]
