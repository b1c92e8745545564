"""The ``journeys`` command: parsing options and printing results, nothing else.

Exit status: 0 success, 1 findings or failure, 2 usage (click's own convention).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from engine.findings import Finding


def _library(ctx: click.Context) -> Path:
    return Path(ctx.obj["library"])


class _Journeys(click.Group):
    """The `journeys` command group. `--library DIR` is one of its options, written before the
    command; written after it (`journeys serve --library DIR`), as people do, it is the same."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        hoisted: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":  # what follows is for the command as it is
                rest += args[i:]
                break
            if arg == "--library" and i + 1 < len(args):
                hoisted += args[i : i + 2]
                i += 2
                continue
            (hoisted if arg.startswith("--library=") else rest).append(arg)
            i += 1
        return super().parse_args(ctx, hoisted + rest)


@click.group(cls=_Journeys, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--library",
    envvar="JOURNEYS_LIBRARY",
    default=None,
    show_default="./journeys if this folder has one, else the shipped library",
    type=click.Path(file_okay=False, path_type=Path),
    help="The journey library folder (or set JOURNEYS_LIBRARY).",
)
@click.version_option(package_name="journeys")
@click.pass_context
def main(ctx: click.Context, library: Path | None) -> None:
    """Guided resolution journeys for customer service: once and done."""
    from engine.shipped import default_library

    ctx.ensure_object(dict)
    ctx.obj["library"] = library if library is not None else default_library()


def _size(text: str) -> int:
    units = {"kb": 1000, "k": 1000, "mb": 1_000_000, "m": 1_000_000, "b": 1}
    lowered = text.strip().lower()
    for unit, factor in units.items():
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * factor)
    return int(lowered)


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = _size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size; write for example 500kB or 2MB", param, ctx)
        if size <= 0:
            self.fail("the size must be positive", param, ctx)
        return size


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="Output: text lines, one JSON object, or GitHub annotations.",
)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--no-cache", is_flag=True, help="Check every file again, ignoring the cache.")
@click.option(
    "--max-file-size",
    type=SizeParam(),
    default="1MB",
    show_default=True,
    help="Files larger than this are refused unread.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes for large libraries (0: one per core).",
)
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str,
    strict: bool,
    no_cache: bool,
    max_file_size: int,
    jobs: int,
) -> None:
    """Check journeys, the motive catalogue and scenario files.

    PATHS are folders (each validated as a library) or files (validated within the library
    that holds them). Default: the library.
    """
    from actions.registry import catalogue
    from engine.errors import UsageError
    from engine.validate import Options
    from engine.validate import validate as run

    library = _library(ctx)
    targets = list(paths) or [library]
    if not paths and not library.is_dir():
        raise click.UsageError(
            f"the library folder {str(library)!r} does not exist; give PATHS, --library DIR, "
            "or set JOURNEYS_LIBRARY"
        )
    progress = _progress if sys.stderr.isatty() and fmt == "text" else None
    options = Options(
        max_file_bytes=max_file_size, use_cache=not no_cache, jobs=jobs, progress=progress
    )
    try:
        report = run(targets, library, catalogue(), options)
    except UsageError as err:
        raise click.UsageError(str(err)) from None
    if progress:
        click.echo("\r\033[K", nl=False, err=True)
    cwd = Path.cwd()
    errors, warnings = report.errors, report.warnings
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "errors": [_shown(f, cwd, targets, library) for f in errors],
                    "warnings": [_shown(f, cwd, targets, library) for f in warnings],
                    "files": report.files,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for f in report.findings:
            item = _shown(f, cwd, targets, library)
            if fmt == "github":
                click.echo(_github(item))
            else:
                click.echo(f"{item['file']}:{item['line']}:{item['column']}: {f.code} {f.message}")
        click.echo(_summary(len(errors), len(warnings), report.files), err=True)
    if errors or (strict and warnings):
        ctx.exit(1)


def _progress(done: int, total: int) -> None:
    click.echo(f"\rchecking files: {done}/{total}", nl=False, err=True)


