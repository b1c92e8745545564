"""The HTTP side of the rate limits (engine/sessions/ratelimit.py): which keys a request counts under.

A request counts under its client address, as the server sees it (behind a reverse proxy on
this machine, uvicorn takes it from ``X-Forwarded-For``), and, when given, under who calls:
the session of a self-care token, the agent key. Another endpoint takes its own limit with
``limit(request.app.state.limiter, "otp", request, caller_key)``. A call over a limit is
answered 429 with ``Retry-After`` (engine/adapters/http/problems.py).
"""

from __future__ import annotations

from fastapi import Request

from engine.sessions.ratelimit import Limiter


def limit(limiter: Limiter, name: str, request: Request, caller: str | None = None) -> None:
    """Count one call of kind ``name`` by this client address (and ``caller``: a session id or
    an agent's name), or raise :class:`~engine.sessions.ratelimit.Limited` (answered 429)."""
    address = request.client.host if request.client else "unknown"
    keys = [f"address:{address}"]
    if caller:
        keys.append(f"caller:{caller}")
    limiter.take(name, *keys)
