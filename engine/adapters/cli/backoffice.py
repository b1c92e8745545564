"""Proactive journeys and the demo back office: ``trigger`` (raise a back-office event),
``backoffice show`` (its tables) and ``backoffice scan`` (raise ``order.delayed`` for every
late order, once)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from engine.adapters.cli.common import (
    DB_OPTION,
    EXECUTOR_OPTION,
    FORMAT_OPTION,
    OUTBOUND_LOCALE_OPTION,
    as_json,
    command,
    drained,
    group,
    json_errors,
    open_library,
    parse_pairs,
    refused,
    session_store,
)
from engine.adapters.cli.views import outbound_of, print_outbound

if TYPE_CHECKING:
    from engine.sessions.service import Sessions
    from engine.sessions.triggers import Raised


def _outbound_sessions(ctx: click.Context, executor_kind: str, db: str | None) -> Sessions:
    """The service for raising events: journeys with errors never start."""
    from actions.registry import ledger
    from engine.adapters.execution.executors import LazyExecutor
    from engine.sessions.service import Sessions

    library = open_library(ctx)
    return Sessions(
        library, session_store(db), LazyExecutor(executor_kind, ledger=ledger()), refused(library)
    )


def _startable(sessions: Sessions) -> Callable[[str], None]:
    """Refuses a whole event, before any session starts, when a journey it fires has errors."""
    from engine.sessions.resume import check_startable

    return lambda journey: check_startable(sessions.refused, journey)


@command()
@click.argument("event")
@click.option(
    "--data",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value of the event's data (repeatable), e.g. order_id=10000001.",
)
@OUTBOUND_LOCALE_OPTION
@FORMAT_OPTION
@EXECUTOR_OPTION
@DB_OPTION
@click.pass_context
def trigger(
    ctx: click.Context,
    event: str,
    pairs: tuple[str, ...],
    locale: str | None,
    fmt: str,
    executor_kind: str,
    db: str | None,
) -> None:
    """Raise the back-office EVENT: start the outbound sessions its triggers name.

    The triggers are declared in motives.yaml. Exit status: 0 sessions started or no trigger
    matched, 1 a session failed or the data do not fit a trigger, 2 usage.
    """
    from engine.sessions.triggers import start_outbound

    data = parse_pairs("--data", pairs)
    sessions = _outbound_sessions(ctx, executor_kind, db)
    with json_errors(fmt):
        started, nothing = start_outbound(
            sessions, event, data, as_text=True, locale=locale, before_start=_startable(sessions)
        )
    drained(sessions, [s.id for s in started])
    items = [outbound_of(sessions, s) for s in started]
    if fmt == "json":
        report: dict[str, Any] = {"event": event, "data": data, "sessions": items}
        if nothing:
            report["message"] = nothing
        click.echo(as_json(report))
    else:
        if nothing:
            click.echo(nothing[0].upper() + nothing[1:])
        for item in items:
            print_outbound(item)
    if any(s.error for s in started):
        ctx.exit(1)


@group()
def backoffice() -> None:
    """The demo back office the shipped actions change (an embedded database)."""


@backoffice.command("show")
@click.argument("table")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@FORMAT_OPTION
def backoffice_show(table: str, limit: int, fmt: str) -> None:
    """Print the rows of TABLE (refunds, tickets, messages, contact_log, ...)."""
    from actions.backoffice import BackofficeUnavailable, database_url, show

    try:
        columns, rows = show(table, limit)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    except BackofficeUnavailable as err:
        raise click.ClickException(str(err)) from None
    if fmt == "json":
        click.echo(
            json.dumps(
                [dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=2
            )
        )
        return
    cells = [[str(v) if v is not None else "" for v in row] for row in rows]
    widths = [min(30, max([len(c), *(len(r[i]) for r in cells)])) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)))
    click.echo(
        f"({len(rows)} row{'s' if len(rows) != 1 else ''} of {table} in {database_url()})", err=True
    )


@backoffice.command("scan")
@click.option(
    "--min-days",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Raise the event for orders this many days late or more.",
)
@OUTBOUND_LOCALE_OPTION
@FORMAT_OPTION
@EXECUTOR_OPTION
@DB_OPTION
@click.pass_context
def backoffice_scan(
    ctx: click.Context,
    min_days: int,
    locale: str | None,
    fmt: str,
    executor_kind: str,
    db: str | None,
) -> None:
    """Find late orders and raise `order.delayed` for each: reach out before the customer calls.

    An order is alerted once: when its event started a session, the back office records it
    (table delay_alerts) and later scans skip it. Exit status as for `journeys trigger`.
    """
    from actions.backoffice import (
        DELAYED_EVENT,
        BackofficeUnavailable,
        delayed_orders,
        record_delay_alert,
    )
    from engine.sessions.triggers import raise_each

    sessions = _outbound_sessions(ctx, executor_kind, db)
    try:
        late = delayed_orders(min_days)
    except BackofficeUnavailable as err:
        raise click.ClickException(str(err)) from None

    def alerted(data: Any, started: list[Any]) -> None:
        ids = [s.id for s in started]
        record_delay_alert(data["order_id"], data["customer_id"], data["days_late"], ids)

    raised = raise_each(
        sessions,
        DELAYED_EVENT,
        late,
        alerted=alerted,
        locale=locale,
        before_start=_startable(sessions),
    )
    drained(sessions, [s.id for r in raised for s in r.started])
    results = [_scanned(sessions, DELAYED_EVENT, r) for r in raised]
    if fmt == "json":
        click.echo(as_json(results))
    else:
        click.echo(f"{len(late)} order(s) {min_days} or more days late not alerted yet")
        for item in results:
            _print_scanned(item)
    if any(r.error or any(s.error for s in r.started) for r in raised):
        ctx.exit(1)


def _scanned(sessions: Sessions, event: str, raised: Raised) -> dict[str, Any]:
    item: dict[str, Any] = {"event": event, "data": raised.data, "sessions": []}
    if raised.error is not None:
        item["error"] = raised.error
        return item
    item["sessions"] = [outbound_of(sessions, s) for s in raised.started]
    if raised.nothing:
        item["message"] = raised.nothing
    return item


def _print_scanned(item: dict[str, Any]) -> None:
    d = item["data"]
    click.echo(f"order {d['order_id']} of {d['customer_id']}, {d['days_late']} days late:")
    if "error" in item:
        click.echo(f"  Error: {item['error']}")
    elif "message" in item:
        click.echo(f"  {item['message']}")
    for outbound in item["sessions"]:
        print_outbound(outbound)
