"""A journey as a diagram: Mermaid or Graphviz DOT text, optionally coloured by traffic.

Pure: a journey (and the traffic of its sessions, if any) in, text out. Node kinds are shown
by shape, outcomes by colour, edges are labelled by the condition or option that takes them.
``engine.adapters.graphviz_render`` turns the DOT text into SVG and HTML.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.definitions.model import Journey, Node, Text


@dataclass(frozen=True)
class Heat:
    """The traffic of a journey's sessions, from the session database."""

    reached: Mapping[str, int]  # node id -> sessions that reached it
    dropped: Mapping[str, int]  # node id -> sessions that stopped there (abandoned or handed off)
    edges: Mapping[tuple[str, str], int]  # (from node, to node) -> times taken


#: kind -> (Graphviz shape, extra Graphviz attributes, Mermaid opening, Mermaid closing, meaning)
SHAPES: Mapping[str, tuple[str, Mapping[str, str], str, str, str]] = {
    "say": ("note", {}, '>"', '"]', "says something (note; a flag in Mermaid)"),
    "ask": ("parallelogram", {}, '[/"', '"/]', "asks for a value (parallelogram)"),
    "choose": ("hexagon", {}, '{{"', '"}}', "offers options (hexagon)"),
    "decide": ("diamond", {}, '{"', '"}', "decides on conditions (diamond)"),
    "action": (
        "component",
        {},
        '["',
        '"]',
        "runs a back-office action (component; a box in Mermaid)",
    ),
    "journey": (
        "box",
        {"peripheries": "2"},
        '[["',
        '"]]',
        "runs a sub-journey (double-bordered box)",
    ),
    "handoff": (
        "house",
        {},
        '[/"',
        '"\\]',
        "hands off to a human queue (house; a trapezoid in Mermaid)",
    ),
    "end": (
        "oval",
        {"peripheries": "2"},
        '(["',
        '"])',
        "ends with an outcome (double oval; a stadium in Mermaid)",
    ),
}
#: outcome -> (fill, border). A handoff ends the session as escalated: it takes that colour.
OUTCOME_COLOURS: Mapping[str, tuple[str, str]] = {
    "resolved": ("#c8e6c9", "#2e7d32"),
    "unresolved": ("#ffcdd2", "#c62828"),
    "escalated": ("#ffe0b2", "#ef6c00"),
    "callback": ("#bbdefb", "#1565c0"),
    "abandoned": ("#e0e0e0", "#616161"),
}
PLAIN = ("#ffffff", "#424242")
MISSING = ("#ffffff", "#c62828")  # an edge to a node that does not exist (`journeys validate`)
PALE, STRONG = (255, 245, 240), (165, 15, 21)  # the heat scale, from no traffic to all of it
UNUSED_EDGE = "#bdbdbd"
TEXT_WIDTH = 40  # a node's text is cut there; conditions are wrapped there


@dataclass(frozen=True)
class Box:
    """A node as drawn."""

    id: str
    kind: str  # a node kind, or "missing"
    lines: tuple[str, ...]
    fill: str
    border: str
    font: str = "#000000"
    bold: bool = False  # an end's border under heat, so its outcome still shows


@dataclass(frozen=True)
class Arrow:
    """The ways from one node to another (several options may go to the same node)."""

    source: str
    target: str
    lines: tuple[str, ...]
    count: int | None = None
    width: float = 1.0
    colour: str = PLAIN[1]


@dataclass(frozen=True)
class Diagram:
    title: str
    start: str
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]


