"""The processes that serve: ``serve`` (the HTTP API and the consoles), ``worker`` (a Prefect
task worker for the actions) and ``prefect`` (the back office's processes)."""

from __future__ import annotations

import os
import sys

import click

from engine.adapters.cli.common import (
    DB_OPTION,
    EXECUTOR_OPTION,
    as_usage,
    command,
    group,
    open_library,
    refused,
    session_store,
)


@command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes (they share the session database).",
)
@DB_OPTION
@EXECUTOR_OPTION
@click.pass_context
def serve(
    ctx: click.Context, host: str, port: int, workers: int, db: str | None, executor_kind: str
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) on the library and the session database.

    The back office (the action host and the embedded Prefect server) is started in the
    background at once, and stopped with the server if it started it (GET /v1/health says
    when it is ready)."""
    import signal

    import uvicorn

    from engine.adapters.execution.keeper import Keeper
    from engine.adapters.http.connections import uvicorn_settings

    _check_settings(ctx, db, executor_kind)
    # What this server starts names it as its owner: it stops them when it stops, and they
    # keep running while it lives however long nobody asks for an action.
    os.environ["JOURNEYS_BACKOFFICE_OWNER"] = str(os.getpid())
    keeper = Keeper(executor_kind)
    keeper.start(after=lambda: _listening(host, port))
    if keeper.needed:
        click.echo("starting the back office in the background (GET /v1/health)", err=True)
    _signed_identity_said()
    click.echo(f"journeys API on http://{host}:{port} (OpenAPI: /openapi.json)", err=True)
    # SIGTERM ends the server as Ctrl-C does (uvicorn raises it again once it has shut down),
    # so that what it started is stopped below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            "engine.adapters.http:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            **uvicorn_settings(),  # bounded headers, request time, idle connections, concurrency
        )
    except KeyboardInterrupt:
        pass
    finally:
        if keeper.stop_started():
            click.echo("stopped the back office this server started", err=True)


def _check_settings(ctx: click.Context, db: str | None, executor_kind: str) -> None:
    """Say now, before serving, what would fail later: a missing library folder, a bad
    setting, a database that cannot be used; and what the server will not do. Hands the
    choices to the server processes through the environment."""
    from engine.adapters.home import idle_seconds
    from engine.adapters.http import agent_keys
    from engine.sessions.ratelimit import rates_from_environment
    from engine.sessions.retry_loop import interval_from_environment

    library = open_library(ctx)
    with as_usage(ValueError):  # JOURNEYS_RATE_LIMITS
        rates_from_environment()
    os.environ["JOURNEYS_LIBRARY"] = str(library.root.resolve())
    if db:
        os.environ["JOURNEYS_DB"] = db
    os.environ["JOURNEYS_EXECUTOR"] = executor_kind
    session_store(db).dispose()  # the tables created once
    with as_usage(ValueError):  # the incidents' retry loop runs in the server
        interval_from_environment()
    for _journey, reason in sorted(refused(library).items()):
        click.echo(f"not served: {reason}", err=True)
    if not agent_keys():
        click.echo(
            "no agent key configured (JOURNEYS_AGENT_KEYS): only this machine may call the API",
            err=True,
        )
    with as_usage(ValueError):  # JOURNEYS_BACKOFFICE_IDLE_SECONDS
        idle_seconds()


def _listening(host: str, port: int) -> bool:
    """Whether the server accepts connections on (host, port) yet."""
    import socket

    try:
        with socket.create_connection(
            ("127.0.0.1" if host in ("0.0.0.0", "") else host, port), 0.2
        ):
            return True
    except OSError:
        return False


def _signed_identity_said() -> None:
    """Say how self-care customers are identified (docs/selfcare-identity.md); a signed
    identity configured so that it cannot be safe is an error now (IdentityError)."""
    from engine.adapters.http.signed_identity import SignedIdentity

    signed = SignedIdentity.from_environment()
    if signed is None:
        click.echo(
            "self-care: customers prove their number with a one-time code (no signed identity "
            "configured: JOURNEYS_IDENTITY_KEY or JOURNEYS_IDENTITY_JWKS)",
            err=True,
        )
    else:
        click.echo(f"self-care: signed identities accepted from {signed.issuer}", err=True)


@command()
def worker() -> None:
    """Serve the back-office actions as a Prefect task worker (scale-out; Ctrl-C stops).

    Run as many as needed, on this machine or others pointed at the same PREFECT_API_URL;
    sessions use them with --executor workers (or JOURNEYS_EXECUTOR=workers).
    """
    from engine.adapters.execution.prefect_workers import serve_forever

    click.echo(
        "serving the back-office actions as Prefect task 'journeys.action' (Ctrl-C to stop)",
        err=True,
    )
    try:
        serve_forever()
    except KeyboardInterrupt:
        click.echo("worker stopped", err=True)


@group()
def prefect() -> None:
    """The back office's processes: the action host and the embedded Prefect server."""


def _megabytes(pid: int) -> str:
    from engine.adapters.processes import rss_bytes

    return f"{rss_bytes(pid) / 1e6:.0f} MB"


@prefect.command("status")
def prefect_status() -> None:
    """List the back office's processes (pid, address, memory) and where actions run."""
    from engine.adapters.execution.action_host import host_status
    from engine.adapters.execution.prefect_server import home, running, server_record
    from engine.adapters.home import idle_seconds

    record, health = host_status()
    if record and health:
        idle = health.get("idle_seconds") or 0
        click.echo(
            f"action host: pid {record['pid']}, {record['url']}, {health['state']}, "
            f"{_megabytes(int(record['pid']))}; "
            + (
                f"stops after {idle:.0f} s unused (JOURNEYS_BACKOFFICE_IDLE_SECONDS)"
                if idle
                else "never stops by itself (JOURNEYS_BACKOFFICE_IDLE_SECONDS=0)"
            )
        )
    else:
        click.echo("action host: not running (the first action starts it)")
    configured = os.environ.get("PREFECT_API_URL")
    server = server_record()
    url = running()
    if url and server:
        click.echo(
            f"embedded Prefect server: pid {server['pid']}, {url}, "
            f"{_megabytes(int(str(server['pid'])))}; UI at {url[:-4]}; data in {home()}"
        )
    elif not configured:
        click.echo("embedded Prefect server: not running")
    if configured:
        click.echo(f"actions run through the Prefect API at {configured} (PREFECT_API_URL)")
    try:
        idle_seconds()
    except ValueError as err:
        raise click.ClickException(str(err)) from None


@prefect.command("stop")
def prefect_stop() -> None:
    """Stop the action host and the embedded Prefect server; return once both are gone (the
    next action starts them again)."""
    from engine.adapters.execution.prefect_server import stop

    click.echo(
        "stopped the back office (the action host and the embedded Prefect server)"
        if stop()
        else "the back office was not running"
    )
