"""The insight report: first-contact resolution, effort, recommendation, funnels, prevalence.

Pure data and arithmetic: the database adapter (engine/adapters/sql/reporting.py) groups the
sessions and visits in SQL and hands over counts; this module turns counts into rates (never
dividing by zero: a rate with nothing to count is None, shown as "-") and into text or JSON.
The definitions are in docs/insight.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from engine.insight.diagram import Heat

#: What a group of sessions counts, as the database gives it.
COUNTS = (
    "sessions",
    "open",
    "resolved",
    "once_and_done",
    "escalated",
    "abandoned",
    "unresolved",
    "callback",
    "ces_sum",
    "ces_count",
    "promoters",
    "detractors",
    "nps_count",
    "steps_sum",
    "resolve_ms_sum",
    "resolve_count",
)


def share(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass
class Tally:
    """Counts of one group of sessions (a motive, a journey version, a channel, or all)."""

    sessions: int = 0
    open: int = 0  # not finished, and active within the idle time: no verdict yet
    resolved: int = 0
    once_and_done: int = 0  # resolved, and no new contact on the motive within the window
    escalated: int = 0  # handed to a person (outcome escalated)
    abandoned: int = 0  # left unfinished longer than the idle time, or outcome abandoned
    unresolved: int = 0
    callback: int = 0
    ces_sum: int = 0
    ces_count: int = 0
    promoters: int = 0  # NPS 9-10
    detractors: int = 0  # NPS 0-6
    nps_count: int = 0
    steps_sum: int = 0
    resolve_ms_sum: int = 0
    resolve_count: int = 0

    def add(self, other: Tally | Mapping[str, Any]) -> None:
        for name in COUNTS:
            value = getattr(other, name) if isinstance(other, Tally) else other.get(name)
            setattr(self, name, getattr(self, name) + int(value or 0))

    @property
    def closed(self) -> int:
        """Sessions with a verdict: the denominator of every rate."""
        return self.sessions - self.open

    def figures(self) -> dict[str, Any]:
        """The rates and means of the group (None where there is nothing to measure)."""
        return {
            "sessions": self.sessions,
            "closed": self.closed,
            "open": self.open,
            "once_and_done_rate": share(self.once_and_done, self.closed),
            "resolved_rate": share(self.resolved, self.closed),
            "handoff_rate": share(self.escalated, self.closed),
            "abandonment_rate": share(self.abandoned, self.closed),
            "ces": share(self.ces_sum, self.ces_count),
            "ces_responses": self.ces_count,
            "nps": _nps(self),
            "nps_responses": self.nps_count,
            "mean_steps": share(self.steps_sum, self.sessions),
            "mean_minutes_to_resolution": _minutes(share(self.resolve_ms_sum, self.resolve_count)),
            "counts": {
                "resolved": self.resolved,
                "once_and_done": self.once_and_done,
                "escalated": self.escalated,
                "abandoned": self.abandoned,
                "unresolved": self.unresolved,
                "callback": self.callback,
            },
        }


def _nps(t: Tally) -> float | None:
    """Net promoter score: promoters minus detractors, in points of the responses (-100..100)."""
    value = share(t.promoters - t.detractors, t.nps_count)
    return None if value is None else value * 100


def _minutes(ms: float | None) -> float | None:
    return None if ms is None else ms / 60_000


@dataclass
class NodeFunnel:
    """One node of a journey: who reached it, where they went, where they stopped."""

    journey: str
    node: str
    reached: int = 0  # sessions that reached it
    visits: int = 0  # times it was entered (a loop counts each time)
    exits: dict[str, int] = field(default_factory=dict)  # next node -> times taken
    abandoned: int = 0  # sessions abandoned while waiting here
    handed_off: int = 0  # sessions handed to a person here
    seconds_sum: float = 0.0  # time spent here before the next node
    seconds_count: int = 0

    @property
    def mean_seconds(self) -> float | None:
        return share(self.seconds_sum, self.seconds_count)

    @property
    def drop_off_rate(self) -> float | None:
        return share(self.abandoned + self.handed_off, self.reached)

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "node": self.node,
            "reached": self.reached,
            "visits": self.visits,
            "exits": dict(sorted(self.exits.items(), key=lambda kv: (-kv[1], kv[0]))),
            "abandoned": self.abandoned,
            "handed_off": self.handed_off,
            "drop_off_rate": self.drop_off_rate,
            "mean_seconds": self.mean_seconds,
        }


@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    motive: str | None
    window_days: int
    idle_minutes: int
    generated: datetime
    overall: Tally = field(default_factory=Tally)
    by: dict[str, dict[str, Tally]] = field(default_factory=dict)  # dimension -> key -> tally
    categories: dict[str, str] = field(default_factory=dict)  # motive -> category
    funnels: dict[str, list[NodeFunnel]] = field(default_factory=dict)  # journey -> nodes
    #: Technical failures by action: {action, incidents, held, background_failed}, see
    #: ``add_failures``.
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_day(self) -> date | None:
        """The last day of the period (``until`` is the moment just after it)."""
        return (self.until - timedelta(microseconds=1)).date() if self.until else None

    def add_group(self, keys: Mapping[str, str], counts: Mapping[str, Any]) -> None:
        """One row of the database's grouping: its keys (motive, journey, version, channel)."""
        self.overall.add(counts)
        for dimension, key in keys.items():
            self.by.setdefault(dimension, {}).setdefault(key, Tally()).add(counts)
        category = self.categories.get(keys.get("motive", ""), "")
        self.by.setdefault("category", {}).setdefault(category or "-", Tally()).add(counts)

    def add_failures(self, action: str, incidents: int, held: int, background_failed: int) -> None:
        """One action's technical failures: ``incidents`` (sessions it stopped at a step, held
        there or sent to their ``on_failure``), how many are still ``held`` now, and its
        ``background_failed`` runs (wait: false, after) not yet run again with success."""
        self.failures.append(
            {
                "action": action,
                "incidents": incidents,
                "held": held,
                "background_failed": background_failed,
            }
        )
        self.failures.sort(key=lambda f: (-f["incidents"], -f["background_failed"], f["action"]))

    def prevalence(self) -> list[dict[str, Any]]:
        """Motives by share of contacts, with their category, steps and time to resolution."""
        motives = self.by.get("motive", {})
        rows = []
        for motive, tally in motives.items():
            figures = tally.figures()
            rows.append(
                {
                    "motive": motive,
                    "category": self.categories.get(motive, "-"),
                    "sessions": tally.sessions,
                    "share": share(tally.sessions, self.overall.sessions),
                    "mean_steps": figures["mean_steps"],
                    "mean_minutes_to_resolution": figures["mean_minutes_to_resolution"],
                }
            )
        return sorted(rows, key=lambda r: (-r["sessions"], r["motive"]))

    def category_prevalence(self) -> list[dict[str, Any]]:
        """Categories of motives by share of contacts."""
        rows = [
            {
                "category": category,
                "sessions": tally.sessions,
                "share": share(tally.sessions, self.overall.sessions),
            }
            for category, tally in self.by.get("category", {}).items()
        ]
        return sorted(rows, key=lambda r: (-r["sessions"], r["category"]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": {
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "motive": self.motive,
                "window_days": self.window_days,
                "idle_minutes": self.idle_minutes,
                "generated": self.generated.isoformat(),
            },
            "overall": self.overall.figures(),
            "by": {
                dimension: {key: tally.figures() for key, tally in sorted(groups.items())}
                for dimension, groups in sorted(self.by.items())
            },
            "prevalence": self.prevalence(),
            "category_prevalence": self.category_prevalence(),
            "funnels": {
                journey: [n.as_dict() for n in nodes]
                for journey, nodes in sorted(self.funnels.items())
            },
            "incidents": [dict(f) for f in self.failures],
        }