def _summary(errors: int, warnings: int, files: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if not errors and not warnings:
        return f"journeys: {plural(files, 'file')} checked, no problems found"
    return f"journeys: {plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'file')}"


def _shown(f: Finding, cwd: Path, targets: list[Path], library: Path) -> dict[str, Any]:
    """A finding with its file path as a person would open it (relative to here)."""
    from engine.validate import library_of

    item = f.to_dict()
    for target in targets:
        root = target.resolve() if target.is_dir() else library_of(target.resolve(), library)
        full = root / f.file
        if os.path.lexists(full):
            try:
                item["file"] = os.path.relpath(full, cwd) if full.is_relative_to(cwd) else str(full)
            except ValueError:
                item["file"] = str(full)
            break
    return {
        k: item[k]
        for k in ("file", "line", "column", "code", "severity", "journey", "node", "message")
    }


def _escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _github(item: dict[str, Any]) -> str:
    level = "error" if item["severity"] == "error" else "warning"
    props = ",".join(
        f"{k}={_escape(str(v), True)}"
        for k, v in (
            ("file", item["file"]),
            ("line", item["line"]),
            ("col", item["column"]),
            ("title", item["code"]),
        )
    )
    return f"::{level} {props}::{_escape(item['message'])}"


@main.command()
@click.argument(
    "name", required=False, type=click.Choice(["journey", "motives", "scenario", "policies"])
)
@click.option(
    "--write",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every schema into this folder instead of printing.",
)
def schema(name: str | None, out_dir: Path | None) -> None:
    """Print a JSON Schema (journey, motives, scenario or policies), or --write them all."""
    from engine.checks.schema import SCHEMA_NAMES, schema_path

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in SCHEMA_NAMES:
            target = out_dir / f"{n}.schema.json"
            target.write_text(schema_path(n).read_text(encoding="utf-8"), encoding="utf-8")
            click.echo(f"wrote {target}")
        return
    click.echo(schema_path(name or "journey").read_text(encoding="utf-8"), nl=False)


# --------------------------------------------------------------------------- sessions

FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
OUTBOUND_LOCALE_OPTION = click.option(
    "--locale", default=None, help="The sessions' language (default: each journey's first)."
)

EXECUTOR_OPTION = click.option(
    "--executor",
    "executor_kind",
    type=click.Choice(["prefect", "workers", "local"]),
    envvar="JOURNEYS_EXECUTOR",
    default="prefect",
    show_default=True,
    help="Run actions as Prefect flows here (embedded server started once, or PREFECT_API_URL), "
    "hand them to Prefect task workers (`journeys worker`), or call them in this process "
    "(or JOURNEYS_EXECUTOR).",
)

DB_OPTION = click.option(
    "--db",
    envvar="JOURNEYS_DB",
    default=None,
    metavar="URL",
    help="Session database (or JOURNEYS_DB). Default: sessions.db in the journeys home "
    "(JOURNEYS_HOME, else ./.journeys).",
)


def _store(db: str | None) -> Any:
    from engine.adapters.sql_store import SqlStore, StoreError, default_url

    try:
        return SqlStore(db or default_url())
    except StoreError as err:
        raise click.ClickException(str(err)) from None


def _library_object(ctx: click.Context) -> Any:
    from engine.library import Library, LibraryError

    try:
        return Library(_library(ctx))
    except LibraryError as err:
        raise click.UsageError(str(err)) from None


def _read_mapping(path: Path | None, what: str) -> dict[str, Any]:
    """A YAML or JSON mapping from a file (answers, action stubs)."""
    if path is None:
        return {}
    from engine.yamlsafe import YamlError, load

    try:
        data = load(path)
    except (OSError, YamlError) as err:
        raise click.UsageError(f"{what} file {str(path)!r}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.UsageError(f"{what} file {str(path)!r} must hold a mapping (node: answer)")
    return dict(data)


def _parse_inputs(pairs: tuple[str, ...]) -> dict[str, str]:
    inputs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--input {pair!r}: write it as NAME=VALUE")
        inputs[name.strip()] = value
    return inputs


def _refused(library: Any) -> dict[str, str]:
    """The journeys of the library that may not start (validation errors), with the reason."""
    from actions.registry import catalogue
    from engine.library import refusals

    return refusals(library, catalogue())


def _check_runnable(ctx: click.Context, library: Any, journey_id: str) -> None:
    """Refuse to start a journey that `journeys validate` finds errors in."""
    reason = _refused(library).get(journey_id)
    if reason:
        raise click.ClickException(reason)


def _result(session: Any) -> dict[str, Any]:
    data = {
        "session": session.id,
        "journey": session.journey,
        "version": session.version,
        "status": "ended" if session.status == "survey" else session.status,
        "outcome": session.outcome,
        "path": session.path,
        "context": session.context,
    }
    if session.status in ("waiting", "running", "incident"):
        data["node"] = session.node
    if session.incident:
        data["incident"] = (
            session.incident
        )  # a system down: held at the node, never a business path
    if session.error:
        data["error"] = session.error
    if session.handoff:
        data["handoff"] = session.handoff
    if session.grants:
        data["grants"] = session.grants
    if session.survey:
        data["survey"] = session.survey
    return data


@main.command()
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
    from actions.registry import ledger
    from engine.adapters.executors import LazyExecutor
    from engine.errors import InvalidAnswer, SessionError
    from engine.library import LibraryError
    from engine.scenarios import AnswerBook, StubExecutor, answer_until_stuck
    from engine.service import Sessions

    if not journey and not session_id:
        raise click.UsageError("give a JOURNEY to start, or --session ID to continue one")
    library = _library_object(ctx)
    real = LazyExecutor(executor_kind, ledger=ledger())  # made when a real action first runs
    executor = StubExecutor(_read_mapping(actions, "actions"), fallback=real) if actions else real
    book = AnswerBook(_read_mapping(answers, "answers")) if answers else None
    store = _store(db)
    sessions = Sessions(library, store, executor)
    say = (lambda text: click.echo(text, err=True)) if fmt == "json" else click.echo
    try:
        if session_id:
            session = (
                sessions.resume(session_id, channel, actor=agent, role=role)
                if channel or role
                else sessions.get(session_id)
            )
            if session.finished:
                raise click.ClickException(
                    f"session {session_id!r} has ended (outcome {session.outcome!r})"
                )
            if session.status == "incident":  # continuing it is running its action again
                held = session.incident or {}
                say(f"Retrying {held.get('action')} (held since {held.get('since')})")
                session = sessions.retry(session.id, actor=agent)
        else:
            assert journey is not None
            try:
                definition = library.find(journey, paths=True)
            except LibraryError as err:
                raise click.UsageError(str(err)) from None
            _check_runnable(ctx, library, definition.id)
            given = _parse_inputs(inputs)
            waiting = (
                []
                if force_new or "customer_id" not in given
                else sessions.open_for(given["customer_id"], definition.id)
            )
            if waiting:
                session = (
                    sessions.resume(waiting[0].id, channel, actor=agent, role=role)
                    if channel or role
                    else waiting[0]
                )
                say(
                    f"Resuming session {session.id} of customer {given['customer_id']} "
                    f"(waiting at {session.node!r}, started on {waiting[0].channel or 'an unknown channel'}); "
                    "--new starts another"
                )
            else:
                session = sessions.start(
                    definition.id,
                    given,
                    channel=channel,
                    locale=locale,
                    as_text=True,
                    agent=agent,
                    actor=agent,
                    role=role,
                )
        if book is not None:
            session = answer_until_stuck(
                sessions, session, book, as_text=False, role=role, actor=agent
            )
        else:
            session = _interactive(sessions, session, library)
    except InvalidAnswer as err:
        _fail(fmt, f"invalid answer at {err.node!r}: {err.message}", 1)
    except (SessionError, LibraryError) as err:
        _fail(fmt, getattr(err, "message", str(err)), 1)
    failed = _drained(sessions, [session.id])
    result = _result(session)
    if failed:
        result["failed_actions"] = failed
    if fmt == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        _print_result(result)
    if session.error or session.status == "incident":
        ctx.exit(1)
    if session.status in ("waiting", "running"):
        ctx.exit(3)


def _drained(sessions: Any, session_ids: list[str]) -> list[dict[str, Any]]:
    """Wait for the background runs of these sessions, then say which failed (post-contact
    and `wait: false` actions never change the outcome, but a failure is recorded and said,
    with how to run it again: never dropped)."""
    sessions.drain()
    failed = [run for sid in session_ids for run in sessions.store.failed_runs(sid)]
    for run in failed:
        click.echo(
            f"warning: a background action failed: {run['action']} (run {run['id']}): "
            f"{run.get('error')}; run it again with: journeys runs retry {run['id']}",
            err=True,
        )
    return failed


def _fail(fmt: str, message: str, code: int) -> None:
    if fmt == "json":
        click.echo(json.dumps({"error": message}, ensure_ascii=False))
    else:
        click.echo(f"Error: {message}", err=True)
    raise SystemExit(code)


def _print_result(result: dict[str, Any]) -> None:
    for grant in result.get("grants", []):
        over = f" over {grant['over']}" if grant.get("over") else ""
        total = f", total {grant['total']}" if grant.get("total") is not None else ""
        click.echo(
            f"Granted by the {grant['role']}{' ' + grant['actor'] if grant['actor'] else ''}: "
            f"{grant['action']} {grant['param']} {grant['value']} (limit: {grant['rule']} "
            f"{grant['limit']}{over}{total})"
        )
    if result["status"] == "ended" and result.get("handoff"):
        handoff = result["handoff"]
        why = f" ({handoff['reason']})" if handoff.get("reason") else ""
        click.echo(
            f"Session {result['session']} ended: {result['outcome']}, handed to the "
            f"{handoff['queue']} queue{why}"
        )
    elif result["status"] == "ended":
        click.echo(f"Session {result['session']} ended: {result['outcome']}")
    elif result["status"] == "incident":
        held = result["incident"]
        click.echo(
            f"Session {result['session']} is held at {result.get('node')!r}: the back office did "
            f"not answer ({held['action']}: {held['message']}), since {held['since']}, "
            f"{held['tries']} tr{'ies' if held['tries'] != 1 else 'y'}. Nothing is lost: "
            f"`journeys serve` retries it by itself, or retry it with: "
            f"journeys run --session {result['session']}"
        )
    else:
        click.echo(
            f"Session {result['session']} is waiting at {result.get('node')!r}. "
            f"Continue it with: journeys run --session {result['session']}"
        )


def _interactive(sessions: Any, session: Any, library: Any) -> Any:
    from engine.adapters.terminal import run_interactive

    def ask(prompt: str) -> str:
        return str(click.prompt(prompt, default="", show_default=False, prompt_suffix=""))

    click.echo(
        f"── {session.journey} v{session.version} · session {session.id} "
        f"({session.channel or 'no channel'}, {session.locale or 'default locale'})"
    )
    try:
        while True:
            session = run_interactive(sessions, session, ask, click.echo)
            if session.status not in ("ended", "survey") or session.error:
                return session
            click.echo(f"Outcome: {session.outcome}")
            nxt = ask(
                "Anything else? A motive or journey id for the same contact [Enter to finish] > "
            ).strip()
            if not nxt:
                return session
            try:
                following = library.find(nxt, paths=True)
            except Exception as err:  # a wrong name: say so and finish cleanly
                click.echo(f"  ✗ {err}")
                return session
            carried = {k: session.context[k] for k in following.inputs if k in session.context}
            session = sessions.start(
                following.id,
                carried,
                channel=session.channel,
                locale=session.locale,
                contact_id=session.contact_id,
                role=session.role,
            )
            click.echo(
                f"── {session.journey} v{session.version} · session {session.id} (same contact)"
            )
    except (KeyboardInterrupt, click.Abort, EOFError):
        session = sessions.get(session.id)  # as saved: every answer given so far is kept
        click.echo(
            f"\nSession {session.id} is left waiting at {session.node!r}. "
            f"Resume it with: journeys run --session {session.id} [--channel phone]",
            err=True,
        )
        raise SystemExit(3) from None


# ------------------------------------------------------------------ proactive journeys


def _parse_data(pairs: tuple[str, ...]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"--data {pair!r}: write it as NAME=VALUE")
        data[name.strip()] = value
    return data


def _raise_event(
    ctx: click.Context,
    sessions: Any,
    event: str,
    data: dict[str, Any],
    *,
    as_text: bool,
    locale: str | None,
) -> tuple[list[Any], str | None]:
    """Start the outbound sessions an event fires, refusing journeys with errors."""
    from engine.triggers import start_outbound

    return start_outbound(
        sessions,
        event,
        data,
        as_text=as_text,
        locale=locale,
        before_start=lambda journey: _check_runnable(ctx, sessions.library, journey),
    )


def _outbound(sessions: Any, session: Any) -> dict[str, Any]:
    """A started outbound session, with the step the customer now sees."""
    from engine.runtime import current_step

    data = _result(session)
    data["channel"], data["motive"] = session.channel, session.motive
    step = current_step(sessions.bundle_of(session).definitions, session)
    if step is not None and session.status == "waiting":
        data["step"] = step
    elif session.messages:  # ended at once: its last texts are the message sent
        data["messages"] = list(session.messages)
    return data


def _print_outbound(item: dict[str, Any]) -> None:
    where = f"waiting at {item['node']!r}" if "node" in item else f"ended: {item['outcome']}"
    click.echo(
        f"Session {item['session']} of {item['journey']} on {item['channel'] or 'no channel'} "
        f"(motive {item['motive'] or 'none'}): {where}"
    )
    step = item.get("step") or {"messages": item.get("messages", [])}
    for text in [*step.get("messages", []), step.get("text")]:
        if text:
            click.echo(f"  > {text}")
    for option in step.get("options", []):
        click.echo(f"    - {option['value']}: {option['label']}")
    if "node" in item:
        click.echo(f"  Continue it with: journeys run --session {item['session']}")
    if item.get("error"):
        click.echo(f"  Error: {item['error'].get('message')}")


@main.command()
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
    from actions.registry import ledger
    from engine.adapters.executors import LazyExecutor
    from engine.errors import SessionError
    from engine.library import LibraryError
    from engine.service import Sessions
    from engine.triggers import TriggerError

    data = _parse_data(pairs)
    library = _library_object(ctx)
    executor = LazyExecutor(executor_kind, ledger=ledger())
    sessions = Sessions(library, _store(db), executor, _refused(library))
    try:
        started, nothing = _raise_event(ctx, sessions, event, data, as_text=True, locale=locale)
    except (TriggerError, SessionError, LibraryError) as err:
        _fail(fmt, getattr(err, "message", str(err)), 1)
    _drained(sessions, [s.id for s in started])
    items = [_outbound(sessions, s) for s in started]
    if fmt == "json":
        report: dict[str, Any] = {"event": event, "data": data, "sessions": items}
        if nothing:
            report["message"] = nothing
        click.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        if nothing:
            click.echo(nothing[0].upper() + nothing[1:])
        for item in items:
            _print_outbound(item)
    if any(s.error for s in started):
        ctx.exit(1)


@main.command()
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

    from engine.adapters.reporting import ReportError, open_store, report_for
    from engine.adapters.sql_store import default_url
    from engine.report import as_text

    library = _library_object(ctx)
    try:
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
    except ReportError as err:
        raise click.UsageError(str(err)) from None
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"report written to {out}", err=True)
    else:
        click.echo(text, nl=False)


@main.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@FORMAT_OPTION
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a JUnit XML report.",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=None,
    help="Fail below this node and edge coverage (%).",
)
@click.pass_context
def test_command(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str,
    junit: Path | None,
    min_coverage: float | None,
) -> None:
    """Run the scenario tests (*.test.yaml) with stubbed actions, and report coverage."""
    from engine.scenarios import coverage_of, run_file, scenario_files

    library = _library_object(ctx)
    coverage = coverage_of(library)
    results = []
    for path in scenario_files(library, paths):
        results += run_file(library, path, coverage)
    tested = {r.journey for r in results}
    cov = {
        j: c
        for j, c in coverage.items()
        if j in tested
        or any(j in library.bundle(t).sources for t in tested if t in library.journeys)
    }
    failed = [r for r in results if not r.passed]
    low = [
        c
        for c in cov.values()
        if min_coverage is not None and min(c.node_share, c.edge_share) < min_coverage
    ]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                    "scenarios": [
                        {
                            "file": r.file,
                            "journey": r.journey,
                            "name": r.name,
                            "passed": r.passed,
                            "differences": r.differences,
                            "outcome": r.outcome,
                            "path": r.path,
                        }
                        for r in results
                    ],
                    "coverage": {
                        j: {
                            "nodes": round(c.node_share, 1),
                            "edges": round(c.edge_share, 1),
                            "uncovered": c.uncovered,
                        }
                        for j, c in sorted(cov.items())
                    },
                },
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        )
    else:
        for r in results:
            click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.journey}: {r.name}")
            for difference in r.differences:
                click.echo("      " + difference.replace("\n", "\n      "))
        click.echo("\ncoverage (nodes, edges):")
        for jid, c in sorted(cov.items()):
            line = f"  {jid:28s} {c.node_share:5.1f}%  {c.edge_share:5.1f}%"
            if c.uncovered:
                line += (
                    "  uncovered: "
                    + ", ".join(c.uncovered[:6])
                    + (" ..." if len(c.uncovered) > 6 else "")
                )
            click.echo(line)
        click.echo(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    if junit is not None:
        _write_junit(junit, results)
    if low:
        click.echo(
            f"coverage below {min_coverage}% for: {', '.join(c.journey for c in low)}", err=True
        )
    if failed or low or not results:
        if not results:
            click.echo("no scenario found (*.test.yaml)", err=True)
        ctx.exit(1)


def _write_junit(path: Path, results: list[Any]) -> None:
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="journeys",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.journey, name=r.name, file=r.file)
        if not r.passed:
            failure = ET.SubElement(
                case,
                "failure",
                message=r.differences[0].splitlines()[0] if r.differences else "failed",
            )
            failure.text = "\n".join(r.differences)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


