"""The report as one self-contained HTML page: headline figures, charts, diagrams with heat,
tables. No CDN, no script: the charts are inline SVG drawn here (bars need no layout engine),
the diagrams come from Graphviz (engine/adapters/graphviz_render.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from engine.definitions.library import Library
from engine.insight.report import NodeFunnel, Report, heat_of, num, pct

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["pct"] = pct
_env.filters["num"] = num

OUTCOME_COLOURS = {
    "resolved": "#2e7d32",
    "escalated": "#ef6c00",
    "abandoned": "#9e9e9e",
    "unresolved": "#c62828",
    "callback": "#1565c0",
    "open": "#cfd8dc",
}


def render_html(
    report: Report, library: Library | None, db_label: str = "", form: bool = False
) -> str:
    """The whole page for ``report``; diagrams for the journeys of its funnels; ``form``: with
    the filters on top (the console's report page)."""
    overall = report.overall.figures()
    motives = sorted(report.by.get("motive", {}).items(), key=lambda kv: -kv[1].sessions)
    charts = {
        "once_and_done": bars(
            [(m, t.figures()["once_and_done_rate"]) for m, t in motives],
            percent=True,
            label="Once-and-done rate by motive",
        ),
        "prevalence": bars(
            [(p["motive"], p["share"]) for p in report.prevalence()],
            percent=True,
            label="Share of contacts by motive",
            colour="#5c6bc0",
        ),
        "outcomes": stacked(
            {
                **{k: v for k, v in overall["counts"].items() if k != "once_and_done"},
                "open": overall["open"],
            },
            label="Outcomes of all sessions",
        ),
        "channels": bars(
            [
                (c, t.figures()["once_and_done_rate"])
                for c, t in sorted(report.by.get("channel", {}).items())
            ],
            percent=True,
            label="Once-and-done rate by channel",
            colour="#00897b",
        ),
    }
    diagrams = {
        journey: _diagram(library, journey, nodes) for journey, nodes in report.funnels.items()
    }
    return _env.get_template("report.html.j2").render(
        report=report,
        overall=overall,
        charts=charts,
        diagrams=diagrams,
        dimensions=[
            d for d in ("motive", "category", "journey", "version", "channel") if d in report.by
        ],
        prevalence=report.prevalence(),
        db_label=db_label,
        colours=OUTCOME_COLOURS,
        form=form,
        motives=sorted(library.motives) if library else [],
    )


def _diagram(library: Library | None, journey_id: str, nodes: list[NodeFunnel]) -> Markup | str:
    """The journey's diagram coloured by this report's traffic; a note if it cannot be drawn."""
    if library is None or journey_id not in library.journeys:
        return "(the journey is not in this library: no diagram)"
    from engine.adapters.graphviz_render import RenderError, to_svg

    try:
        drawn = to_svg(library.journeys[journey_id], heat_of(nodes))
    except RenderError as err:
        return str(err)
    start = drawn.find("<svg")
    return Markup(drawn[start:] if start >= 0 else drawn)


def bars(
    items: list[tuple[str, float | None]],
    *,
    percent: bool,
    label: str,
    colour: str = "#2e7d32",
) -> Markup:
    """A horizontal bar chart as inline SVG, one bar per item, the value written beside it."""
    row, left, width = 22, 190, 300
    height = row * max(len(items), 1) + 10
    peak = 1.0 if percent else max((v or 0 for _k, v in items), default=1) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{_attr(label)}" width="{left + width + 70}"'
        f' height="{height}" viewBox="0 0 {left + width + 70} {height}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{_attr(label)}</title>",
    ]
    for i, (key, value) in enumerate(items):
        y = 5 + i * row
        length = 0 if value is None else max(1.0, width * value / peak)
        shown = (pct(value) if percent else num(value)) if value is not None else "-"
        parts += [
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{_attr(key)}</text>',
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 7}"'
            f' fill="{colour}"><title>{_attr(key)}: {shown}</title></rect>',
            f'<text x="{left + length + 5:.1f}" y="{y + 15}">{shown}</text>',
        ]
    if not items:
        parts.append(f'<text x="{left}" y="20">no data</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked(counts: dict[str, int], *, label: str) -> Markup:
    """One bar split by outcome, with a legend."""
    total = sum(counts.values())
    width, x = 720, 0.0
    parts = [
        f'<svg class="chart" role="img" aria-label="{_attr(label)}" width="{width}" height="64"'
        f' viewBox="0 0 {width} 64" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{_attr(label)}</title>",
    ]
    legend_x = 0
    for name, count in counts.items():
        colour = OUTCOME_COLOURS.get(name, "#607d8b")
        if total and count:
            w = width * count / total
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="26" fill="{colour}">'
                f"<title>{_attr(name)}: {count:,} ({pct(count / total)})</title></rect>"
            )
            x += w
        parts += [
            f'<rect x="{legend_x}" y="40" width="12" height="12" fill="{colour}"/>',
            f'<text x="{legend_x + 16}" y="51">{_attr(name)} {count:,}</text>',
        ]
        legend_x += 120
    parts.append("</svg>")
    return Markup("".join(parts))


def _attr(text: Any) -> str:
    return str(Markup.escape(str(text)))