def heat_of(funnel: Iterable[NodeFunnel]) -> Heat:
    """A journey's funnel as the traffic of its diagram: nodes inside a sub-journey count
    for the node that calls it (``identify/ask_customer_id`` for ``identify``)."""
    reached: dict[str, int] = {}
    dropped: dict[str, int] = {}
    edges: dict[tuple[str, str], int] = {}
    for n in funnel:
        top = n.node.split("/", 1)[0]
        if "/" not in n.node:
            reached[top] = reached.get(top, 0) + n.reached
        if n.abandoned or n.handed_off:
            dropped[top] = dropped.get(top, 0) + n.abandoned + n.handed_off
        for target, count in n.exits.items():
            to = target.split("/", 1)[0]
            if to != top:
                edges[(top, to)] = edges.get((top, to), 0) + count
    return Heat(reached=reached, dropped=dropped, edges=edges)


# ------------------------------------------------------------------------------- text


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def as_text(report: Report) -> str:
    """The report for a terminal: the headline, then one table per dimension."""
    lines = [_scope_line(report), ""]
    if not report.overall.sessions:
        lines.append("No sessions in this period: nothing to report yet.")
        lines.append("Try a wider --since/--until, or `journeys simulate` to see an example.")
        return "\n".join(lines) + "\n"
    lines += _headline(report)
    for dimension in ("motive", "category", "journey", "version", "channel"):
        groups = report.by.get(dimension, {})
        if groups:
            lines += _table(dimension, groups)
    if report.failures:
        lines += _incidents(report.failures)
    lines += _prevalence(report)
    for journey, nodes in sorted(report.funnels.items()):
        lines += _funnel(journey, nodes)
    return "\n".join(lines)


