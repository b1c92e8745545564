"""The insight report over HTTP: its figures (JSON) and the console's report page."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.responses import HTMLResponse

from engine.adapters.http.auth import Caller, caller
from engine.adapters.http.bodies import ReportQuery
from engine.adapters.http.problems import Endpoint, Forbidden, Named, Naming, NotAvailable
from engine.adapters.http.state import AppState, served
from engine.adapters.sql.reporting import ReportError
from engine.insight.report import Report

#: A report asked with a date or a motive it cannot use.
REPORTING: Naming = {ReportError: Named("Invalid report request", 422)}


async def kpis(
    query: ReportQuery = Depends(),
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> dict[str, Any]:
    """The insight report (once-and-done rate, CES, NPS, funnels, prevalence) of the
    sessions started in [since, until]: the figures of `journeys report --format json`."""
    report = await state.threads.run(_report, state, query, who)
    return report.as_dict()


async def report_page(
    query: ReportQuery = Depends(),
    who: Caller = Depends(caller),
    state: AppState = Depends(served),
) -> HTMLResponse:
    """The report page of the console: the same page as `journeys report --format html`."""
    from engine.adapters.report_html import render_html

    report = await state.threads.run(_report, state, query, who)
    page = await state.threads.run(render_html, report, state.library, "", True)
    return HTMLResponse(page)


def _report(state: AppState, query: ReportQuery, who: Caller) -> Report:
    from engine.adapters.sql.reporting import report_for
    from engine.adapters.sql.store import SqlStore

    if who.role == "customer":
        raise Forbidden("reports are for agents and supervisors")
    if not isinstance(state.store, SqlStore):
        raise NotAvailable("reports need the SQL session store")
    return report_for(
        state.store,
        state.library,
        since=query.since or None,
        until=query.until or None,
        motive=query.motive or None,
        journey=query.journey or None,
        window_days=query.window,
        idle_minutes=query.idle,
    )


ROUTES = [
    Endpoint("/v1/reports/kpis", kpis, naming=REPORTING),
    Endpoint("/report", report_page, include_in_schema=False, naming=REPORTING),
]
