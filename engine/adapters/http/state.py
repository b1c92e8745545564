"""What every endpoint works with: one object, made by ``create_app`` and kept on the app.

An endpoint reaches it with ``state_of(request)`` (the hot ones, which take the request) or
the ``served`` dependency. Nothing in it is per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from engine.adapters.execution.keeper import Keeper
from engine.adapters.http.off_loop import OffLoop
from engine.adapters.http.signed_identity import SignedIdentity
from engine.adapters.http.tokens import Tokens
from engine.adapters.sql.store import SERVER_THREADS
from engine.definitions.library import Library
from engine.sessions.ratelimit import Limiter
from engine.sessions.service import Sessions, SessionStore

T = TypeVar("T")


class DatabaseThreads:
    """Database work runs on a few threads of our own, each with its own connection: more
    only queue for the GIL (or SQLite's one writer), and a hop through OffLoop costs a third
    of one through asyncio's executor (off_loop.py). Everything else runs on the event loop.
    (Made again if the app is started again after a stop, as test clients do.)"""

    def __init__(self) -> None:
        self._pool: OffLoop | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            self._pool = OffLoop(SERVER_THREADS, "journeys-db")
        return await self._pool.run(work, *args)

    def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()


@dataclass
class AppState:
    library: Library
    store: SessionStore
    sessions: Sessions
    tokens: Tokens  # self-care tokens
    agent_keys: dict[str, str]  # key -> role (agent or supervisor)
    limiter: Limiter  # the rate limits (engine/sessions/ratelimit.py)
    signed_identity: SignedIdentity | None  # None: no signed identity is accepted
    backoffice: Keeper | None  # None: nothing to start, always ready
    retry_interval: float | None = (
        None  # None: JOURNEYS_RETRY_INTERVAL (engine/sessions/retry_loop.py)
    )
    on_close: Callable[[], None] | None = None  # when the server stops
    threads: DatabaseThreads = field(default_factory=DatabaseThreads)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.journeys
    return state


async def served(request: Request) -> AppState:
    """The app's state, as a dependency."""
    return state_of(request)