def _headline(report: Report) -> list[str]:
    o = report.overall.figures()
    return [
        f"Sessions            {o['sessions']:,} ({o['closed']:,} closed, {o['open']:,} open)",
        f"Once and done       {pct(o['once_and_done_rate'])}  "
        f"(resolved, no new contact on the motive within {report.window_days} days)",
        f"Resolved            {pct(o['resolved_rate'])}",
        f"Handed off          {pct(o['handoff_rate'])}",
        f"Abandoned           {pct(o['abandonment_rate'])}",
        f"Customer effort     {num(o['ces'], 2)} / 7  ({o['ces_responses']:,} answers)",
        f"Net promoter score  {num(o['nps'])}  ({o['nps_responses']:,} answers)",
        f"Steps per session   {num(o['mean_steps'])}",
        f"Time to resolution  {num(o['mean_minutes_to_resolution'])} min",
        "",
    ]


def _incidents(failures: list[dict[str, Any]]) -> list[str]:
    rows = [
        [f["action"], f"{f['incidents']:,}", f"{f['held']:,}", f"{f['background_failed']:,}"]
        for f in failures
    ]
    return [
        "Incidents by action (a back office that failed: never a business answer)",
        "",
        *_rows(["action", "incidents", "held now", "background failed"], rows),
        "",
        "held now: sessions waiting for the action to succeed (retried by themselves); "
        "background failed: `journeys runs --failed` lists them",
        "",
    ]


def _prevalence(report: Report) -> list[str]:
    """Motives, then categories, by share of contacts."""
    motives = [
        [
            p["motive"],
            p["category"],
            pct(p["share"]),
            f"{p['sessions']:,}",
            num(p["mean_steps"]),
            num(p["mean_minutes_to_resolution"]),
        ]
        for p in report.prevalence()
    ]
    categories = [
        [c["category"], pct(c["share"]), f"{c['sessions']:,}"] for c in report.category_prevalence()
    ]
    return [
        "Motive prevalence",
        "",
        *_rows(["motive", "category", "share", "sessions", "steps", "min to resolve"], motives),
        "",
        "Category prevalence",
        "",
        *_rows(["category", "share", "sessions"], categories),
        "",
    ]


def _funnel(journey: str, nodes: Iterable[NodeFunnel]) -> list[str]:
    rows = [
        [
            n.node,
            f"{n.reached:,}",
            f"{n.abandoned:,}",
            f"{n.handed_off:,}",
            pct(n.drop_off_rate),
            num(n.mean_seconds),
            ", ".join(f"{k} {v:,}" for k, v in n.as_dict()["exits"].items()),
        ]
        for n in nodes
    ]
    header = ["node", "reached", "abandoned", "handed off", "drop-off", "mean s", "next"]
    return [f"Funnel: {journey}", "", *_rows(header, rows), ""]


def _scope_line(report: Report) -> str:
    since = report.since.date().isoformat() if report.since else "the beginning"
    until = report.last_day.isoformat() if report.last_day else "now"
    motive = f", motive {report.motive}" if report.motive else ""
    return f"Report: sessions started from {since} to {until}{motive}"


def _table(dimension: str, groups: Mapping[str, Tally]) -> list[str]:
    rows = []
    for key, tally in sorted(groups.items(), key=lambda kv: (-kv[1].sessions, kv[0])):
        f = tally.figures()
        rows.append(
            [
                key,
                f"{f['sessions']:,}",
                pct(f["once_and_done_rate"]),
                pct(f["resolved_rate"]),
                pct(f["handoff_rate"]),
                pct(f["abandonment_rate"]),
                num(f["ces"], 2),
                num(f["nps"]),
            ]
        )
    header = [dimension, "sessions", "once&done", "resolved", "handoff", "abandoned", "CES", "NPS"]
    return [f"By {dimension}", "", *_rows(header, rows), ""]


def _rows(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    out = []
    for i, row in enumerate([header, *rows]):
        cells = [
            str(c).ljust(w) if j == 0 or j == len(row) - 1 else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out