@main.group()
def db() -> None:
    """The session database."""


@db.command("upgrade")
@DB_OPTION
def db_upgrade(db: str | None) -> None:
    """Create or migrate the session database to the newest schema."""
    from engine.adapters.migrations import head_revision, upgrade_to_head
    from engine.adapters.sql_store import StoreError, default_url, make_engine

    url = db or default_url()
    try:
        engine = make_engine(url)
        upgrade_to_head(engine)
    except StoreError as err:
        raise click.ClickException(str(err)) from None
    except Exception as err:  # a database that cannot be reached: say which and why
        raise click.ClickException(f"cannot upgrade the session database: {err}") from None
    click.echo(f"session database at revision {head_revision()}")


@main.group(invoke_without_command=True)
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
    store = _store(db)
    try:
        if failed:
            rows = store.failed_runs(session_id, limit)
        else:
            rows = [{"id": None, "at": None, **r} for r in store.runs(session_id)][-limit:]
    finally:
        store.dispose()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
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
    from engine.adapters.executors import LazyExecutor
    from engine.errors import SessionError
    from engine.service import Sessions

    store = _store(db)
    sessions = Sessions(_library_object(ctx), store, LazyExecutor(executor_kind, ledger=ledger()))
    try:
        run, ran = sessions.rerun(run_id)
    except SessionError as err:
        raise click.ClickException(err.message) from None
    finally:
        store.dispose()
    if fmt == "json":
        click.echo(json.dumps({**run, "ran": ran}, indent=2, ensure_ascii=False, default=str))
    elif not ran:
        click.echo(f"run {run_id} ({run['action']}) has already succeeded: nothing run again")
    elif run["status"] == "succeeded":
        click.echo(f"run {run_id} ({run['action']}) succeeded")
    else:
        click.echo(f"run {run_id} ({run['action']}) failed again: {run.get('error')}", err=True)
    if run["status"] != "succeeded":
        ctx.exit(1)