def heat_colour(share: float) -> str:
    """The fill for a share of sessions (0 to 1), from pale to strong."""
    share = min(max(share, 0.0), 1.0)
    rgb = (round(p + (s - p) * share) for p, s in zip(PALE, STRONG, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def diagram(journey: Journey, heat: Heat | None = None, locale: str | None = None) -> Diagram:
    """What to draw: one box per node, one arrow per pair of connected nodes."""
    locale = locale or (journey.locales[0] if journey.locales else None)
    total = 0
    if heat is not None:
        total = heat.reached.get(journey.start, 0) or max(heat.reached.values(), default=0)
    boxes = [_box(node, locale, heat, total) for node in journey.nodes.values()]
    ways: dict[tuple[str, str], list[str]] = {}
    for node in journey.nodes.values():
        for edge in node.edges():
            ways.setdefault((edge.source, edge.target), []).extend(_way(node, edge.via))
    named = {journey.start, *(target for _source, target in ways)}
    missing = sorted(n for n in named if n not in journey.nodes)
    boxes += [Box(m, "missing", (_clean(m), "(no such node)"), *MISSING) for m in missing]
    arrows = [_arrow(pair, lines, heat, total) for pair, lines in ways.items()]
    title = f"{_clean(journey.title)} ({journey.id} v{journey.version})"
    return Diagram(title, journey.start, tuple(boxes), tuple(arrows))


def _box(node: Node, locale: str | None, heat: Heat | None, total: int) -> Box:
    detail = {
        "action": node.action,
        "journey": f"calls {node.journey}" if node.journey else None,
        "handoff": f"queue {node.queue}" if node.queue else None,
        "end": node.outcome,
    }.get(node.kind)
    lines = [_clean(node.id)] + [_short(t) for t in (detail, text(node.say, locale)) if t]
    outcome = "escalated" if node.kind == "handoff" else node.outcome
    fill, border = OUTCOME_COLOURS.get(outcome or "", PLAIN)
    if heat is None:
        return Box(node.id, node.kind, tuple(lines), fill, border)
    reached, dropped = heat.reached.get(node.id, 0), heat.dropped.get(node.id, 0)
    lines.append(
        f"reached {reached:,}" + (f" · dropped {_percent(dropped, reached)}" if reached else "")
    )
    share = reached / total if total else 0.0
    font = "#ffffff" if share >= 0.55 else "#000000"
    return Box(
        node.id, node.kind, tuple(lines), heat_colour(share), border, font, border != PLAIN[1]
    )


def _arrow(pair: tuple[str, str], lines: list[str], heat: Heat | None, total: int) -> Arrow:
    if heat is None:
        return Arrow(*pair, tuple(lines))
    count = heat.edges.get(pair, 0)
    share = min(count / total, 1.0) if total else 0.0
    colour = heat_colour(0.35 + 0.65 * share) if count else UNUSED_EDGE
    return Arrow(*pair, (*lines, f"{count:,}"), count, round(1 + 7 * share, 2), colour)


def _way(node: Node, via: str) -> list[str]:
    """The label of one way out of a node: its condition, option, or what takes it."""
    if via.startswith("branch "):
        condition = _clean(node.branches[int(via.split()[1]) - 1].condition)
        return textwrap.wrap(condition, TEXT_WIDTH, break_long_words=False) or [""]
    if via.startswith("option "):
        value = next(o.value for o in node.options if f"option {o.value!r}" == via)
        return [_short(value if isinstance(value, str) else json.dumps(value))]
    return {
        "next": [],
        "on_error": ["error"],
        "on_failure": ["failure"],
        "on_denied": ["denied"],
    }.get(via, [via])


def text(value: Text | None, locale: str | None) -> str | None:
    """A text in the locale, else in the first language it is written in."""
    if value is None or isinstance(value, str):
        return value
    return value.get(locale or "") or next(iter(value.values()), None)


def _clean(value: Any) -> str:
    return " ".join(str(value).split())


def _short(value: Any, width: int = TEXT_WIDTH) -> str:
    cleaned = _clean(value)
    return cleaned if len(cleaned) <= width else cleaned[: width - 1].rstrip() + "…"


def _percent(part: int, whole: int) -> str:
    share = part / whole
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


# --------------------------------------------------------------------------- DOT


def to_dot(journey: Journey, heat: Heat | None = None, locale: str | None = None) -> str:
    """Graphviz DOT text of the journey (``dot -Tsvg`` draws it)."""
    return dot_text(diagram(journey, heat, locale))


def dot_text(d: Diagram) -> str:
    entry = _unique("__start__", {b.id for b in d.boxes})
    out = [
        f"digraph {_q(d.title)} {{",
        f"  graph [label={_q(d.title)}, labelloc=t, fontname=Helvetica, rankdir=TB];",
        '  node [fontname=Helvetica, fontsize=11, style=filled, margin="0.15,0.05"];',
        "  edge [fontname=Helvetica, fontsize=9];",
        f'  {_q(entry)} [shape=point, width=0.15, label="", color="{PLAIN[1]}"];',
    ]
    for b in d.boxes:
        shape, extra, *_ = SHAPES.get(b.kind, ("box", {"style": "filled,dashed"}, "", "", ""))
        attrs = {"shape": shape, **extra, "label": "\n".join(b.lines)}
        attrs |= {"fillcolor": b.fill, "color": b.border, "fontcolor": b.font}
        if b.bold:
            attrs["penwidth"] = "3"
        out.append(f"  {_q(b.id)} [{_attrs(attrs)}];")
    out.append(f"  {_q(entry)} -> {_q(d.start)};")
    for a in d.arrows:
        attrs = {"label": "\n".join(a.lines)} if a.lines else {}
        if a.count is not None:
            attrs |= {"penwidth": f"{a.width:g}", "color": a.colour}
            attrs |= {"style": "dashed"} if a.count == 0 else {}
        tail = f" [{_attrs(attrs)}]" if attrs else ""
        out.append(f"  {_q(a.source)} -> {_q(a.target)}{tail};")
    return "\n".join([*out, "}"]) + "\n"


def legend_dot() -> str:
    """The shapes of the kinds and the colours of the outcomes, for a page beside a diagram."""
    out = ["digraph legend {", "  node [fontname=Helvetica, fontsize=10, style=filled];"]
    for kind, (shape, extra, *_) in SHAPES.items():
        fill, border = OUTCOME_COLOURS["escalated"] if kind == "handoff" else PLAIN
        attrs = {"shape": shape, **extra, "label": kind, "fillcolor": fill, "color": border}
        out.append(f"  {_q('kind ' + kind)} [{_attrs(attrs)}];")
    kinds = list(SHAPES)
    for i, (outcome, (fill, border)) in enumerate(OUTCOME_COLOURS.items()):
        attrs = {**SHAPES["end"][1], "shape": "oval", "label": outcome}
        attrs |= {"fillcolor": fill, "color": border}
        out.append(f"  {_q('outcome ' + outcome)} [{_attrs(attrs)}];")
        out.append(f"  {_q('kind ' + kinds[i])} -> {_q('outcome ' + outcome)} [style=invis];")
    return "\n".join([*out, "}"]) + "\n"


def _q(value: str) -> str:
    """A DOT quoted string; a newline becomes a line break of the label."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ENTITIES = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
# Mermaid reads {} | in a label as syntax, and a backslash and n as a line break
_MERMAID_ENTITIES |= {"`": "#96;", "{": "#123;", "}": "#125;", "|": "#124;", "\\": "#92;"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_]+")


def to_mermaid(journey: Journey, heat: Heat | None = None, locale: str | None = None) -> str:
    """Mermaid flowchart text of the journey (GitHub, GitLab and many wikis draw it)."""
    return mermaid_text(diagram(journey, heat, locale))


def mermaid_text(d: Diagram) -> str:
    ids = {
        b.id: f"n_{b.id}" if _SAFE_ID.fullmatch(b.id) else f"n{i}" for i, b in enumerate(d.boxes)
    }
    out = [f"%% {_mm(d.title)}", "flowchart TD", '  entry((" "))']
    for b in d.boxes:
        opening, closing = SHAPES[b.kind][2:4] if b.kind in SHAPES else ('["', '"]')
        out.append(f"  {ids[b.id]}{opening}{'<br/>'.join(_mm(x) for x in b.lines)}{closing}")
    out.append(f"  entry --> {ids[d.start]}")
    for a in d.arrows:
        label = f'|"{"<br/>".join(_mm(x) for x in a.lines)}"|' if a.lines else ""
        out.append(f"  {ids[a.source]} -->{label} {ids[a.target]}")
    out.append(f"  style entry fill:{PLAIN[1]},stroke:{PLAIN[1]}")
    for b in d.boxes:
        dashed = ",stroke-dasharray:4" if b.kind == "missing" else ""
        width = ",stroke-width:3px" if b.bold else ""
        out.append(
            f"  style {ids[b.id]} fill:{b.fill},stroke:{b.border},color:{b.font}{width}{dashed}"
        )
    for i, a in enumerate(d.arrows, 1):  # linkStyle 0 is the arrow into the start
        if a.count is not None:
            dashed = ",stroke-dasharray:4" if a.count == 0 else ""
            out.append(f"  linkStyle {i} stroke:{a.colour},stroke-width:{a.width:g}px{dashed}")
    return "\n".join(out) + "\n"


def _mm(value: str) -> str:
    """Text inside a quoted Mermaid label: entities for what Mermaid or HTML would read."""
    escaped = "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in value)
    return escaped.replace("#92;n", "#92;\u200bn")  # a zero-width space keeps `\n` as text
