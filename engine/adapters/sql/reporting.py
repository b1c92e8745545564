"""The report's figures, grouped in the session database (SQLite or PostgreSQL).

Three grouping queries whatever the size of the history: sessions by motive, journey,
version and channel; visits by node and next node (a window function pairs each visit with
the next one of its session); stops by last node. Python only adds up the few rows they
return (engine/insight/report.py). Times are integers (milliseconds since 1970) so the arithmetic is
the same on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine import clock
from engine.adapters.sql.store import SqlStore, StoreError, action_runs, sessions, visits
from engine.definitions.findings import did_you_mean
from engine.definitions.library import Library
from engine.errors import DefinitionError
from engine.insight.diagram import Heat
from engine.insight.report import NodeFunnel, Report, heat_of
from engine.sessions.runtime import ENDED, INCIDENT, SURVEY

DAY_MS = 86_400_000


class ReportError(DefinitionError):
    """A report cannot be made as asked: what, and what to do."""


def open_store(url: str) -> SqlStore:
    """The session database, as it is: a missing SQLite file is not created for a report."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///") :])
        if not path.exists():
            raise ReportError(
                f"there is no session database at {path}: serve or run journeys first, "
                "or fill one with `journeys simulate --sessions 2000`"
            )
    try:
        return SqlStore(url, upgrade=False)
    except StoreError as err:
        raise ReportError(str(err)) from None


def build_report(
    store: SqlStore,
    library: Library | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    motive: str | None = None,
    journey: str | None = None,
    window_days: int = 7,
    idle_minutes: int = 30,
    funnels: bool = True,
) -> Report:
    """The report on sessions started in [since, until), optionally of one motive or journey."""
    if window_days < 0 or idle_minutes < 0:
        raise ReportError("--window and --idle take a number of days or minutes, 0 or more")
    if since and until and since >= until:
        raise ReportError(
            f"--since {since.date()} is not before --until {until.date()}: nothing in between"
        )
    report = Report(
        since=since,
        until=until,
        motive=motive,
        window_days=window_days,
        idle_minutes=idle_minutes,
        generated=clock.now(),
    )
    if library is not None:
        report.categories = {m.id: m.category for m in library.motives.values()}
    with store.engine.connect() as conn:
        _check_names(conn, library, motive, journey)
        idle_before = clock.now() - timedelta(minutes=idle_minutes)
        groups = _session_groups(since, until, motive, journey, idle_before, window_days)
        for row in conn.execute(groups):
            keys = {
                "motive": row.motive or "-",
                "journey": row.journey,
                "version": f"{row.journey} v{row.version}",
                "channel": row.channel or "-",
            }
            report.add_group(keys, dict(row._mapping))
        if funnels:
            report.funnels = _funnels(conn, since, until, motive, journey, idle_before)
        for row in conn.execute(_failures(since, until, motive, journey)):
            report.add_failures(
                row.action, int(row.incidents or 0), int(row.held or 0), int(row.background or 0)
            )
    return report


def report_for(
    store: SqlStore,
    library: Library | None,
    *,
    since: str | None,
    until: str | None,
    **options: Any,
) -> Report:
    """build_report with the period as a person writes it (days, or ISO times)."""
    return build_report(
        store,
        library,
        since=parse_day(since) if since else None,
        until=parse_day(until, end=True) if until else None,
        **options,
    )


def journey_heat(
    url: str, journey: str, since: datetime | None = None, until: datetime | None = None
) -> Heat:
    """Traffic of one journey's nodes for its diagram (journeys graph --heat). Nodes inside a
    sub-journey count for the node that calls it."""
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            idle_before = clock.now() - timedelta(minutes=30)
            funnel = _funnels(conn, since, until, None, journey, idle_before).get(journey, [])
    finally:
        store.dispose()
    return heat_of(funnel)


# ------------------------------------------------------------------------------ queries


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else clock.to_ms(moment)


