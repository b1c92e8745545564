"""Who calls, and which sessions they may open.

- an agent presents a bearer key from ``JOURNEYS_AGENT_KEYS`` (``key:role`` pairs, comma
  separated; role agent or supervisor); with no key configured only this machine is served,
  as an agent, and only under a loopback name (DNS rebinding);
- a self-care customer presents the token returned when their session was created: it opens
  that session alone; with agent keys configured, anyone may start a self-care session.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from fastapi import Request

from engine.adapters.http.limits import limit
from engine.adapters.http.problems import Forbidden, Unauthorized
from engine.adapters.http.state import AppState, state_of
from engine.adapters.http.tokens import Tokens
from engine.sessions.runtime import Session

#: The names of this machine on loopback, as a client address or in a Host header.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Caller:
    role: str  # agent, supervisor or customer
    name: str
    session: str | None = None  # a customer's own session


def agent_keys() -> dict[str, str]:
    keys = {}
    for pair in os.environ.get("JOURNEYS_AGENT_KEYS", "").split(","):
        key, _, role = pair.strip().partition(":")
        if key:
            keys[key] = role if role in ("agent", "supervisor") else "agent"
    return keys


def identify(request: Request) -> Caller:
    """Who calls: an agent key, a session token, or (with no key configured) this machine."""
    state = state_of(request)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential:
        return _bearer(state, credential, request)
    if state.agent_keys:
        return _anonymous(state, request)
    return _this_machine(request)


async def caller(request: Request) -> Caller:
    """Who calls, as a dependency."""
    return identify(request)


def open_session(state: AppState, session_id: str, who: Caller) -> Session:
    """The session ``who`` asks for: a customer's token opens their own only."""
    if who.role == "customer" and who.session != session_id:
        raise Forbidden("a session token opens its own session only")
    return state.sessions.get(session_id)


def host_name(host: str) -> str:
    """The name of a Host header, without its port: ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _bearer(state: AppState, credential: str, request: Request) -> Caller:
    """An agent key, or the token of the session the path names."""
    if credential in state.agent_keys:
        digest = hashlib.sha256(credential.encode()).hexdigest()[:8]
        return Caller(state.agent_keys[credential], f"key:{digest}")
    session_id = request.path_params.get("session_id")
    if session_id and state.tokens.check(credential, session_id):
        return Caller("customer", "customer", session_id)
    if not session_id and Tokens.looks_like(credential):
        raise Forbidden(
            f"a session token opens its own session only; {request.url.path} is for "
            "agents (give an agent key)"
        )
    raise Unauthorized(
        "this key or token is not valid here (expired, forged, or for another session)"
    )


def _anonymous(state: AppState, request: Request) -> Caller:
    """No credential while agent keys are configured: only a self-care start."""
    if request.method == "POST" and request.url.path == "/v1/sessions":
        limit(state.limiter, "start", request)  # anyone may start one: not without end
        return Caller("customer", "customer")  # self-care: anyone may start a session
    raise Unauthorized("give an agent key or a session token: Authorization: Bearer ...")


def _this_machine(request: Request) -> Caller:
    """No agent key configured: this machine is an agent, if it calls itself by name."""
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        raise Forbidden("no agent key is configured, so only this machine may call the API")
    # DNS rebinding: a site whose name is pointed at 127.0.0.1 makes its pages the same
    # origin as this server in the browser; its name is still in the Host header.
    name = request.headers.get("host", "")
    if host_name(name) not in LOOPBACK:
        raise Forbidden(
            f"no agent key is configured, so only requests addressed to this machine by a "
            f"loopback name are served (Host 127.0.0.1, localhost or [::1], not {name!r}); "
            "set JOURNEYS_AGENT_KEYS to serve under other names"
        )
    return Caller("agent", "local agent")
