"""A FastAPI route whose endpoint takes the request and returns the response itself.

FastAPI solves an endpoint's dependencies for every request (its parameters read from the
path, query, headers and body, each validated), even when the endpoint only takes the
``Request``: a tenth of the server's CPU per step on the hot endpoints, which identify the
caller, parse their body with pydantic and encode their answer with orjson by themselves. A
:class:`RawRoute` calls the endpoint with the request and its path parameters, as Starlette
does, and is still an ``APIRoute``: the OpenAPI description is made from the same
declaration, and errors go to the same exception handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from engine.adapters.http.problems import Endpoint


class RawRoute(Endpoint):
    """An APIRoute whose endpoint is ``async (request, **path_params) -> Response``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handler
