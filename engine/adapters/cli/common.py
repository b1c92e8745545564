"""What every command shares: how an engine error is shown and with which exit status, the
shared options, and reading what was typed (files, NAME=VALUE pairs, the library, the store).

Commands never catch an engine error to translate it: :class:`Command` shows any
:class:`~engine.errors.JourneysError` that comes out of one, with the error's ``exit_code``.
The only translation left is :func:`as_usage`, for an error a command knows comes from what
the person typed (a journey's name, a date, a setting): that is a usage error, exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from engine.errors import InvalidAnswer, JourneyHasErrors, JourneysError

if TYPE_CHECKING:
    from engine.adapters.sql.store import SqlStore
    from engine.definitions.library import Library
    from engine.definitions.model import Journey
    from engine.sessions.service import Sessions


def said(error: JourneysError) -> str:
    """The error's message as the command line says it."""
    if isinstance(error, InvalidAnswer) and error.node is not None:
        return f"invalid answer at {error.node!r}: {error.message}"
    return error.message


class Failure(click.ClickException):
    """A :class:`JourneysError` shown by the command line, which then exits with the error's
    ``exit_code``: ``Error: message`` on stderr, under the usage line for a usage error (as
    click shows its own), or ``{"error": message}`` on stdout when the command's answer is
    JSON (``as_json``; usage errors stay click's)."""

    def __init__(
        self, error: JourneysError, ctx: click.Context | None = None, as_json: bool = False
    ) -> None:
        super().__init__(said(error))
        self.error = error
        self.exit_code = error.exit_code  # type: ignore[misc]  # click sets it per class; here per error
        self.ctx = ctx
        self.as_json = as_json and not self.usage

    @property
    def usage(self) -> bool:
        return self.exit_code == click.UsageError.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": self.message}, ensure_ascii=False))
        elif self.usage:
            click.UsageError(self.message, self.ctx).show(file)
        else:
            super().show(file)


@contextmanager
def _shown(ctx: click.Context) -> Iterator[None]:
    try:
        yield
    except JourneysError as err:
        raise Failure(err, ctx) from None


@contextmanager
def json_errors(fmt: str) -> Iterator[None]:
    """Within: with ``--format json``, an engine error is the command's JSON answer, for the
    scripts that read it (what the session answered: an invalid answer, a failure). Around
    the session's steps only: a store that cannot be opened is said on stderr, as any
    command's failure, and so is a journey that may not start, as `journeys validate` says
    its errors."""
    try:
        yield
    except JourneysError as err:
        if fmt != "json" or isinstance(err, JourneyHasErrors):
            raise
        raise Failure(err, click.get_current_context(silent=True), as_json=True) from None


class Command(click.Command):
    """A command whose engine errors are shown as :class:`Failure`."""

    def invoke(self, ctx: click.Context) -> Any:
        with _shown(ctx):
            return super().invoke(ctx)


class Group(click.Group):
    """A group whose own errors are shown as :class:`Failure`; its commands are
    :class:`Command` and its subgroups :class:`Group`."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        with _shown(ctx):
            return super().invoke(ctx)


def command(name: str | None = None, **attrs: Any) -> Callable[[Callable[..., Any]], Command]:
    """``click.command`` making a :class:`Command`."""
    return click.command(name, cls=Command, **attrs)


def group(name: str | None = None, **attrs: Any) -> Callable[[Callable[..., Any]], Group]:
    """``click.group`` making a :class:`Group`."""
    return click.group(name, cls=Group, **attrs)


@contextmanager
def as_usage(*kinds: type[Exception]) -> Iterator[None]:
    """Within: an error of ``kinds`` comes from what the person typed (a name, a date, a
    setting, a folder), so it is a usage error (exit 2) whatever its class says."""
    try:
        yield
    except kinds as err:
        raise click.UsageError(str(err)) from None


# ------------------------------------------------------------------------------ options

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


# ---------------------------------------------------------------------- what was typed


def library_path(ctx: click.Context) -> Path:
    """The library folder of ``--library`` (or its default), as given."""
    return Path(ctx.obj["library"])


def open_library(ctx: click.Context) -> Library:
    from engine.definitions.library import Library, LibraryError

    with as_usage(LibraryError):  # the folder given does not exist
        return Library(library_path(ctx))


def named_journey(library: Library, name: str) -> Journey:
    """The journey a person names on the command line: an id, a motive, or a file."""
    from engine.definitions.library import LibraryError

    with as_usage(LibraryError):
        return library.find(name, paths=True)


def session_store(db: str | None) -> SqlStore:
    from engine.adapters.sql.store import SqlStore, default_url

    return SqlStore(db or default_url())


def read_mapping(path: Path | None, what: str) -> dict[str, Any]:
    """A YAML or JSON mapping from a file (answers, action stubs)."""
    if path is None:
        return {}
    from engine.definitions.yamlsafe import YamlError, load

    try:
        data = load(path)
    except (OSError, YamlError) as err:
        raise click.UsageError(f"{what} file {str(path)!r}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.UsageError(f"{what} file {str(path)!r} must hold a mapping (node: answer)")
    return dict(data)


def parse_pairs(option: str, pairs: tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` options (``--input``, ``--data``) as a mapping."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"{option} {pair!r}: write it as NAME=VALUE")
        values[name.strip()] = value
    return values


def refused(library: Library) -> dict[str, str]:
    """The journeys of the library that may not start (validation errors), with the reason."""
    from actions.registry import catalogue
    from engine.definitions.library import refusals

    return refusals(library, catalogue())


def drained(sessions: Sessions, session_ids: list[str]) -> list[dict[str, Any]]:
    """Wait for the background runs of these sessions, then say which failed (post-contact
    and `wait: false` actions never change the outcome, but a failure is recorded and said,
    with how to run it again: never dropped)."""
    sessions.drain()
    failed = [dict(run) for sid in session_ids for run in sessions.store.failed_runs(sid)]
    for run in failed:
        click.echo(
            f"warning: a background action failed: {run['action']} (run {run['id']}): "
            f"{run.get('error')}; run it again with: journeys runs retry {run['id']}",
            err=True,
        )
    return failed


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
