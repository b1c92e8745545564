"""The ``journeys`` command: the click group and its global ``--library`` option. The
commands live in ``engine/adapters/cli/``, one module per concern; they parse options, call
the engine and print, nothing else.

Exit status: 0 success, 1 findings or failure, 2 usage (click's own convention); an error of
the engine exits with its class's ``exit_code`` (``engine/errors.py``).
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.adapters.cli import authoring, backoffice, insight, serving, sessions
from engine.adapters.cli.common import Group


class _Journeys(Group):
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
    from engine.definitions.shipped import default_library

    ctx.ensure_object(dict)
    ctx.obj["library"] = library if library is not None else default_library()


COMMANDS: list[click.Command] = [
    authoring.validate,
    authoring.schema,
    authoring.graph,
    authoring.test_command,
    sessions.run,
    sessions.runs,
    sessions.db,
    backoffice.trigger,
    backoffice.backoffice,
    serving.serve,
    serving.worker,
    serving.prefect,
    insight.report,
    insight.simulate,
]
for _command in COMMANDS:
    main.add_command(_command)


# Last, after every command is registered: `python cli.py serve` works like `journeys serve`.
if __name__ == "__main__":
    main()
