"""What the sessions tell: ``report`` (first-contact resolution, effort, NPS, funnels) and
``simulate`` (realistic synthetic traffic to report on)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.adapters.cli.common import DB_OPTION, as_usage, command, open_library, session_store


@command()
@click.option("--since", metavar="DATE", help="Sessions started from this day (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Sessions started up to this day, included.")
@click.option("--motive", metavar="MOTIVE", help="Only this motive.")
@click.option("--journey", metavar="JOURNEY", help="Only this journey.")
@click.option(
    "--window",
    type=click.IntRange(0, 365),
    default=7,
    show_default=True,
    help="Days within which a new contact on the same motive means it was not once and done.",
)
@click.option(
    "--idle",
    type=click.IntRange(0, 60 * 24 * 365),
    default=30,
    show_default=True,
    help="Minutes after which an unfinished session counts as abandoned.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file (default: standard output).",
)
@DB_OPTION
@click.pass_context
def report(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    motive: str | None,
    journey: str | None,
    window: int,
    idle: int,
    fmt: str,
    out: Path | None,
    db: str | None,
) -> None:
    """First-contact resolution, effort (CES), NPS, funnels and motive prevalence, from the
    session database. Definitions: docs/insight.md."""
    import json

    from engine.adapters.sql.reporting import ReportError, open_store, report_for
    from engine.adapters.sql.store import default_url
    from engine.insight.report import as_text

    library = open_library(ctx)
    # Everything a report refuses comes from what was asked (a day, a name, the database).
    with as_usage(ReportError):
        store = open_store(db or default_url())
        try:
            result = report_for(
                store,
                library,
                since=since,
                until=until,
                motive=motive,
                journey=journey,
                window_days=window,
                idle_minutes=idle,
            )
            if fmt == "html":
                from engine.adapters.report_html import render_html

                text = render_html(result, library, store.url)
            elif fmt == "json":
                text = json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n"
            else:
                text = as_text(result)
        finally:
            store.dispose()
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"report written to {out}", err=True)
    else:
        click.echo(text, nl=False)


@command()
@click.option(
    "--sessions",
    "count",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="How many sessions to write (repeat contacts included).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="Spread them over this many days, ending now.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the generator (default: a fixed one, shown in the summary): the same seed "
    "gives the same sessions (ids, customers, paths, answers), dated back from now.",
)
@DB_OPTION
@click.pass_context
def simulate(ctx: click.Context, count: int, days: int, seed: int | None, db: str | None) -> None:
    """Write realistic synthetic traffic through the library into the session database:
    repeat contacts, channel changes, abandonment, surveys, failing actions. Then see
    `journeys report`. What is simulated, and how often: docs/insight.md."""
    import time

    from engine.adapters.sql.store import shown_url
    from engine.insight.simulate import DEFAULT_SEED
    from engine.insight.simulate import simulate as run_simulation

    library = open_library(ctx)
    seed = DEFAULT_SEED if seed is None else seed
    store = session_store(db)
    began = time.perf_counter()
    try:
        with (
            click.progressbar(
                length=count,
                label="simulating",
                file=sys.stderr,
                update_min_steps=max(1, count // 200),
            ) as bar,
            store.batch(),
        ):
            summary = run_simulation(
                library, store, count, days=days, seed=seed, progress=lambda _done: bar.update(1)
            )
    finally:
        store.dispose()
    took = time.perf_counter() - began
    outcomes = ", ".join(
        f"{name} {n} ({100 * n / summary.sessions:.0f}%)"
        for name, n in summary.outcomes.most_common()
    )
    motives = ", ".join(f"{name} {n}" for name, n in summary.motives.most_common())
    click.echo(
        f"{summary.sessions} sessions, {summary.events} events written to "
        f"{shown_url(store.url)} in {took:.1f} s ({summary.events / took:.0f} events/s; "
        f"seed {seed}, over {days} days)\n"
        f"outcomes: {outcomes}\n"
        f"repeat contacts {summary.repeats}, channel changes {summary.channel_changes}, "
        f"failed actions {summary.failures}, surveys answered {summary.surveys}\n"
        f"motives: {motives}"
    )
