"""What a connection to `journeys serve` may hold: bounded headers, bounded time to send a request.

uvicorn's httptools protocol (the fast one) keeps a connection that sends nothing, or sends
its headers a byte at a time, for ever, and takes headers of any size (10 MB were read into
memory). h11's protocol bounds headers (``h11_max_incomplete_event_size``) but costs a third of
the server's time. So this is httptools' protocol with the two bounds it lacks:

- the request line and headers together hold at most :data:`MAX_HEADER_BYTES`; past it the
  request is answered 431 and the connection closed;
- a request (headers and body) must arrive within :data:`REQUEST_SECONDS` of its first byte,
  and a new connection must start one within that time; otherwise the connection is closed
  (within a second more: a sweep checks the connections every second).

Between requests, an idle connection is closed after uvicorn's ``timeout_keep_alive``; past
``limit_concurrency`` connections and requests, new requests are answered 503 (see
:func:`uvicorn_settings`).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from engine.errors import SessionError

MAX_HEADER_BYTES = 16_384  # the request line and all headers, as h11's default bound
REQUEST_SECONDS = 10.0  # from a request's first byte (or the connection) to its last
KEEP_ALIVE_SECONDS = 5  # an idle connection between two requests
MAX_CONCURRENCY = 1_000  # connections and requests at once, per process; beyond: 503


class HeadersTooLarge(SessionError):
    pass


#: The sweep of each server's connections, by the server's state (which holds them).
_SWEEPS: weakref.WeakKeyDictionary[Any, asyncio.TimerHandle] = weakref.WeakKeyDictionary()


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with bounded headers and a time limit per request.

    A request's start time is noted, and one sweep per server closes the connections whose
    request is late: a timer per request cost more (a tenth of a trivial request's time)."""

    max_header_bytes = MAX_HEADER_BYTES
    request_seconds = REQUEST_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._too_large = False
        self._began: float | None = None  # when the request under way began, if any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._began = self.loop.time()  # a connection that never sends a request is not kept
        if self.server_state not in _SWEEPS:
            _sweep_later(self.loop, self.server_state, min(1.0, self.request_seconds / 10))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._began = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and the line's end
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._began = None
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to any error raised in a parser callback: ours is a 431.
        if not self._too_large:
            super().send_400_response(msg)
            return
        detail = f"the request line and headers are over {self.max_header_bytes} bytes"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            + f"content-length: {len(detail)}\r\n".encode()
            + b"connection: close\r\n\r\n"
            + detail.encode()
        )
        self.transport.close()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise HeadersTooLarge  # stops the parser; answered in send_400_response


def _sweep_later(loop: asyncio.AbstractEventLoop, server: Any, every: float) -> None:
    _SWEEPS[server] = loop.call_later(every, _sweep, loop, server, every)


def _sweep(loop: asyncio.AbstractEventLoop, server: Any, every: float) -> None:
    """Close the connections whose request has taken too long; again while there are any."""
    now = loop.time()
    for connection in list(server.connections):
        began = getattr(connection, "_began", None)
        if began is not None and now - began > connection.request_seconds:
            connection._began = None
            if not connection.transport.is_closing():
                connection.transport.close()
    if server.connections:
        _sweep_later(loop, server, every)
    else:
        del _SWEEPS[server]


def uvicorn_settings() -> dict[str, Any]:
    """The settings `journeys serve` gives uvicorn, besides host, port and workers."""
    return {
        "http": GuardedHttpTools,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": MAX_CONCURRENCY,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,  # if h11 is ever chosen
    }
