"""A journey's diagram as SVG or as one self-contained HTML page, drawn by Graphviz.

Graphviz's ``dot`` program (Debian's ``graphviz`` package) lays the diagram out, through the
``graphviz`` Python package. The page has the drawing inline, a legend and its own style: no
external resource, no CDN, no JavaScript, so it opens offline and can be mailed or archived.
"""

from __future__ import annotations

import html
import re

from engine.definitions.model import Journey
from engine.errors import Unavailable
from engine.insight.diagram import OUTCOME_COLOURS, SHAPES, Heat, heat_colour, legend_dot, to_dot


class RenderError(Unavailable):
    """The diagram cannot be drawn here: why, and what to do."""


NO_DOT = (
    "Graphviz's 'dot' program is not installed, so SVG and HTML cannot be drawn: install it "
    "(apt-get install graphviz) or use --format mermaid or --format dot"
)
_PROLOGUE = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", re.S)
_NAMESPACES = re.compile(r'\s+xmlns(:xlink)?="[^"]*"')


def svg(dot_source: str) -> str:
    """Graphviz DOT text drawn as SVG."""
    try:
        import graphviz
    except ImportError:
        raise RenderError(
            "the 'graphviz' Python package is missing: reinstall journeys (pip install -e .)"
        ) from None
    try:
        drawn: str = graphviz.pipe_string("dot", "svg", dot_source, encoding="utf-8", quiet=True)
    except graphviz.ExecutableNotFound:
        raise RenderError(NO_DOT) from None
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz could not draw the diagram: {detail}") from None
    return drawn


def to_svg(journey: Journey, heat: Heat | None = None, locale: str | None = None) -> str:
    return svg(to_dot(journey, heat, locale))


def to_html(journey: Journey, heat: Heat | None = None, locale: str | None = None) -> str:
    """One page: the title, the drawing inline, and a legend of shapes, colours and traffic."""
    locale = locale or (journey.locales[0] if journey.locales else "en")
    e = html.escape
    title = " ".join(journey.title.split())
    about = f"journey <code>{e(journey.id)}</code>, version {journey.version}, texts in {e(locale)}"
    if heat is not None:
        about += f", {heat.reached.get(journey.start, 0):,} session(s) from the session database"
    kinds = "".join(f"<li><b>{k}</b>: {e(shape[4])}</li>" for k, shape in SHAPES.items())
    outcomes = "".join(
        f'<li><span class="swatch" style="background:{fill};border-color:{border}"></span> {o}</li>'
        for o, (fill, border) in OUTCOME_COLOURS.items()
    )
    return f"""<!doctype html>
<html lang="{e(locale)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} ({e(journey.id)}): journey diagram</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5rem; color: #212121; }}
figure {{ margin: 1rem 0; overflow: auto; }}
figure svg {{ max-width: 100%; height: auto; }}  /* the whole journey at a glance; zoom in for detail */
.legend {{ border-top: 1px solid #bdbdbd; margin-top: 2rem; }}
.legend ul {{ columns: 2; padding-left: 1.2rem; }}
.swatch {{ display: inline-block; width: 1.4em; height: 1em; border: 2px solid #424242;
  vertical-align: middle; }}
</style>
</head>
<body>
<h1>{e(title)}</h1>
<p>{about}</p>
<figure>{_inline(svg(to_dot(journey, heat, locale)))}</figure>
<section class="legend">
<h2>Legend</h2>
<p>A node's shape shows its kind; an end's colour shows its outcome (a handoff ends the session
as escalated). An arrow is labelled by what takes it: a condition, <i>else</i>, an option's
value, <i>error</i> (the action failed) or <i>denied</i> (above the role's authority limits).</p>
<figure>{_inline(svg(legend_dot()))}</figure>
<ul>{kinds}</ul>
<ul>{outcomes}</ul>
{_heat_legend() if heat is not None else ""}</section>
</body>
</html>
"""


def _heat_legend() -> str:
    steps = "".join(
        f'<span class="swatch" style="background:{heat_colour(s / 4)}"></span> {s * 25}% '
        for s in range(5)
    )
    return f"""<h3>Traffic</h3>
<p>A node's fill shows the share of the sessions that reached it, of those that started: {steps}.
"Dropped" is the share of the sessions that reached a node and stopped there (abandoned or
handed off). An arrow's width and number show how many times it was taken; a dashed arrow was
never taken. An end keeps its outcome's colour as a thick border.</p>
"""


def _inline(drawn: str) -> str:
    """SVG for inside an HTML page: no XML prologue, doctype, comments nor namespace URLs."""
    return _NAMESPACES.sub("", _PROLOGUE.sub("", drawn), count=2).strip()
