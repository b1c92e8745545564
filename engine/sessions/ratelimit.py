"""Rate limits: token buckets by limit name and key (a client address, a token, an agent key).

What an anonymous caller can repeat is limited: starting self-care sessions, asking for and
checking one-time codes, looking up contact codes. Each *named limit* allows a burst of
``count`` calls per key, refilled evenly over ``seconds``; a call over it is refused with the
seconds after which one more would pass (the HTTP adapter answers 429 with ``Retry-After``).
The buckets live in the process: with several server processes each counts its own callers,
so a limit is per process (documented in SECURITY.md). Knows nothing of HTTP.

Configured by ``JOURNEYS_RATE_LIMITS``: ``name=COUNT/SECONDS`` pairs, comma separated, that
replace the defaults they name (``start=60/60,otp=3/300``), a ``COUNT`` of 0 for no limit
(``otp=0``), or ``off`` for none at all (load tests).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.errors import DefinitionError, SessionError


@dataclass(frozen=True)
class Rate:
    count: int  # calls allowed at once (the bucket's size)
    seconds: float  # the time in which that many are given back

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds:g} s"


#: The named limits and their defaults. Another part may add a name of its own (``limit()``
#: of an unknown name passes, so a limit is only ever configured, never needed).
DEFAULTS: Mapping[str, Rate] = {
    # Self-care session starts by a caller without key or token, per client address.
    "start": Rate(30, 60),
    # Answers of a self-care customer not proven yet (their number, the one-time code they
    # were sent), per client address and per session: numbers and codes are not guessed. The
    # back office bounds codes too (5 tries a code, 5 codes an hour: docs/selfcare-identity.md).
    "otp": Rate(10, 600),
    # Contact-code lookups by agents, per agent key and per client address: guessing codes.
    "contact": Rate(120, 60),
}
ENVIRONMENT = "JOURNEYS_RATE_LIMITS"
_MAX_KEYS = 100_000  # buckets kept per limit; full ones are forgotten first


class RateLimitSettingError(DefinitionError, ValueError):
    """``JOURNEYS_RATE_LIMITS`` cannot be read: what is wrong and what is allowed."""


class Limited(SessionError):
    """Over a limit: nothing was done. ``retry_after`` is in whole seconds (at least 1)."""

    def __init__(self, name: str, rate: Rate, retry_after: int) -> None:
        super().__init__(
            f"too many requests of this kind ({name!r}: at most {rate} from one caller); "
            f"try again in {retry_after} s"
        )
        self.name = name
        self.rate = rate
        self.retry_after = retry_after


class Limiter:
    """Token buckets for each named limit and key; safe to share between threads."""

    def __init__(
        self,
        rates: Mapping[str, Rate] = DEFAULTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = {name: rate for name, rate in rates.items() if rate.count > 0}
        self._clock = clock
        self._lock = threading.Lock()
        # name -> key -> (tokens left, when counted); a dict keeps the oldest first.
        self._buckets: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in self.rates}

    def take(self, name: str, *keys: str) -> None:
        """One call of kind ``name`` by each of ``keys`` (e.g. the address and the token), or
        :class:`Limited` when one of them is over: then none is counted."""
        rate = self.rates.get(name)
        if rate is None or not keys:
            return
        refill = rate.count / rate.seconds
        with self._lock:
            buckets = self._buckets[name]
            now = self._clock()
            levels = []
            for key in keys:
                tokens, then = buckets.get(key, (float(rate.count), now))
                tokens = min(float(rate.count), tokens + (now - then) * refill)
                if tokens < 1.0:
                    raise Limited(name, rate, max(1, math.ceil((1.0 - tokens) / refill)))
                levels.append((key, tokens))
            for key, tokens in levels:
                buckets.pop(key, None)  # moved to the end: the most recently seen
                buckets[key] = (tokens - 1.0, now)
            if len(buckets) > _MAX_KEYS:
                self._forget(buckets, rate, now)

    @staticmethod
    def _forget(buckets: dict[str, tuple[float, float]], rate: Rate, now: float) -> None:
        """Keep memory bounded: buckets refilled by now are as good as new, then the oldest."""
        refill = rate.count / rate.seconds
        for key, (tokens, then) in list(buckets.items()):
            if tokens + (now - then) * refill >= rate.count:
                del buckets[key]
        while len(buckets) > _MAX_KEYS:
            del buckets[next(iter(buckets))]


def rates_from_environment(text: str | None = None) -> dict[str, Rate]:
    """The limits ``JOURNEYS_RATE_LIMITS`` (or ``text``) asks for, over the defaults."""
    text = os.environ.get(ENVIRONMENT, "") if text is None else text
    if text.strip().lower() == "off":
        return {}
    rates = dict(DEFAULTS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        count, _, seconds = value.partition("/")
        try:
            rate = Rate(int(count), float(seconds or "nan"))
        except ValueError:
            rate = Rate(-1, 0)
        if not name.strip() or rate.count < 0 or not (0 < rate.seconds < math.inf):
            raise RateLimitSettingError(
                f"{ENVIRONMENT}: {part!r} is not a limit; write NAME=COUNT/SECONDS pairs, "
                f"comma separated (e.g. start=30/60,otp=5/600; COUNT 0 for no limit), or 'off'; "
                f"the limits are {', '.join(DEFAULTS)}"
            )
        rates[name.strip()] = rate
    return rates