@main.group()
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
    from actions.registry import ledger
    from engine.adapters.executors import LazyExecutor
    from engine.errors import SessionError
    from engine.library import LibraryError
    from engine.service import Sessions
    from engine.triggers import TriggerError

    library = _library_object(ctx)
    executor = LazyExecutor(executor_kind, ledger=ledger())
    sessions = Sessions(library, _store(db), executor, _refused(library))
    try:
        late = delayed_orders(min_days)
    except BackofficeUnavailable as err:
        raise click.ClickException(str(err)) from None
    results, failed, started_ids = [], False, []
    for data in late:
        item: dict[str, Any] = {"event": DELAYED_EVENT, "data": data, "sessions": []}
        try:
            started, nothing = _raise_event(
                ctx, sessions, DELAYED_EVENT, data, as_text=False, locale=locale
            )
        except (TriggerError, SessionError, LibraryError) as err:
            item["error"], failed = getattr(err, "message", str(err)), True
            results.append(item)
            continue
        item["sessions"] = [_outbound(sessions, s) for s in started]
        started_ids += [s.id for s in started]
        if nothing:
            item["message"] = nothing
        if started:
            record_delay_alert(
                data["order_id"], data["customer_id"], data["days_late"], [s.id for s in started]
            )
        failed = failed or any(s.error for s in started)
        results.append(item)
    _drained(sessions, started_ids)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(f"{len(late)} order(s) {min_days} or more days late not alerted yet")
        for item in results:
            d = item["data"]
            click.echo(f"order {d['order_id']} of {d['customer_id']}, {d['days_late']} days late:")
            if "error" in item:
                click.echo(f"  Error: {item['error']}")
            elif "message" in item:
                click.echo(f"  {item['message']}")
            for outbound in item["sessions"]:
                _print_outbound(outbound)
    if failed:
        ctx.exit(1)


