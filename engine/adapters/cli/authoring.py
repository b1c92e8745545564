"""The commands for the people who write journeys: ``validate``, ``schema``, ``graph`` and
``test`` (the scenario tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.adapters.cli.common import (
    DB_OPTION,
    FORMAT_OPTION,
    as_json,
    as_usage,
    command,
    library_path,
    named_journey,
    open_library,
)

if TYPE_CHECKING:
    from engine.definitions.findings import Finding
    from engine.definitions.validate import Report
    from engine.insight.diagram import Heat
    from engine.insight.scenarios import ScenarioResult, ScenarioRun


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


# ----------------------------------------------------------------------------- validate


@command()
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
    from engine.definitions.validate import Options
    from engine.definitions.validate import validate as run

    library = library_path(ctx)
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
    report = run(targets, library, catalogue(), options)  # a path it cannot use: exit 2
    if progress:
        click.echo("\r\033[K", nl=False, err=True)
    _print_report(report, fmt, targets, library)
    if report.errors or (strict and report.warnings):
        ctx.exit(1)


def _print_report(report: Report, fmt: str, targets: list[Path], library: Path) -> None:
    cwd = Path.cwd()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "errors": [_shown(f, cwd, targets, library) for f in report.errors],
                    "warnings": [_shown(f, cwd, targets, library) for f in report.warnings],
                    "files": report.files,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for f in report.findings:
        item = _shown(f, cwd, targets, library)
        if fmt == "github":
            click.echo(_github(item))
        else:
            click.echo(f"{item['file']}:{item['line']}:{item['column']}: {f.code} {f.message}")
    click.echo(_summary(len(report.errors), len(report.warnings), report.files), err=True)


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
    from engine.definitions.validate import library_of

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


# ------------------------------------------------------------------------------- schema


@command()
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
    from engine.definitions.checks.schema import SCHEMA_NAMES, schema_path

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in SCHEMA_NAMES:
            target = out_dir / f"{n}.schema.json"
            target.write_text(schema_path(n).read_text(encoding="utf-8"), encoding="utf-8")
            click.echo(f"wrote {target}")
        return
    click.echo(schema_path(name or "journey").read_text(encoding="utf-8"), nl=False)


# -------------------------------------------------------------------------------- graph


@command()
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
    from engine.adapters.graphviz_render import to_html, to_svg
    from engine.insight.diagram import to_dot, to_mermaid

    if (since or until) and not heat:
        raise click.UsageError("--since and --until choose the sessions of --heat: add --heat")
    definition = named_journey(open_library(ctx), journey)
    if locale and definition.locales and locale not in definition.locales:
        raise click.UsageError(
            f"the journey {definition.id!r} has no texts in {locale!r}; it has "
            + ", ".join(repr(x) for x in definition.locales)
        )
    traffic = _journey_heat(definition.id, db, since, until) if heat else None
    render = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg, "html": to_html}[fmt]
    text = render(definition, traffic, locale)  # no Graphviz here: exit 1, saying what to do
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise click.ClickException(f"cannot write {str(out)!r}: {err.strerror}") from None
    click.echo(f"wrote {out}", err=True)


def _journey_heat(journey_id: str, db: str | None, since: str | None, until: str | None) -> Heat:
    """The traffic of the journey's sessions, with the days read as `journeys report` reads
    them; no session database is exit 1, as for a report error of the database."""
    from engine.adapters.sql import reporting
    from engine.adapters.sql.store import default_url

    with as_usage(reporting.ReportError):  # a day as typed
        start = reporting.parse_day(since) if since else None
        end = reporting.parse_day(until, end=True) if until else None
    if start and end and start >= end:
        raise click.UsageError(f"--since {since} is not before --until {until}: nothing in between")
    return reporting.journey_heat(db or default_url(), journey_id, start, end)


# --------------------------------------------------------------------------------- test


@command("test")
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
    from engine.insight.scenarios import run_scenarios

    tests = run_scenarios(open_library(ctx), paths)
    if fmt == "json":
        click.echo(as_json(_tests_as_data(tests)))
    else:
        _print_tests(tests)
    if junit is not None:
        _write_junit(junit, tests.results)
    low = tests.below(min_coverage)
    if low:
        click.echo(
            f"coverage below {min_coverage}% for: {', '.join(c.journey for c in low)}", err=True
        )
    if tests.failed or low or not tests.results:
        if not tests.results:
            click.echo("no scenario found (*.test.yaml)", err=True)
        ctx.exit(1)


def _tests_as_data(tests: ScenarioRun) -> dict[str, Any]:
    return {
        "passed": len(tests.results) - len(tests.failed),
        "failed": len(tests.failed),
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
            for r in tests.results
        ],
        "coverage": {
            j: {
                "nodes": round(c.node_share, 1),
                "edges": round(c.edge_share, 1),
                "uncovered": c.uncovered,
            }
            for j, c in sorted(tests.coverage.items())
        },
    }


def _print_tests(tests: ScenarioRun) -> None:
    for r in tests.results:
        click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.journey}: {r.name}")
        for difference in r.differences:
            click.echo("      " + difference.replace("\n", "\n      "))
    click.echo("\ncoverage (nodes, edges):")
    for jid, c in sorted(tests.coverage.items()):
        line = f"  {jid:28s} {c.node_share:5.1f}%  {c.edge_share:5.1f}%"
        if c.uncovered:
            line += (
                "  uncovered: "
                + ", ".join(c.uncovered[:6])
                + (" ..." if len(c.uncovered) > 6 else "")
            )
        click.echo(line)
    click.echo(f"\n{len(tests.results) - len(tests.failed)} passed, {len(tests.failed)} failed")


def _write_junit(path: Path, results: list[ScenarioResult]) -> None:
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
