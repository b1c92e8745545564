"""The edge of the app: what every request passes first (plain ASGI)."""

from __future__ import annotations

import time

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.adapters.http.problems import problem

MAX_BODY = 64_000  # bytes: an answer never needs more


class Edge:
    """Every request passes here first. Refuses a body that is not said to be JSON (415), or
    larger than MAX_BODY (413): before it is read when it says its length, after MAX_BODY
    bytes when it comes in chunks. Tells how long the server spent on the answer
    (Server-Timing: app;dur=ms), for operators and load tests telling the server's time from
    the network's. Plain ASGI: Starlette's BaseHTTPMiddleware would add a task and two
    streams to every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        kind = b""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
                await _too_large(f"{value.decode()} bytes")(scope, receive, send)
                return
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"content-type":
                kind = value.split(b";")[0].strip().lower()
        # A body is JSON, said so: a web page elsewhere cannot make a browser send a JSON
        # content type without asking the server first (CORS), but it can send text/plain or
        # a form. Refused, they cannot act as the agent of this machine (no agent key set).
        if scope["method"] in ("POST", "PUT", "PATCH") and not _is_json(kind):
            await problem(
                415,
                "Unsupported media type",
                f"the body must be JSON, sent with Content-Type: application/json "
                f"(it was {kind.decode(errors='replace') or 'not said'})",
            )(scope, receive, send)
            return
        if chunked:  # no length said beforehand: read up to the limit, then hand it on
            body = await _read_at_most(receive, MAX_BODY)
            if body is None:
                await _too_large(f"more than {MAX_BODY} bytes")(scope, receive, send)
                return
            receive = _replay(body, receive)
        began = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                spent = (time.perf_counter() - began) * 1000
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"server-timing", f"app;dur={spent:.2f}".encode()),
                ]
            await send(message)

        await self.app(scope, receive, timed)


def _is_json(kind: bytes) -> bool:
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


def _too_large(size: str) -> JSONResponse:
    return problem(413, "Body too large", f"the body is {size}; the limit is {MAX_BODY}")


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)  # the client left: the app sees the disconnect next
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` (already read) first, then what the client sends next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again
