"""The hot endpoints served straight from the user middleware, past FastAPI's inner layers.

After the user middleware (engine.adapters.http.edge's Edge), a request passes FastAPI's
``ExceptionMiddleware``, its ``AsyncExitStackMiddleware`` (files of form bodies), the router,
which tries every route in turn, and the route's request wrapper (two exit stacks, the
exception handlers once more): a tenth of the server's CPU per step (bench/http_cpu.py). A
request for a :class:`RawRoute` (the start of a session and its answers) goes from here to
its endpoint through an ``ExceptionMiddleware`` of its own with the app's exception
handlers, so errors are answered exactly as before; every other request goes on as before.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.adapters.http.raw_route import RawRoute


class HotRoutes:
    """ASGI middleware inside Edge: the app's RawRoutes first. The app is the scope's
    (Starlette puts itself there), read at the first request, when every route exists."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._hot: list[tuple[RawRoute, ASGIApp]] | None = None  # all routes exist by then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route, app in self._hot if self._hot is not None else self._build(scope["app"]):
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)  # path_params, endpoint, route: as the router sets them
                    await app(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _build(self, fastapi: FastAPI) -> list[tuple[RawRoute, ASGIApp]]:
        # As FastAPI's own stack: the handlers of 500 and Exception are the outer error
        # middleware's, the others the ExceptionMiddleware's.
        handlers = {
            key: value
            for key, value in fastapi.exception_handlers.items()
            if key not in (500, Exception)
        }
        hot: list[tuple[RawRoute, ASGIApp]] = []
        seen: set[str] = set()
        for route in fastapi.router.routes:
            path = getattr(route, "path", "")
            if isinstance(route, RawRoute) and path not in seen:
                app = ExceptionMiddleware(_endpoint(route), handlers, fastapi.debug)
                hot.append((route, app))
            seen.add(path)  # a route first on a path keeps it (the router's order)
        self._hot = hot
        return hot


def _endpoint(route: RawRoute) -> ASGIApp:
    endpoint: Any = route.endpoint

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await endpoint(request=request, **request.path_params)
        await response(scope, receive, send)

    return app
