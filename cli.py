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

DEFAULT_LIBRARY = "journeys"


def _library(ctx: click.Context) -> Path:
    return Path(ctx.obj["library"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--library",
    envvar="JOURNEYS_LIBRARY",
    default=DEFAULT_LIBRARY,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The journey library folder (or set JOURNEYS_LIBRARY).",
)
@click.version_option(package_name="journeys")
@click.pass_context
def main(ctx: click.Context, library: Path) -> None:
    """Guided resolution journeys for customer service: once and done."""
    ctx.ensure_object(dict)
    ctx.obj["library"] = library


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
    from engine.validate import Options, UsageError
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
        if full.exists():
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
@click.argument("name", required=False, type=click.Choice(["journey", "motives", "scenario"]))
@click.option(
    "--write",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write all three schemas into this folder instead of printing.",
)
def schema(name: str | None, out_dir: Path | None) -> None:
    """Print a JSON Schema (journey, motives or scenario), or --write them all."""
    from engine.checks.schema import SCHEMA_NAMES, schema_path

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in SCHEMA_NAMES:
            target = out_dir / f"{n}.schema.json"
            target.write_text(schema_path(n).read_text(encoding="utf-8"), encoding="utf-8")
            click.echo(f"wrote {target}")
        return
    click.echo(schema_path(name or "journey").read_text(encoding="utf-8"), nl=False)


if __name__ == "__main__":
    main()
