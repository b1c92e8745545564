"""The time the engine records: now, unless a simulation says otherwise.

Everything that stamps a record (the service's events, the store's rows) asks here, so that
`journeys simulate` can write weeks of realistic history in a minute (``using``) while
sessions served for real carry the real time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("journeys_clock", default=None)


def now() -> datetime:
    """The current time (UTC, aware)."""
    clock = _clock.get()
    return clock() if clock else datetime.now(UTC)


def now_ms() -> int:
    """The current time in milliseconds since 1970: what reports compute with."""
    return to_ms(now())


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@contextmanager
def using(clock: Callable[[], datetime]) -> Iterator[None]:
    """Within the block (and this thread or task), ``now()`` is ``clock()``."""
    token = _clock.set(clock)
    try:
        yield
    finally:
        _clock.reset(token)
