"""The HTTP side of the rate limits (engine/ratelimit.py): which keys a request counts under,
and the 429 answer with ``Retry-After``.

A request counts under its client address, as the server sees it (behind a reverse proxy on
this machine, uvicorn takes it from ``X-Forwarded-For``), and, when given, under who calls:
the session of a self-care token, the agent key. Another endpoint takes its own limit with
``limit(request.app.state.limiter, "otp", request, caller_key)``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from engine.ratelimit import Limited, Limiter


def limit(limiter: Limiter, name: str, request: Request, caller: str | None = None) -> None:
    """Count one call of kind ``name`` by this client address (and ``caller``: a session id or
    an agent's name), or raise :class:`Limited` (answered 429)."""
    address = request.client.host if request.client else "unknown"
    keys = [f"address:{address}"]
    if caller:
        keys.append(f"caller:{caller}")
    limiter.take(name, *keys)


async def too_many(request: Request, exc: Exception) -> JSONResponse:
    """429 Too Many Requests, an RFC 9457 problem like every error, with ``Retry-After``."""
    if not isinstance(exc, Limited):  # registered for Limited only
        raise exc
    return JSONResponse(
        {
            "limit": exc.name,
            "retry_after": exc.retry_after,
            "type": "about:blank",
            "title": "Too many requests",
            "status": 429,
            "detail": str(exc),
            "instance": request.url.path,
        },
        status_code=429,
        media_type="application/problem+json",
        headers={"Retry-After": str(exc.retry_after)},
    )
