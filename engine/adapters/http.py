"""The HTTP API (FastAPI): sessions, journeys and motives for the console, CRMs, IVRs, bots.

Endpoints are thin: they authenticate, parse, call the ``Sessions`` service and shape the
answer. Errors are RFC 9457 problem details. Who may do what:
- agents present a bearer key from ``JOURNEYS_AGENT_KEYS`` (``key:role`` pairs, comma
  separated; role agent or supervisor); with no key configured only loopback clients are
  served, as agents;
- a self-care customer presents the token returned when their session was created: it opens
  that session alone, for the steps whose roles include ``customer``; a step for agents only
  is handed over (shown as ``waiting_for: agent`` with the contact code, listed in
  ``GET /v1/queue``) until an agent has answered it. The session stays on the ``selfcare``
  channel unless an agent continues it;
- a self-care customer is anonymous until proven (engine/identity.py): by the signed
  identity the company's site hands over at the start (``identity``, see signed_identity.py),
  or by the one-time code the identify journey sends. Until then no action reads or changes
  a customer's account (docs/selfcare-identity.md).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import os
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actions.registry import account_actions, catalogue
from engine.adapters.http_limits import limit, too_many
from engine.adapters.keeper import BackofficeStarting, Keeper
from engine.adapters.signed_identity import IdentityError, IdentityUnavailable, SignedIdentity
from engine.adapters.sql_store import SERVER_THREADS
from engine.errors import (
    Conflict,
    InvalidAnswer,
    MissingInput,
    NotReady,
    SessionError,
    UnknownSession,
)
from engine.identity import CUSTOMER, IdentityGate
from engine.library import Library, LibraryError, refusals
from engine.ratelimit import Limited, Limiter, rates_from_environment
from engine.report import Report
from engine.retry_loop import RetryLoop, interval_from_environment
from engine.runtime import Session, current_step
from engine.service import ActionExecutor, Sessions, SessionStore

T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)

MAX_BODY = 64_000  # bytes: an answer never needs more
TOKEN_LIFETIME = 7 * 24 * 3600  # a self-care link stays valid a week

#: What a self-care customer reads when the journey waits for an agent, by locale.
HANDOVER = {
    "en": "An agent will continue from here: nothing you told us is lost. If you call us, "
    "give this code: {code}. This page goes on by itself when it is your turn again.",
    "fr": "Un conseiller va prendre la suite : rien de ce que vous nous avez dit n'est perdu. "
    "Si vous nous appelez, donnez ce code : {code}. Cette page continue d'elle-même quand "
    "c'est de nouveau à vous.",
}

#: What a self-care customer reads while the back office does not answer (an incident): their
#: request is kept and goes on by itself; never the technical reason, never a business answer.
KEPT = {
    "en": "Our systems are slow to answer just now. Your request is kept: nothing you told us "
    "is lost, and it goes on by itself as soon as they are back. You can leave this page open "
    "or come back later. If you call us, give this code: {code}.",
    "fr": "Nos systèmes tardent à répondre en ce moment. Votre demande est conservée : rien de "
    "ce que vous nous avez dit n'est perdu, et elle reprendra d'elle-même dès leur retour. "
    "Vous pouvez laisser cette page ouverte ou revenir plus tard. Si vous nous appelez, donnez "
    "ce code : {code}.",
}


class Problem(Exception):
    """A problem detail; ``extra`` holds its extension members (RFC 9457, section 3.2)."""

    def __init__(
        self, status: int, title: str, detail: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.extra = extra or {}


def _problem(
    status: int,
    title: str,
    detail: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
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
            await _problem(
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


class FastJSON(Response):
    """JSON encoded by orjson (as Starlette's JSONResponse writes it: UTF-8, compact), in a
    tenth of the time of the standard library's encoder."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _problem_of(errors: Sequence[Any]) -> str:
    """The first validation error, as a person reads it: ``where: what``."""
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    what = str(first.get("msg", "invalid body"))
    return f"{where}: {what}" if where else what


#: The names of this machine on loopback, as a client address or in a Host header.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _host_name(host: str) -> str:
    """The name of a Host header, without its port: ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _is_json(kind: bytes) -> bool:
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


def _too_large(size: str) -> JSONResponse:
    return _problem(413, "Body too large", f"the body is {size}; the limit is {MAX_BODY}")


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


# ------------------------------------------------------------------------ bodies


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    journey: str | None = Field(None, description="A journey id (or give a motive).")
    motive: str | None = Field(None, description="A motive id of the catalogue.")
    channel: str | None = Field(None, max_length=40)
    inputs: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(None, max_length=10)
    customer_id: str | None = Field(None, max_length=200)
    identity: str | None = Field(
        None,
        max_length=8000,
        description="Self-care: the signed identity (a JWT) the company's site hands over "
        "for its logged-in customer; the customer number is then its own.",
    )


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: str = Field(..., max_length=400)
    value: Any = None
    seq: int | None = None


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(..., max_length=200, description="An event type, e.g. order.delayed.")
    data: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(None, max_length=10)


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str | None = Field(None, max_length=40)


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HandOffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="The queue that finishes the contact (default: backoffice).",
    )


def parse_body(model: type[B], raw: bytes) -> B:
    """The body of a hot endpoint, read by pydantic straight from its bytes (one pass in
    Rust, where FastAPI's body dependency decodes the JSON in Python, then validates)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise Problem(422, "Invalid request", _problem_of(err.errors())) from None


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of a body that an endpoint parses itself (parse_body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class Health(BaseModel):
    status: Literal["ok"] = Field(description="The API answers.")
    backoffice: Literal["ready", "starting", "down"] = Field(
        description="The back office that runs the actions: ready; starting (an action asked "
        "for now is answered 503 with Retry-After); or down (the next action starts it again)."
    )


class ReportQuery:
    """The filters of a report, as query parameters (the options of `journeys report`)."""

    def __init__(
        self,
        since: str | None = None,
        until: str | None = None,
        motive: str | None = None,
        journey: str | None = None,
        window: int = Query(7, ge=0, le=365),
        idle: int = Query(30, ge=0, le=525_600),
    ) -> None:
        self.since, self.until, self.motive, self.journey = since, until, motive, journey
        self.window, self.idle = window, idle


# ------------------------------------------------------------------------ identity


@dataclass(frozen=True)
class Caller:
    role: str  # agent, supervisor or customer
    name: str
    session: str | None = None  # a customer's own session


class Tokens:
    """Self-care tokens: an HMAC of the session id and an expiry; nothing stored, unguessable."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def issue(self, session_id: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + TOKEN_LIFETIME)
        return f"{expires}.{self._sign(session_id, expires)}"

    def check(self, token: str, session_id: str, now: float | None = None) -> bool:
        expires_text, _, signature = token.partition(".")
        # ASCII only: "²".isdigit() is true but int("²") fails, and compare_digest refuses
        # non-ASCII text; a malformed token is simply not valid (401/403), never a 500.
        if not (Tokens.looks_like(token) and len(expires_text) <= 12):
            return False
        if int(expires_text) < (now or time.time()):
            return False
        return hmac.compare_digest(signature, self._sign(session_id, int(expires_text)))

    @staticmethod
    def looks_like(credential: str) -> bool:
        """Whether a credential has the shape of a session token (which it opens, if any,
        only the path can tell)."""
        expires, _, signature = credential.partition(".")
        return (
            credential.isascii()
            and expires.isdigit()
            and len(signature) == 40
            and signature.isalnum()
        )

    def _sign(self, session_id: str, expires: int) -> str:
        return hmac.new(
            self.secret, f"{session_id}.{expires}".encode(), hashlib.sha256
        ).hexdigest()[:40]


def server_secret(home: Path) -> bytes:
    """JOURNEYS_SECRET, or a secret made once and kept in the data folder (mode 0600)."""
    configured = os.environ.get("JOURNEYS_SECRET")
    if configured:
        return configured.encode()
    path = home / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip().encode()


def agent_keys() -> dict[str, str]:
    keys = {}
    for pair in os.environ.get("JOURNEYS_AGENT_KEYS", "").split(","):
        key, _, role = pair.strip().partition(":")
        if key:
            keys[key] = role if role in ("agent", "supervisor") else "agent"
    return keys


# ---------------------------------------------------------------------- the app


def _fold(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c)
    )


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
    signed = SignedIdentity.from_environment()
    tokens = Tokens(server_secret(home))
    keys = agent_keys()
    limiter = Limiter(rates_from_environment())

    # Database work runs on a few threads of our own, each with its own connection: more only
    # queue for the GIL (or SQLite's one writer), and asyncio's executor costs a fraction of
    # what a hop through anyio's thread pool does. Everything else runs on the event loop.
    # (Made again if the app is started again after a stop, as test clients do.)
    threads: list[ThreadPoolExecutor] = []

    async def off_loop(work: Callable[..., T], *args: Any) -> T:
        if not threads:
            threads.append(ThreadPoolExecutor(SERVER_THREADS, thread_name_prefix="journeys-db"))
        return await asyncio.get_running_loop().run_in_executor(threads[0], work, *args)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What is loaded by now (library, frameworks) lives as long as the server: out of the
        # garbage collector's sight, a full collection no longer stalls every request ~90 ms.
        gc.collect()
        gc.freeze()
        retries = RetryLoop(
            sessions, interval_from_environment() if retry_interval is None else retry_interval
        ).start()
        yield
        retries.stop()
        if threads:
            threads.pop().shutdown(wait=True)
        if on_close:
            on_close()

    app = FastAPI(
        title="journeys",
        version="1",
        description="Guided resolution journeys: once and done.",
        lifespan=lifespan,
    )
    app.add_middleware(Edge)
    app.state.limiter = limiter  # for every endpoint's limit, e.g. "otp" (engine/ratelimit.py)
    app.add_exception_handler(Limited, too_many)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem(exc.status, exc.title, exc.detail, str(request.url.path), exc.extra)

    @app.exception_handler(SessionError)
    async def on_runtime(request: Request, exc: SessionError) -> JSONResponse:
        # Those an endpoint does not name itself, e.g. the database unavailable (503).
        title = "Service unavailable" if exc.http_status == 503 else "Cannot do this"
        return _problem(exc.http_status, title, exc.message, str(request.url.path))

    @app.exception_handler(BackofficeStarting)
    async def on_starting(request: Request, exc: BackofficeStarting) -> JSONResponse:
        # Said at once, never waited for: the client tries again (the console does by itself).
        extra = {"backoffice": "starting", "retry_after": exc.retry_after}
        response = _problem(503, "Back office starting", exc.message, str(request.url.path), extra)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.get("/v1/health", response_model=Health)
    async def health() -> dict[str, str]:
        """Whether the API answers, and whether the back office (the processes that run the
        actions) is ready, starting, or down (started again by the next action). For anyone:
        it tells nothing else."""
        state = await off_loop(backoffice.state) if backoffice else "ready"
        return {"status": "ok", "backoffice": state}

    @app.exception_handler(OperationalError)
    async def on_database(request: Request, exc: OperationalError) -> JSONResponse:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no reason given"
        return _problem(
            503,
            "Service unavailable",
            f"the session database cannot be used just now ({reason}); try again",
            str(request.url.path),
        )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(422, "Invalid request", _problem_of(exc.errors()), str(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(
            exc.status_code, "Not found" if exc.status_code == 404 else "Error", str(exc.detail)
        )

    async def caller(request: Request) -> Caller:
        return identify(request)

    def identify(request: Request) -> Caller:
        """Who calls: an agent key, a session token, or (with no key configured) this machine."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential:
            if credential in keys:
                return Caller(
                    keys[credential], f"key:{hashlib.sha256(credential.encode()).hexdigest()[:8]}"
                )
            session_id = request.path_params.get("session_id")
            if session_id and tokens.check(credential, session_id):
                return Caller("customer", "customer", session_id)
            if not session_id and Tokens.looks_like(credential):
                raise Problem(
                    403,
                    "Forbidden",
                    f"a session token opens its own session only; {request.url.path} is for "
                    "agents (give an agent key)",
                )
            raise Problem(
                401,
                "Unauthorized",
                "this key or token is not valid here (expired, forged, or for another session)",
            )
        if keys:
            if request.method == "POST" and request.url.path == "/v1/sessions":
                limit(limiter, "start", request)  # anyone may start one: not without end
                return Caller("customer", "customer")  # self-care: anyone may start a session
            raise Problem(
                401,
                "Unauthorized",
                "give an agent key or a session token: Authorization: Bearer ...",
            )
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
            raise Problem(
                403,
                "Forbidden",
                "no agent key is configured, so only this machine may call the API",
            )
        # DNS rebinding: a site whose name is pointed at 127.0.0.1 makes its pages the same
        # origin as this server in the browser; its name is still in the Host header.
        name = request.headers.get("host", "")
        if _host_name(name) not in LOOPBACK:
            raise Problem(
                403,
                "Forbidden",
                f"no agent key is configured, so only requests addressed to this machine by a "
                f"loopback name are served (Host 127.0.0.1, localhost or [::1], not {name!r}); "
                "set JOURNEYS_AGENT_KEYS to serve under other names",
            )
        return Caller("agent", "local agent")

    def load(session_id: str, who: Caller) -> Session:
        if who.role == "customer" and who.session != session_id:
            raise Problem(403, "Forbidden", "a session token opens its own session only")
        try:
            return sessions.get(session_id)
        except UnknownSession:
            raise Problem(404, "No such session", f"there is no session {session_id!r}") from None

    def view(session: Session, customer: bool = False) -> dict[str, Any]:
        """The session as shown; to a ``customer``, a step that waits for an agent shows
        the hand-over (message and contact code), not the agent's question."""
        bundle = sessions.bundle_of(session)
        return {
            "id": session.id,
            "journey": session.journey,
            "version": session.version,
            "status": session.status,
            "outcome": session.outcome,
            "seq": session.seq,
            "channel": session.channel,
            "contact": session.contact_id,
            "step": _held(
                _handed_over(current_step(bundle.definitions, session), session, customer),
                session,
                customer,
            ),
        }

    console = Path(__file__).resolve().parent / "console"
    app.mount("/console", StaticFiles(directory=console), name="console")

    @app.get("/", include_in_schema=False)
    def agent_page() -> FileResponse:
        """The agent console (plain HTML and JavaScript: works offline, no CDN)."""
        return FileResponse(console / "agent.html")

    @app.get("/selfcare", include_in_schema=False)
    def selfcare_page() -> FileResponse:
        """The self-care page: the same journeys, in the customer's role."""
        return FileResponse(console / "selfcare.html")

    # The hot endpoints (a session's start and its answers) take the request itself: they
    # identify the caller, parse the body with pydantic and encode the answer with orjson.
    # FastAPI's dependency solving, body decoding and response validation cost a third of the
    # server's time per step (bench/serving.py); the OpenAPI description is the same.

    @app.post("/v1/sessions", status_code=201, openapi_extra=documented_body(StartBody))
    async def start(request: Request) -> FastJSON:
        who = identify(request)
        body = parse_body(StartBody, await request.body())
        return FastJSON(await off_loop(_start, body, who), status_code=201)

    def _start(body: StartBody, who: Caller) -> dict[str, Any]:
        name = body.journey or body.motive
        if not name:
            raise Problem(422, "Invalid request", "give 'journey' or 'motive'")
        inputs = dict(body.inputs)
        if body.customer_id and "customer_id" not in inputs:
            inputs["customer_id"] = body.customer_id
        channel = _start_channel(body.channel, who)
        identity = _start_identity(body.identity, inputs, channel, who, signed)
        try:
            session = sessions.start(
                name,
                inputs,
                channel=channel,
                locale=body.locale,
                actor=who.name,
                # Self-care is performed by the customer, whoever opened the page.
                role=CUSTOMER if channel == "selfcare" else who.role,
                identity=identity,
            )
        except LibraryError as err:
            raise Problem(404, "No such journey", str(err)) from None
        except MissingInput as err:
            raise Problem(422, "Invalid inputs", err.message) from None
        except NotReady:
            raise  # its own handler: 503 with Retry-After
        except SessionError as err:
            raise Problem(err.http_status, "Cannot start", err.message) from None
        # A self-care session is shown as its customer sees it (on loopback without agent
        # keys the page that starts it is served as an agent).
        shown = view(session, who.role == "customer" or session.channel == "selfcare")
        return {**shown, "token": tokens.issue(session.id)}

    @app.post("/v1/sessions/{session_id}/answers", openapi_extra=documented_body(AnswerBody))
    async def answer(session_id: str, request: Request) -> FastJSON:
        who = identify(request)
        body = parse_body(AnswerBody, await request.body())
        return FastJSON(await off_loop(_answer, session_id, body, who, request))

    def _answer(session_id: str, body: AnswerBody, who: Caller, request: Request) -> dict[str, Any]:
        if who.role == "customer":  # an agent's answer needs no extra read: the step checks it
            session = load(session_id, who)
            if session.identity is None:  # a customer number or a one-time code: not guessed
                limit(limiter, "otp", request, session.id)
            step = current_step(sessions.bundle_of(session).definitions, session)
            if step and "customer" not in step.get("roles", ["customer"]):
                raise Problem(
                    403,
                    "Forbidden",
                    f"the session is waiting for an agent at step {step['node']!r}; an agent "
                    f"continues it (contact code {session.contact_id!r}, to give if you call)",
                    {"waiting_for": "agent", "contact": session.contact_id},
                )
        try:
            session = sessions.answer(
                session_id, body.node, body.value, seq=body.seq, actor=who.name, role=who.role
            )
        except UnknownSession:
            raise Problem(404, "No such session", f"there is no session {session_id!r}") from None
        except InvalidAnswer as err:
            raise Problem(422, "Invalid answer", err.message) from None
        except Conflict as err:
            raise Problem(409, "Conflict", err.message) from None
        except NotReady:
            raise  # its own handler: 503 with Retry-After
        except SessionError as err:
            raise Problem(err.http_status, "Cannot answer", err.message) from None
        return view(session, who.role == "customer")

    @app.get("/v1/sessions/{session_id}")
    async def read(session_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        return await off_loop(_read, session_id, who)

    def _read(session_id: str, who: Caller) -> dict[str, Any]:
        session = load(session_id, who)
        customer = who.role == "customer"
        transcript, runs = store.events(session_id), store.runs(session_id)
        if customer:  # a system's failure (its hosts, its errors) is the agents' business
            transcript = [{k: v for k, v in e.items() if k != "failure"} for e in transcript]
            runs = [{**r, "error": None} if r["status"] == "failed" else r for r in runs]
        return {
            **view(session, customer),
            "context": session.context,
            "path": session.path,
            "transcript": transcript,
            "actions": runs,
            "handoff": session.handoff,
            "error": session.error,
            **_troubles(session, store, customer),
        }

    @app.post("/v1/sessions/{session_id}/resume")
    async def resume(
        session_id: str, body: ResumeBody, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        return await off_loop(_resume, session_id, body, who)

    def _resume(session_id: str, body: ResumeBody, who: Caller) -> dict[str, Any]:
        load(session_id, who)
        if who.role == CUSTOMER and body.channel not in (None, "selfcare"):
            raise Problem(
                403,
                "Forbidden",
                f"a self-care session stays on the selfcare channel; an agent continues it on "
                f"{body.channel!r} (give them the contact code)",
            )
        try:
            session = sessions.resume(session_id, body.channel, actor=who.name)
        except Conflict as err:
            raise Problem(409, "Conflict", err.message) from None
        return {**view(session, who.role == "customer"), "context": session.context}

    @app.post("/v1/sessions/{session_id}/retry")
    async def retry(
        session_id: str, body: RetryBody | None = None, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        """Run the failed action of an incident again now (agents only; same idempotency key,
        so the back office never acts twice): the session goes on where it was, or stays an
        incident with its next automatic retry. 409 when the session is not in an incident."""
        return await off_loop(_incident_event, session_id, who, "retry", None)

    @app.post("/v1/sessions/{session_id}/handoff")
    async def hand_off(
        session_id: str, body: HandOffBody | None = None, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        """Give up on an incident for this contact (agents only): the session ends, escalated,
        in the back-office queue (or ``queue``) with its whole context, to be finished there.
        409 when the session is not in an incident."""
        queue = body.queue if body else None
        return await off_loop(_incident_event, session_id, who, "handoff", queue)

    def _incident_event(
        session_id: str, who: Caller, what: str, queue: str | None
    ) -> dict[str, Any]:
        if who.role == "customer":
            raise Problem(403, "Forbidden", "an agent retries or hands off an incident")
        session = load(session_id, who)
        if session.status != "incident":
            raise Problem(
                409,
                "No incident",
                f"session {session_id!r} is not held by an incident (it is {session.status}); "
                "only an incident can be retried or handed off",
                {"status": session.status},
            )
        try:
            if what == "retry":
                session = sessions.retry(session_id, actor=who.name)
            else:
                session = sessions.hand_off(session_id, actor=who.name, queue=queue)
        except Conflict as err:  # the retry loop or another agent got there first
            raise Problem(409, "Conflict", err.message) from None
        return {**view(session), "incident": session.incident, "handoff": session.handoff}

    @app.get("/v1/contacts/{code}")
    async def contact(code: str, request: Request, who: Caller = Depends(caller)) -> dict[str, Any]:
        """The session a customer's contact code points at (agents only): the one to continue."""
        if who.role != "customer":  # codes are short: guessing them is limited
            limit(limiter, "contact", request, who.name)
        return await off_loop(_contact, code, who)

    def _contact(code: str, who: Caller) -> dict[str, Any]:
        if who.role == "customer":
            raise Problem(403, "Forbidden", "contact codes are for agents")
        found = store.contact_sessions(code.strip().upper())
        if not found:
            raise Problem(
                404,
                "No such contact",
                f"no contact has the code {code!r}; check it with the customer",
            )
        waiting = [s for s in found if not s.finished]
        return view((waiting or found)[0])

    @app.get("/v1/queue")
    async def queue(who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        """The self-care sessions waiting at a step for an agent (agents only), the longest
        waiting first: an agent opens one with its contact code and continues it."""
        return await off_loop(_queue, who)

    def _queue(who: Caller) -> list[dict[str, Any]]:
        if who.role == "customer":
            raise Problem(403, "Forbidden", "the queue is for agents")
        return [
            {
                "id": row["id"],
                "journey": row["journey"],
                "node": row["node"],
                "contact": row["contact_id"],
                "customer_id": row["customer_id"],
                "waiting_since": row["waiting_since"],
            }
            for row in sessions.agent_queue("selfcare")
        ]

    @app.get("/v1/reports/kpis")
    async def kpis(query: ReportQuery = Depends(), who: Caller = Depends(caller)) -> dict[str, Any]:
        """The insight report (once-and-done rate, CES, NPS, funnels, prevalence) of the
        sessions started in [since, until]: the figures of `journeys report --format json`."""
        report = await off_loop(_report, query, who)
        return report.as_dict()

    @app.get("/report", include_in_schema=False)
    async def report_page(
        query: ReportQuery = Depends(), who: Caller = Depends(caller)
    ) -> HTMLResponse:
        """The report page of the console: the same page as `journeys report --format html`."""
        from engine.adapters.report_html import render_html

        report = await off_loop(_report, query, who)
        page = await off_loop(render_html, report, library, "", True)
        return HTMLResponse(page)

    def _report(query: ReportQuery, who: Caller) -> Report:
        from engine.adapters.reporting import ReportError, report_for
        from engine.adapters.sql_store import SqlStore

        if who.role == "customer":
            raise Problem(403, "Forbidden", "reports are for agents and supervisors")
        if not isinstance(store, SqlStore):
            raise Problem(501, "Not available", "reports need the SQL session store")
        try:
            return report_for(
                store,
                library,
                since=query.since or None,
                until=query.until or None,
                motive=query.motive or None,
                journey=query.journey or None,
                window_days=query.window,
                idle_minutes=query.idle,
            )
        except ReportError as err:
            raise Problem(422, "Invalid report request", str(err)) from None

    @app.post("/v1/events")
    async def raise_event(body: EventBody, who: Caller = Depends(caller)) -> dict[str, Any]:
        """A back-office event: the outbound sessions its triggers start (motives.yaml)."""
        return await off_loop(_raise_event, body, who)

    def _raise_event(body: EventBody, who: Caller) -> dict[str, Any]:
        from engine.triggers import TriggerError, start_outbound

        if who.role == "customer":
            raise Problem(403, "Forbidden", "events come from the back office, with an agent key")
        try:
            started, nothing = start_outbound(
                sessions, body.event, body.data, as_text=False, locale=body.locale
            )
        except (TriggerError, SessionError) as err:
            raise Problem(422, "Invalid event", getattr(err, "message", str(err))) from None
        return {
            "event": body.event,
            "message": nothing,
            "sessions": [{**view(s), "token": tokens.issue(s.id)} for s in started],
        }

    @app.get("/v1/journeys")
    async def journeys(who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        return [
            {"id": j.id, "version": j.version, "title": j.title, "motives": list(j.motives)}
            for j in sorted(library.journeys.values(), key=lambda j: j.id)
        ]

    @app.get("/v1/journeys/{journey_id}")
    async def journey(journey_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        j = library.journeys.get(journey_id)
        if j is None:
            raise Problem(404, "No such journey", f"there is no journey {journey_id!r}")
        return {
            "id": j.id,
            "version": j.version,
            "title": j.title,
            "start": j.start,
            "nodes": [{"id": n.id, "kind": n.kind} for n in j.nodes.values()],
            "edges": [
                {"from": e.source, "to": e.target, "via": e.via}
                for n in j.nodes.values()
                for e in n.edges()
            ],
        }

    @app.get("/v1/motives")
    async def motives(who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        return [_motive(m) for m in library.motives.values()]

    @app.get("/v1/motives/suggest")
    async def suggest(q: str = "", who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        words = {w for w in _fold(q).replace("'", " ").split() if len(w) > 2}
        text = _fold(q)
        scored = []
        for m in library.motives.values():
            vocabulary = [_fold(k) for k in m.keywords] + [_fold(t) for t in _titles(m.title)]
            score = sum(3 for phrase in vocabulary if " " in phrase and phrase in text)
            score += sum(1 for phrase in vocabulary for w in words if w in phrase.split())
            if score:
                scored.append((score, m.id, m))
        return [
            {**_motive(m), "score": s}
            for s, _id, m in sorted(scored, key=lambda x: (-x[0], x[1]))[:5]
        ]

    return app


def _handed_over(
    step: dict[str, Any] | None, session: Session, customer: bool
) -> dict[str, Any] | None:
    """A step the customer may not answer says so (``waiting_for: agent`` and the contact
    code); shown to the customer, it is the hand-over message instead of the question."""
    if step is None or session.status != "waiting" or "customer" in step.get("roles", ()):
        return step
    code = session.contact_id or ""
    if not customer:
        return {**step, "waiting_for": "agent", "contact": code}
    language = (session.locale or "en").split("-")[0].lower()
    message = HANDOVER.get(language, HANDOVER["en"]).format(code=code)
    return {
        "node": step["node"],
        "kind": step["kind"],
        "text": message,
        "messages": step["messages"],
        "roles": step["roles"],
        "waiting_for": "agent",
        "contact": code,
    }


def _start_channel(channel: str | None, who: Caller) -> str | None:
    """The channel a session starts on: a self-care customer's is ``selfcare``, always (the
    channel decides who performs the steps; an agent's channel is for agents)."""
    if who.role != CUSTOMER:
        return channel
    if channel not in (None, "selfcare"):
        raise Problem(
            403,
            "Forbidden",
            f"a self-care customer starts on the selfcare channel, not {channel!r}; "
            "the other channels are for agents (give an agent key)",
        )
    return "selfcare"


def _start_identity(
    token: str | None,
    inputs: dict[str, Any],
    channel: str | None,
    who: Caller,
    signed: SignedIdentity | None,
) -> dict[str, Any] | None:
    """Who the customer of a new session is proven to be, if anyone: the signed identity
    handed over (its number replaces any other), or the customer an agent starts a
    self-care session for. A self-care customer's own number is only a claim: the identify
    journey has them prove it."""
    if token is not None:
        if signed is None:
            raise Problem(
                422,
                "Invalid request",
                "identity: this server accepts no signed identity (JOURNEYS_IDENTITY_KEY or "
                "JOURNEYS_IDENTITY_JWKS is not set); start without it",
            )
        try:
            identity = signed.check(token)
        except IdentityUnavailable as err:
            raise Problem(503, "Service unavailable", str(err)) from None
        except IdentityError as err:
            raise Problem(401, "Unauthorized", f"identity: {err}") from None
        claimed = inputs.get("customer_id")
        if claimed is not None and claimed != identity["customer_id"]:
            raise Problem(
                403,
                "Forbidden",
                f"the customer number given ({claimed!r}) is not the one of the signed identity",
            )
        inputs["customer_id"] = identity["customer_id"]
        return identity
    customer = inputs.get("customer_id")
    if who.role != CUSTOMER and channel == "selfcare" and isinstance(customer, str):
        return {"customer_id": customer, "by": "agent"}  # the agent vouches for the customer
    return None


def _held(step: dict[str, Any] | None, session: Session, customer: bool) -> dict[str, Any] | None:
    """An incident shown to the customer: a calm message that the request is kept and goes
    on by itself, with the contact code; never the technical reason (agents see it)."""
    if step is None or step.get("kind") != "incident" or not customer:
        return step
    language = (session.locale or "en").split("-")[0].lower()
    code = session.contact_id or ""
    return {
        "node": step["node"],
        "kind": "incident",
        "text": KEPT.get(language, KEPT["en"]).format(code=code),
        "messages": step["messages"],
        "retry_at": step.get("retry_at"),
        "contact": code,
    }


def _troubles(session: Session, store: SessionStore, customer: bool) -> dict[str, Any]:
    """What went wrong technically, for the agent: the incident holding the session (what
    failed, since when, tries, next retry) and the background actions that failed (never the
    outcome's business, but a promise to keep: `journeys runs retry` runs one again)."""
    if customer:
        held = session.incident
        kept = {"since": held.get("since"), "retry_at": held.get("retry_at")} if held else None
        return {"incident": kept}
    return {"incident": session.incident, "failed_actions": store.failed_runs(session.id)}


def _titles(title: Any) -> list[str]:
    return [title] if isinstance(title, str) else list(title.values())


def _motive(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "title": m.title,
        "category": m.category,
        "journey": m.journey,
        "keywords": list(m.keywords),
    }


def app_from_environment() -> FastAPI:
    """The app `journeys serve` runs (uvicorn factory): library, database and executor from
    the environment (JOURNEYS_LIBRARY, JOURNEYS_DB, JOURNEYS_EXECUTOR, JOURNEYS_HOME)."""
    from actions.registry import ledger
    from engine.adapters.executors import LazyExecutor
    from engine.adapters.home import journeys_home
    from engine.adapters.keeper import GatedExecutor
    from engine.adapters.sql_store import SqlStore, default_url

    home = journeys_home()
    from engine.shipped import default_library

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
