"""The app: its state, its routes (one table per concern), its error handlers and its edge."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from starlette.middleware import Middleware

from actions.registry import account_actions, catalogue
from engine.adapters.execution.keeper import Keeper
from engine.adapters.http import (
    agent_routes,
    console_routes,
    event_routes,
    library_routes,
    report_routes,
    session_routes,
)
from engine.adapters.http.auth import agent_keys
from engine.adapters.http.bodies import Health
from engine.adapters.http.edge import Edge
from engine.adapters.http.hot_routes import HotRoutes
from engine.adapters.http.problems import HANDLERS, Endpoint
from engine.adapters.http.signed_identity import SignedIdentity
from engine.adapters.http.state import AppState, served
from engine.adapters.http.tokens import Tokens, server_secret
from engine.definitions.library import Library, refusals
from engine.sessions.identity import IdentityGate
from engine.sessions.ratelimit import Limiter, rates_from_environment
from engine.sessions.retry_loop import RetryLoop, interval_from_environment
from engine.sessions.service import ActionExecutor, Sessions, SessionStore


async def health(state: AppState = Depends(served)) -> dict[str, str]:
    """Whether the API answers, and whether the back office (the processes that run the
    actions) is ready, starting, or down (started again by the next action). For anyone:
    it tells nothing else."""
    backoffice = state.backoffice
    ready = await state.threads.run(backoffice.state) if backoffice else "ready"
    return {"status": "ok", "backoffice": ready}


#: Every route, in the order they are matched (and described in OpenAPI).
ROUTES = [
    Endpoint("/v1/health", health, response_model=Health),
    *console_routes.ROUTES,
    *session_routes.ROUTES,
    *agent_routes.ROUTES,
    *report_routes.ROUTES,
    *event_routes.ROUTES,
    *library_routes.ROUTES,
]


def create_app(
    library: Library,
    store: SessionStore,
    executor: ActionExecutor,
    home: Path,
    on_close: Callable[[], None] | None = None,
    retry_interval: float | None = None,
    backoffice: Keeper | None = None,
) -> FastAPI:
    """The app; ``retry_interval``: seconds between two looks of the retry loop at the
    incidents due (None: ``JOURNEYS_RETRY_INTERVAL``, default 5; 0: no loop)."""
    # Journeys that `journeys validate` finds errors in are not started, as `journeys run`
    # refuses them (409, with the first error); `journeys serve` names them when it starts.
    actions = catalogue()
    sessions = Sessions(
        library,
        store,
        executor,
        refusals(library, actions),
        IdentityGate(**account_actions(actions)),
    )
    state = AppState(
        library=library,
        store=store,
        sessions=sessions,
        signed_identity=SignedIdentity.from_environment(),
        tokens=Tokens(server_secret(home)),
        agent_keys=agent_keys(),
        limiter=Limiter(rates_from_environment()),
        backoffice=backoffice,
        retry_interval=retry_interval,
        on_close=on_close,
    )
    app = FastAPI(
        title="journeys",
        version="1",
        description="Guided resolution journeys: once and done.",
        lifespan=lifespan,
        routes=ROUTES,
        exception_handlers=HANDLERS,
        # Edge outermost; inside it, start and answer served straight (hot_routes)
        middleware=[Middleware(Edge), Middleware(HotRoutes)],
    )
    app.state.journeys = state
    app.state.limiter = state.limiter  # for any endpoint's limit, e.g. "otp" (http/limits.py)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.journeys
    # What is loaded by now (library, frameworks) lives as long as the server: out of the
    # garbage collector's sight, a full collection no longer stalls every request ~90 ms.
    gc.collect()
    gc.freeze()
    interval = state.retry_interval
    retries = RetryLoop(
        state.sessions, interval_from_environment() if interval is None else interval
    ).start()
    yield
    retries.stop()
    state.threads.shutdown()
    if state.on_close:
        state.on_close()


def app_from_environment() -> FastAPI:
    """The app `journeys serve` runs (uvicorn factory): library, database and executor from
    the environment (JOURNEYS_LIBRARY, JOURNEYS_DB, JOURNEYS_EXECUTOR, JOURNEYS_HOME)."""
    from actions.registry import ledger
    from engine.adapters.execution.executors import LazyExecutor
    from engine.adapters.execution.keeper import GatedExecutor
    from engine.adapters.home import journeys_home
    from engine.adapters.sql.store import SqlStore, default_url
    from engine.definitions.shipped import default_library

    home = journeys_home()
    library = Library(Path(os.environ.get("JOURNEYS_LIBRARY") or default_library()))
    store = SqlStore(os.environ.get("JOURNEYS_DB") or default_url())
    executor = LazyExecutor(ledger=ledger())  # the back office the catalogue writes
    keeper = Keeper(executor.kind)  # `journeys serve` started it; this one watches
    return create_app(
        library,
        store,
        GatedExecutor(executor, keeper),
        home,
        on_close=store.dispose,
        backoffice=keeper,
    )