@main.group()
def prefect() -> None:
    """The back office's processes: the action host and the embedded Prefect server."""


def _megabytes(pid: int) -> str:
    from engine.adapters.processes import rss_bytes

    return f"{rss_bytes(pid) / 1e6:.0f} MB"


@prefect.command("status")
def prefect_status() -> None:
    """List the back office's processes (pid, address, memory) and where actions run."""
    import os

    from engine.adapters.action_host import host_status
    from engine.adapters.home import idle_seconds
    from engine.adapters.prefect_server import home, running, server_record

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
    from engine.adapters.prefect_server import stop

    click.echo(
        "stopped the back office (the action host and the embedded Prefect server)"
        if stop()
        else "the back office was not running"
    )


@main.command()
def worker() -> None:
    """Serve the back-office actions as a Prefect task worker (scale-out; Ctrl-C stops).

    Run as many as needed, on this machine or others pointed at the same PREFECT_API_URL;
    sessions use them with --executor workers (or JOURNEYS_EXECUTOR=workers).
    """
    from engine.adapters.prefect_workers import serve_forever

    click.echo(
        "serving the back-office actions as Prefect task 'journeys.action' (Ctrl-C to stop)",
        err=True,
    )
    try:
        serve_forever()
    except KeyboardInterrupt:
        click.echo("worker stopped", err=True)


