"""The commands that drive sessions: ``run`` (start, resume or continue one, scripted or in
the terminal), ``runs`` (the back-office action runs, and running a failed one again) and
``db`` (the session database)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.adapters.cli.common import (
    DB_OPTION,
    EXECUTOR_OPTION,
    FORMAT_OPTION,
    as_json,
    command,
    drained,
    group,
    json_errors,
    named_journey,
    open_library,
    parse_pairs,
    read_mapping,
    refused,
    session_store,
)
from engine.adapters.cli.views import print_result, result_of

if TYPE_CHECKING:
    from engine.definitions.library import Library
    from engine.sessions.runtime import Session
    from engine.sessions.service import Sessions

Say = Callable[[str], None]


@command()
@click.argument("journey", required=False)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input of the journey (repeatable).",
)
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Answers by node (YAML or JSON), as in scenarios.",
)
@click.option(
    "--actions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Stub these actions (by name); the others run for real.",
)
@FORMAT_OPTION
@click.option("--session", "session_id", help="Continue this waiting session.")
@click.option("--channel", default=None, help="The channel: phone, chat, email, selfcare...")
@click.option(
    "--locale", default=None, help="The session's language (default: the journey's first)."
)
@click.option(
    "--new",
    "force_new",
    is_flag=True,
    help="Start a new session even if the customer has one waiting.",
)
@click.option("--agent", default=None, help="Who handles the contact (recorded with the session).")
@click.option(
    "--role",
    type=click.Choice(["agent", "supervisor", "customer"]),
    default=None,
    help="Who performs the steps, for the authority limits of policies.yaml "
    "[default: customer with --channel selfcare, else agent].",
)
@EXECUTOR_OPTION
@DB_OPTION
@click.pass_context
def run(
    ctx: click.Context,
    journey: str | None,
    inputs: tuple[str, ...],
    answers: Path | None,
    actions: Path | None,
    fmt: str,
    session_id: str | None,
    channel: str | None,
    locale: str | None,
    force_new: bool,
    agent: str | None,
    role: str | None,
    executor_kind: str,
    db: str | None,
) -> None:
    """Drive one session of JOURNEY (an id, a motive, or a journey file).

    Without --answers it is interactive. Exit status: 0 the session ended, 3 it waits for an
    answer that was not given, 1 an invalid answer or a failure, 2 usage.
    """
    from engine.insight.scenarios import AnswerBook, answer_until_stuck

    if not journey and not session_id:
        raise click.UsageError("give a JOURNEY to start, or --session ID to continue one")
    library = open_library(ctx)
    stubs = read_mapping(actions, "actions") if actions else None
    book = AnswerBook(read_mapping(answers, "answers")) if answers else None
    sessions = _sessions(library, stubs, executor_kind, db)
    say: Say = (lambda text: click.echo(text, err=True)) if fmt == "json" else click.echo
    if session_id:
        with json_errors(fmt):
            session = _continued(sessions, session_id, say, channel=channel, role=role, agent=agent)
    else:
        session = _opened(
            sessions,
            str(journey),
            inputs,
            say,
            force_new=force_new,
            channel=channel,
            locale=locale,
            agent=agent,
            role=role,
            fmt=fmt,
        )
    with json_errors(fmt):
        if book is not None:
            session = answer_until_stuck(
                sessions, session, book, as_text=False, role=role, actor=agent
            )
        else:
            session = _converse(ctx, sessions, session)
    _print_session(ctx, sessions, session, fmt)


def _print_session(ctx: click.Context, sessions: Sessions, session: Session, fmt: str) -> None:
    """Where the session is, once its background actions are done; exit 1 a failure or an
    incident, 3 waiting for an answer."""
    failed = drained(sessions, [session.id])
    result = result_of(session)
    if failed:
        result["failed_actions"] = failed
    if fmt == "json":
        click.echo(as_json(result))
    else:
        print_result(result)
    if session.error or session.status == "incident":
        ctx.exit(1)
    if session.status in ("waiting", "running"):
        ctx.exit(3)


def _sessions(
    library: Library, stubs: Mapping[str, Any] | None, executor_kind: str, db: str | None
) -> Sessions:
    """The service for one command line: real actions (made when one first runs), or the
    stubs given for some of them."""
    from actions.registry import ledger
    from engine.adapters.execution.executors import LazyExecutor
    from engine.insight.scenarios import StubExecutor
    from engine.sessions.service import ActionExecutor, Sessions

    real = LazyExecutor(executor_kind, ledger=ledger())  # made when a real action first runs
    executor: ActionExecutor = StubExecutor(stubs, fallback=real) if stubs is not None else real
    return Sessions(library, session_store(db), executor)


def _continued(
    sessions: Sessions,
    session_id: str,
    say: Say,
    *,
    channel: str | None,
    role: str | None,
    agent: str | None,
) -> Session:
    from engine.sessions.resume import continue_session

    def retrying(held: Mapping[str, Any]) -> None:
        say(f"Retrying {held.get('action')} (held since {held.get('since')})")

    return continue_session(
        sessions, session_id, channel=channel, role=role, actor=agent, before_retry=retrying
    )


def _opened(
    sessions: Sessions,
    journey: str,
    inputs: tuple[str, ...],
    say: Say,
    *,
    force_new: bool,
    channel: str | None,
    locale: str | None,
    agent: str | None,
    role: str | None,
    fmt: str,
) -> Session:
    from engine.sessions.resume import check_startable, resume_or_start

    definition = named_journey(sessions.library, journey)
    check_startable(refused(sessions.library), definition.id)  # said on stderr
    given = parse_pairs("--input", inputs)
    with json_errors(fmt):
        opened = resume_or_start(
            sessions,
            definition.id,
            given,
            force_new=force_new,
            channel=channel,
            locale=locale,
            agent=agent,
            role=role,
        )
    if opened.resumed is not None:
        say(
            f"Resuming session {opened.session.id} of customer {given['customer_id']} "
            f"(waiting at {opened.session.node!r}, started on "
            f"{opened.resumed.channel or 'an unknown channel'}); --new starts another"
        )
    return opened.session


def _ask(prompt: str) -> str:
    try:
        return str(click.prompt(prompt, default="", show_default=False, prompt_suffix=""))
    except click.Abort:  # Ctrl-C or the end of the input: no more answers
        raise EOFError from None


def _converse(ctx: click.Context, sessions: Sessions, session: Session) -> Session:
    """The contact in the terminal; stopped, it leaves the session waiting: exit 3."""
    from engine.adapters.terminal import converse

    talk = converse(sessions, session, _ask, click.echo)
    if talk.interrupted:
        left = talk.session
        click.echo(
            f"\nSession {left.id} is left waiting at {left.node!r}. "
            f"Resume it with: journeys run --session {left.id} [--channel phone]",
            err=True,
        )
        ctx.exit(3)
    return talk.session


# ----------------------------------------------------------------------------------- db


@group()
def db() -> None:
    """The session database."""


@db.command("upgrade")
@DB_OPTION
def db_upgrade(db: str | None) -> None:
    """Create or migrate the session database to the newest schema."""
    from engine.adapters.sql.migrations import head_revision, upgrade_to_head
    from engine.adapters.sql.store import StoreError, default_url, make_engine

    url = db or default_url()
    try:
        engine = make_engine(url)
        upgrade_to_head(engine)
    except StoreError:
        raise  # it says what to do
    except Exception as err:  # a database that cannot be reached: say which and why
        raise click.ClickException(f"cannot upgrade the session database: {err}") from None
    click.echo(f"session database at revision {head_revision()}")


# --------------------------------------------------------------------------------- runs


@group(invoke_without_command=True)
@click.option(
    "--failed",
    is_flag=True,
    help="The background actions (wait: false, after) whose last run failed.",
)
@click.option("--session", "session_id", default=None, help="Only the runs of this session.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@FORMAT_OPTION
@DB_OPTION
@click.pass_context
def runs(
    ctx: click.Context,
    failed: bool,
    session_id: str | None,
    limit: int,
    fmt: str,
    db: str | None,
) -> None:
    """The back-office action runs: `journeys runs --failed` lists the background actions that
    failed (a callback booked, a message sent after the contact: a promise to keep), and
    `journeys runs retry ID` runs one again."""
    if ctx.invoked_subcommand is not None:
        return
    if not failed and not session_id:
        raise click.UsageError(
            "give --failed (the background actions that failed) or --session ID (its runs)"
        )
    store = session_store(db)
    try:
        if failed:
            rows = [dict(r) for r in store.failed_runs(session_id, limit)]
        else:
            rows = [{"id": None, "at": None, **r} for r in store.runs(str(session_id))][-limit:]
    finally:
        store.dispose()
    if fmt == "json":
        click.echo(as_json(rows))
        return
    for row in rows:
        when = (row.get("at") or "")[:19].replace("T", " ")
        number = f"{row['id']:>6}  " if row.get("id") is not None else ""
        reason = f"  {row['error']}" if row.get("error") else ""
        click.echo(
            f"{number}{when}  {row['session_id']}  {row['action']} ({row['mode']}, "
            f"{row['status']}, {row['attempts']} tr{'ies' if row['attempts'] != 1 else 'y'})"
            f"{reason}"
        )
    if failed:
        click.echo(
            f"{len(rows)} failed background run{'s' if len(rows) != 1 else ''}"
            + ("; run one again with: journeys runs retry ID" if rows else ""),
            err=True,
        )


@runs.command("retry")
@click.argument("run_id", metavar="ID", type=click.IntRange(min=1))
@FORMAT_OPTION
@EXECUTOR_OPTION
@DB_OPTION
@click.pass_context
def runs_retry(
    ctx: click.Context, run_id: int, fmt: str, executor_kind: str, db: str | None
) -> None:
    """Run the failed background action ID again (from `journeys runs --failed`), with the
    inputs it had and the same idempotency key: the back office never does it twice.

    Exit status: 0 it succeeded (now or before), 1 it failed again or cannot be run again."""
    from actions.registry import ledger
    from engine.adapters.execution.executors import LazyExecutor
    from engine.sessions.service import Sessions

    store = session_store(db)
    try:
        run, ran = Sessions(
            open_library(ctx), store, LazyExecutor(executor_kind, ledger=ledger())
        ).rerun(run_id)
    finally:
        store.dispose()
    if fmt == "json":
        click.echo(as_json({**run, "ran": ran}))
    elif not ran:
        click.echo(f"run {run_id} ({run['action']}) has already succeeded: nothing run again")
    elif run["status"] == "succeeded":
        click.echo(f"run {run_id} ({run['action']}) succeeded")
    else:
        click.echo(f"run {run_id} ({run['action']}) failed again: {run.get('error')}", err=True)
    if run["status"] != "succeeded":
        ctx.exit(1)
