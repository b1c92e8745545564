"""Errors as RFC 9457 problem details, chosen by the error's class.

Every ``JourneysError`` carries its HTTP status and title (engine/errors.py), so one handler
answers them all; a class with an answer of its own (the back office starting: 503 with
``Retry-After``; a rate limit: 429) has its handler, found first by the error's ``__mro__``,
as Starlette looks handlers up. No endpoint catches an error to translate it.

An endpoint may name an error otherwise than its class does: starting a session calls a
session error "Cannot start", answering "Cannot answer", and an unknown session is "No such
session" everywhere a path names one. It says so in its route (:class:`Endpoint`'s
``naming``), looked up by the same ``__mro__``. What this layer refuses itself
(:class:`Refused`: who calls, what they may open, a malformed request) is named where it is
raised, never renamed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.adapters.execution.keeper import BackofficeStarting
from engine.errors import JourneysError, SessionError, UnknownSession
from engine.sessions.ratelimit import Limited


def problem(
    status: int,
    title: str,
    detail: str,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem detail; ``extra`` holds its extension members (RFC 9457, section 3.2)."""
    body: dict[str, Any] = {
        **(extra or {}),
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def first_error(errors: Sequence[Any]) -> str:
    """The first validation error of a body or query, as a person reads it: ``where: what``."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    what = str(first.get("msg", "invalid body"))
    return f"{where}: {what}" if where else what


# ------------------------------------------------------------ what this layer refuses


class Refused(SessionError):
    """A request this layer refuses itself, named as it should be; ``extra`` holds the
    problem's extension members."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class Unauthorized(Refused):
    title = "Unauthorized"
    http_status = 401


class Forbidden(Refused):
    title = "Forbidden"
    http_status = 403


class InvalidRequest(Refused):
    """A body or query that cannot be used as sent."""

    title = "Invalid request"
    http_status = 422


class NoSuchJourney(Refused):
    title = "No such journey"
    http_status = 404


class NoSuchContact(Refused):
    title = "No such contact"
    http_status = 404


class NoIncident(Refused):
    """A retry or hand-off asked of a session that no incident holds."""

    title = "No incident"
    http_status = 409


class NotAvailable(Refused):
    """What this server cannot do as it is configured (reports without the SQL store)."""

    title = "Not available"
    http_status = 501


# ------------------------------------------------------------ naming by the endpoint


@dataclass(frozen=True)
class Named:
    """How an endpoint names an error class: its title, its status (None: the class's),
    and its detail, a template of the error's ``message`` and the path's parameters."""

    title: str
    status: int | None = None
    detail: str = "{message}"


#: Error class -> how the endpoint names it (the first class of the error's ``__mro__``).
Naming = Mapping[type[JourneysError], Named]

#: A session the path names is not there: said the same by every endpoint of a session.
NO_SUCH_SESSION: Naming = {
    UnknownSession: Named("No such session", 404, "there is no session {session_id!r}")
}


class Endpoint(APIRoute):
    """A route whose endpoint names some errors itself (``naming``); OpenAPI sees a plain
    route."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        naming: Naming | None = None,
        **options: Any,
    ) -> None:
        super().__init__(path, endpoint, **options)
        self.naming: Naming = naming or {}


def named(request: Request, exc: JourneysError) -> Named | None:
    """How the endpoint that raised ``exc`` names it, if it does."""
    route = request.scope.get("route")
    if isinstance(exc, Refused) or not isinstance(route, Endpoint):
        return None
    return next((route.naming[c] for c in type(exc).__mro__ if c in route.naming), None)


# ------------------------------------------------------------ the handlers


async def on_error(request: Request, exc: Exception) -> JSONResponse:
    """Any error of journeys: as its endpoint names it, or as its class says."""
    if not isinstance(exc, JourneysError):  # registered for JourneysError only
        raise exc
    path = request.url.path
    how = named(request, exc)
    if how is not None:
        detail = how.detail.format(message=exc.message, **request.path_params)
        return problem(how.status or exc.http_status, how.title, detail, path)
    extra = exc.extra if isinstance(exc, Refused) else None
    return problem(exc.http_status, exc.title, exc.message, path, extra)


async def on_starting(request: Request, exc: Exception) -> JSONResponse:
    """The back office is starting: said at once, never waited for; the client tries again
    after ``Retry-After`` (the console does by itself)."""
    if not isinstance(exc, BackofficeStarting):  # registered for BackofficeStarting only
        raise exc
    extra = {"backoffice": "starting", "retry_after": exc.retry_after}
    response = problem(503, "Back office starting", exc.message, request.url.path, extra)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def on_limited(request: Request, exc: Exception) -> JSONResponse:
    """429 Too Many Requests (engine/sessions/ratelimit.py), with ``Retry-After``."""
    if not isinstance(exc, Limited):  # registered for Limited only
        raise exc
    extra = {"limit": exc.name, "retry_after": exc.retry_after}
    response = problem(429, "Too many requests", exc.message, request.url.path, extra)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def on_database(request: Request, exc: Exception) -> JSONResponse:
    """The database failed under the store (no StoreError said so): an outage, 503."""
    orig = exc.orig if isinstance(exc, OperationalError) else None
    reason = str(orig).strip().splitlines()[0] if orig else "no reason given"
    detail = f"the session database cannot be used just now ({reason}); try again"
    return problem(503, "Service unavailable", detail, request.url.path)


async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
    """A body, query or path FastAPI's validation refuses."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else ()
    return problem(422, "Invalid request", first_error(errors), request.url.path)


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors: no such path (404), a method the path does not take (405)."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
    return problem(status, "Not found" if status == 404 else "Error", str(detail))


#: The handlers, by the class of what is raised (the most specific class wins).
HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    JourneysError: on_error,
    BackofficeStarting: on_starting,
    Limited: on_limited,
    OperationalError: on_database,
    RequestValidationError: on_invalid,
    StarletteHTTPException: on_http,
}