@main.command()
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

    from engine.adapters.sql_store import StoreError, shown_url
    from engine.library import LibraryError
    from engine.simulate import DEFAULT_SEED, SimulationError
    from engine.simulate import simulate as run_simulation

    library = _library_object(ctx)
    seed = DEFAULT_SEED if seed is None else seed
    store = _store(db)
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
    except (SimulationError, StoreError, LibraryError) as err:
        raise click.ClickException(str(err)) from None
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


@main.command()
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
    import os
    import signal

    import uvicorn

    from engine.adapters.connections import uvicorn_settings
    from engine.adapters.home import idle_seconds
    from engine.adapters.http import agent_keys
    from engine.adapters.keeper import Keeper
    from engine.ratelimit import RateLimitSettingError, rates_from_environment

    library = _library_object(ctx)  # a clear error now for a missing folder
    try:
        rates_from_environment()  # a clear error now for JOURNEYS_RATE_LIMITS
    except RateLimitSettingError as err:
        raise click.UsageError(str(err)) from None
    os.environ["JOURNEYS_LIBRARY"] = str(library.root.resolve())
    if db:
        os.environ["JOURNEYS_DB"] = db
    os.environ["JOURNEYS_EXECUTOR"] = executor_kind
    _store(db).dispose()  # a clear error now for a bad URL, and the tables created once
    from engine.retry_loop import interval_from_environment

    try:  # the incidents' retry loop runs in the server: a bad setting is said now
        interval_from_environment()
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    for _journey, reason in sorted(_refused(library).items()):
        click.echo(f"not served: {reason}", err=True)
    if not agent_keys():
        click.echo(
            "no agent key configured (JOURNEYS_AGENT_KEYS): only this machine may call the API",
            err=True,
        )
    try:
        idle_seconds()
    except ValueError as err:
        raise click.UsageError(str(err)) from None
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
    """A clear error now for a signed-identity configuration that cannot be safe, and one
    line saying how self-care customers are identified (docs/selfcare-identity.md)."""
    from engine.adapters.signed_identity import IdentityError, SignedIdentity

    try:
        signed = SignedIdentity.from_environment()
    except IdentityError as err:
        raise click.ClickException(str(err)) from None
    if signed is None:
        click.echo(
            "self-care: customers prove their number with a one-time code (no signed identity "
            "configured: JOURNEYS_IDENTITY_KEY or JOURNEYS_IDENTITY_JWKS)",
            err=True,
        )
    else:
        click.echo(f"self-care: signed identities accepted from {signed.issuer}", err=True)


