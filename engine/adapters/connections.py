"""What a connection to `journeys serve` may hold: bounded headers, bounded time to send a request.

uvicorn's httptools protocol (the fast one) keeps a connection that sends nothing, or sends
its headers a byte at a time, for ever, and takes headers of any size (10 MB were read into
memory). h11's protocol bounds headers (``h11_max_incomplete_event_size``) but costs a third of
the server's time. So this is httptools' protocol with the two bounds it lacks:

- the request line and headers together hold at most :data:`MAX_HEADER_BYTES`; past it the
  request is answered 431 and the connection closed;
- a request (headers and body) must arrive within :data:`REQUEST_SECONDS` of its first byte,
  and a new connection must start one within that time; otherwise the connection is closed.

Between requests, an idle connection is closed after uvicorn's ``timeout_keep_alive``; past
``limit_concurrency`` connections and requests, new requests are answered 503 (see
:func:`uvicorn_settings`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 16_384  # the request line and all headers, as h11's default bound
REQUEST_SECONDS = 10.0  # from a request's first byte (or the connection) to its last
KEEP_ALIVE_SECONDS = 5  # an idle connection between two requests
MAX_CONCURRENCY = 1_000  # connections and requests at once, per process; beyond: 503


class HeadersTooLarge(Exception):
    pass


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with bounded headers and a time limit per request."""

    max_header_bytes = MAX_HEADER_BYTES
    request_seconds = REQUEST_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._too_large = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a request is not kept

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and the line's end
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._disarm()
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

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_settings() -> dict[str, Any]:
    """The settings `journeys serve` gives uvicorn, besides host, port and workers."""
    return {
        "http": GuardedHttpTools,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": MAX_CONCURRENCY,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,  # if h11 is ever chosen
    }