def _scope(
    table: Any,
    since: datetime | None,
    until: datetime | None,
    motive: str | None,
    journey: str | None,
) -> ColumnElement[bool]:
    terms: list[ColumnElement[bool]] = []
    if since:
        terms.append(table.c.started_ms >= _ms(since))
    if until:
        terms.append(table.c.started_ms < _ms(until))
    if motive:
        terms.append(table.c.motive == motive)
    if journey:
        terms.append(table.c.journey == journey)
    return and_(literal(True), *terms)


def _flag(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _session_groups(
    since: datetime | None,
    until: datetime | None,
    motive: str | None,
    journey: str | None,
    idle_before: datetime,
    window_days: int,
) -> Any:
    s = sessions.alias("s")
    later = sessions.alias("later")
    finished = s.c.status.in_((SURVEY, ENDED))
    gone_quiet = and_(~finished, s.c.updated_at < idle_before)
    is_open = and_(~finished, s.c.updated_at >= idle_before)
    # A repeat contact: the same customer on the same motive, started after this session and
    # within the window (its end included: a return at exactly N days is a repeat).
    repeated = exists().where(
        later.c.customer_id == s.c.customer_id,
        later.c.motive == s.c.motive,
        later.c.started_ms > s.c.started_ms,
        later.c.started_ms <= s.c.started_ms + window_days * DAY_MS,
    )
    resolved = s.c.outcome == "resolved"
    return (
        select(
            s.c.motive,
            s.c.journey,
            s.c.version,
            s.c.channel,
            func.count().label("sessions"),
            _flag(is_open).label("open"),
            _flag(resolved).label("resolved"),
            _flag(and_(resolved, or_(s.c.customer_id.is_(None), ~repeated))).label("once_and_done"),
            _flag(s.c.outcome == "escalated").label("escalated"),
            _flag(or_(s.c.outcome == "abandoned", gone_quiet)).label("abandoned"),
            _flag(s.c.outcome == "unresolved").label("unresolved"),
            _flag(s.c.outcome == "callback").label("callback"),
            func.coalesce(func.sum(s.c.ces), 0).label("ces_sum"),
            func.count(s.c.ces).label("ces_count"),
            _flag(s.c.nps >= 9).label("promoters"),
            _flag(s.c.nps <= 6).label("detractors"),
            func.count(s.c.nps).label("nps_count"),
            func.coalesce(func.sum(s.c.steps), 0).label("steps_sum"),
            func.coalesce(
                func.sum(case((resolved, s.c.ended_ms - s.c.started_ms), else_=None)), 0
            ).label("resolve_ms_sum"),
            _flag(and_(resolved, s.c.ended_ms.is_not(None))).label("resolve_count"),
        )
        .where(_scope(s, since, until, motive, journey))
        .group_by(s.c.motive, s.c.journey, s.c.version, s.c.channel)
    )


def _failures(
    since: datetime | None, until: datetime | None, motive: str | None, journey: str | None
) -> Any:
    """Technical failures by action, of the sessions in scope: the incidents (one per session
    and node where a step the session waited for failed), those held there now, and the
    background runs whose last run failed. Only failed runs are read."""
    r = action_runs.alias("r")
    s = sessions.alias("s")
    waited = r.c.mode == "wait"
    per_step = (
        select(
            r.c.action,
            r.c.mode,
            func.max(
                case((and_(waited, s.c.status == INCIDENT, s.c.node == r.c.node), 1), else_=0)
            ).label("held"),
        )
        .select_from(r.join(s, s.c.id == r.c.session_id))
        .where(r.c.status == "failed", _scope(s, since, until, motive, journey))
        # A step's tries are one incident; each background run is one failure.
        .group_by(r.c.action, r.c.mode, r.c.session_id, case((waited, r.c.node), else_=r.c.key))
        .subquery()
    )
    return select(
        per_step.c.action,
        _flag(per_step.c.mode == "wait").label("incidents"),
        func.sum(per_step.c.held).label("held"),
        _flag(per_step.c.mode != "wait").label("background"),
    ).group_by(per_step.c.action)


def _funnels(
    conn: Connection,
    since: datetime | None,
    until: datetime | None,
    motive: str | None,
    journey: str | None,
    idle_before: datetime,
) -> dict[str, list[NodeFunnel]]:
    nodes: dict[tuple[str, str], NodeFunnel] = {}
    for row in conn.execute(_steps(since, until, motive, journey)):
        _add_step(nodes, row)
    for row in conn.execute(_stops(since, until, motive, journey, idle_before)):
        if row.abandoned or row.handed_off:
            item = _funnel_node(nodes, row.journey, row.last_node)
            item.abandoned += int(row.abandoned or 0)
            item.handed_off += int(row.handed_off or 0)
    by_journey: dict[str, list[NodeFunnel]] = {}
    for item in sorted(nodes.values(), key=lambda n: (n.journey, -n.reached, n.node)):
        by_journey.setdefault(item.journey, []).append(item)
    return by_journey


def _funnel_node(nodes: dict[tuple[str, str], NodeFunnel], journey: str, node: str) -> NodeFunnel:
    return nodes.setdefault((journey, node), NodeFunnel(journey, node))


def _steps(
    since: datetime | None, until: datetime | None, motive: str | None, journey: str | None
) -> Any:
    """Each visit knows the node before it and the time spent there: one grouping gives
    the ways out of every node, the time spent in it and the sessions that reached it."""
    return (
        select(
            visits.c.journey,
            visits.c.from_node,
            visits.c.node,
            func.count().label("times"),
            func.sum(visits.c.first).label("firsts"),
            func.sum(visits.c.spent_ms).label("ms"),
            func.count(visits.c.spent_ms).label("timed"),
        )
        .where(_scope(visits, since, until, motive, journey))
        .group_by(visits.c.journey, visits.c.from_node, visits.c.node)
    )


def _add_step(nodes: dict[tuple[str, str], NodeFunnel], row: Any) -> None:
    """One row of ``_steps``: the visits of a node, and a way out of the node before it."""
    item = _funnel_node(nodes, row.journey, row.node)
    item.visits += int(row.times)
    item.reached += int(row.firsts or 0)
    if row.from_node is not None:
        before = _funnel_node(nodes, row.journey, row.from_node)
        before.exits[row.node] = before.exits.get(row.node, 0) + int(row.times)
        before.seconds_sum += float(row.ms or 0) / 1000
        before.seconds_count += int(row.timed)


def _stops(
    since: datetime | None,
    until: datetime | None,
    motive: str | None,
    journey: str | None,
    idle_before: datetime,
) -> Any:
    """The sessions abandoned and handed off, by the node they stopped at."""
    finished = sessions.c.status.in_((SURVEY, ENDED))
    return (
        select(
            sessions.c.journey,
            sessions.c.last_node,
            _flag(
                or_(
                    sessions.c.outcome == "abandoned",
                    and_(~finished, sessions.c.updated_at < idle_before),
                )
            ).label("abandoned"),
            _flag(sessions.c.outcome == "escalated").label("handed_off"),
        )
        .where(_scope(sessions, since, until, motive, journey), sessions.c.last_node.is_not(None))
        .group_by(sessions.c.journey, sessions.c.last_node)
    )


def _check_names(
    conn: Connection, library: Library | None, motive: str | None, journey: str | None
) -> None:
    """An unknown motive or journey is an error naming the known ones, not an empty report."""
    for kind, name, column in (
        ("motive", motive, sessions.c.motive),
        ("journey", journey, sessions.c.journey),
    ):
        if not name:
            continue
        known = set(conn.execute(select(column).distinct()).scalars()) - {None}
        if library is not None:
            known |= set(library.motives if kind == "motive" else library.journeys)
        if name not in known:
            raise ReportError(
                f"there is no {kind} {name!r}{did_you_mean(name, sorted(known))}; "
                f"the {kind}s are: {', '.join(sorted(known)) or 'none yet'}"
            )


def parse_day(text: str, *, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD, the whole day; ``end``: up to the end of that day) or an ISO time,
    in UTC unless it says otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"{text!r} is not a date; write it like 2026-11-01 or 2026-11-01T08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(text) == 10:
        moment += timedelta(days=1)
    return moment