@main.command()
@click.argument("journey")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "html"]),
    default="mermaid",
    show_default=True,
    help="Mermaid or Graphviz DOT text, or drawn by Graphviz: SVG, or one self-contained HTML page.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the diagram to this file (default: the standard output).",
)
@click.option(
    "--locale", default=None, help="The language of the texts (default: the journey's first)."
)
@click.option(
    "--heat",
    is_flag=True,
    help="Colour nodes and arrows by the traffic and drop-off of the sessions in --db.",
)
@DB_OPTION
@click.option(
    "--since", metavar="DATE", help="With --heat: sessions started from this day (YYYY-MM-DD)."
)
@click.option(
    "--until", metavar="DATE", help="With --heat: sessions started up to this day, included."
)
@click.pass_context
def graph(
    ctx: click.Context,
    journey: str,
    fmt: str,
    out: Path | None,
    locale: str | None,
    heat: bool,
    db: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Draw JOURNEY (an id, a motive, or a journey file) as a diagram.

    Kinds are shown by shape, outcomes by colour, arrows are labelled by their condition or
    option (docs/diagrams.md). Exit status: 0 drawn, 1 it cannot be drawn here, 2 usage.
    """
    from engine.adapters.graphviz_render import RenderError, to_html, to_svg
    from engine.diagram import to_dot, to_mermaid
    from engine.library import LibraryError

    if (since or until) and not heat:
        raise click.UsageError("--since and --until choose the sessions of --heat: add --heat")
    library = _library_object(ctx)
    try:
        definition = library.find(journey, paths=True)
    except LibraryError as err:
        raise click.UsageError(str(err)) from None
    if locale and definition.locales and locale not in definition.locales:
        raise click.UsageError(
            f"the journey {definition.id!r} has no texts in {locale!r}; it has "
            + ", ".join(repr(x) for x in definition.locales)
        )
    traffic = _journey_heat(definition.id, db, since, until) if heat else None
    render = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg, "html": to_html}[fmt]
    try:
        text = render(definition, traffic, locale)
    except RenderError as err:
        raise click.ClickException(str(err)) from None
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise click.ClickException(f"cannot write {str(out)!r}: {err.strerror}") from None
    click.echo(f"wrote {out}", err=True)


def _journey_heat(journey_id: str, db: str | None, since: str | None, until: str | None) -> Any:
    """The traffic of the journey's sessions (an ``engine.diagram.Heat``), with the days read
    as `journeys report` reads them."""
    from engine.adapters.reporting import ReportError, journey_heat, parse_day
    from engine.adapters.sql_store import default_url

    try:
        start = parse_day(since) if since else None
        end = parse_day(until, end=True) if until else None
    except ReportError as err:
        raise click.UsageError(str(err)) from None
    if start and end and start >= end:
        raise click.UsageError(f"--since {since} is not before --until {until}: nothing in between")
    try:
        return journey_heat(db or default_url(), journey_id, start, end)
    except ReportError as err:
        raise click.ClickException(str(err)) from None


# Last, after every command is registered: `python cli.py serve` works like `journeys serve`.
if __name__ == "__main__":
    main()
