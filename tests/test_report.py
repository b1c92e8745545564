"""The report's figures, checked against a small history whose answers are worked out by hand
(on SQLite and PostgreSQL), including the repeat-contact window at its edges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine import clock
from engine.adapters.sql.reporting import (
    ReportError,
    build_report,
    journey_heat,
    open_store,
    parse_day,
)
from engine.adapters.sql.store import SqlStore
from engine.definitions.library import Library
from engine.insight.report import Report, as_text
from engine.sessions.service import Sessions
from tests.test_store import db_url, pg_server  # noqa: F401  (fixtures: both databases)

QUIZ = """
journey: quiz
version: 1
title: How did it go
inputs:
  customer_id: {type: [string, "null"], default: null}
start: pick
nodes:
  pick:
    kind: choose
    say: "How did it go?"
    field: verdict
    options:
      - {value: ok, next: good}
      - {value: ko, next: bad}
      - {value: person, next: agent}
  good: {kind: end, outcome: resolved, survey: [ces, nps]}
  bad: {kind: end, outcome: unresolved}
  agent: {kind: handoff, queue: desk, reason: the customer asked for a person}
"""
ACCOUNT = """
journey: acct
version: 1
title: Account
inputs:
  customer_id: {type: string}
start: ask
nodes:
  ask: {kind: ask, say: "Your e-mail?", field: email, schema: {type: string}, next: done}
  done: {kind: end, outcome: resolved}
"""
MOTIVES = """
motives:
  billing.quiz:
    title: Quiz
    category: billing
    journey: quiz
  account.mail:
    title: Account e-mail
    category: account
    journey: acct
"""
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
MS = timedelta(milliseconds=1)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def quiz_library(tmp_path: Path) -> Path:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "quiz.yaml").write_text(QUIZ, encoding="utf-8")
    (library / "acct.yaml").write_text(ACCOUNT, encoding="utf-8")
    (library / "motives.yaml").write_text(MOTIVES, encoding="utf-8")
    return library


@pytest.fixture
def history(quiz_library: Path, db_url: str) -> Iterator[tuple[SqlStore, Library]]:  # noqa: F811
    """Nine sessions (see each comment) between T0 and T0 + 14 days, and one a minute ago."""
    library = Library(quiz_library)
    store = SqlStore(db_url)
    sessions = Sessions(library, store, None)  # type: ignore[arg-type]  # no action here
    moment = Clock()

    def contact(at: datetime, customer: str | None, verdict: str | None, **survey: int) -> None:
        moment.at = at
        inputs = {"customer_id": customer} if customer else {}
        s = sessions.start("quiz", inputs, channel="phone")
        if verdict is None:
            return  # left waiting at `pick`
        moment.at = at + timedelta(seconds=30)  # 30 s at `pick`
        s = sessions.answer(s.id, "pick", verdict, seq=s.seq)
        if s.status == "survey":
            moment.at = at + timedelta(seconds=40)
            if survey:
                sessions.survey(s.id, **survey)
            else:
                sessions.skip_survey(s.id)

    with clock.using(moment):
        contact(T0, "C1", "ok", ces=6, nps=10)  # 1: resolved, C1 comes back at exactly 7 days
        contact(T0 + WEEK, "C1", "ok", ces=4, nps=5)  # 2: resolved, next one 7 days + 1 ms
        contact(T0 + 2 * WEEK + MS, "C1", "ko")  # 3: unresolved
        contact(T0 + timedelta(hours=1), "C2", "person")  # 4: handed off at `agent`
        contact(T0 + timedelta(hours=2), "C3", None)  # 5: abandoned at `pick`
        contact(T0 + timedelta(hours=3), None, "ok")  # 7: resolved, no customer known
        contact(
            T0 + timedelta(hours=5), "C5", "ok"
        )  # 8b: resolved (C5's other motive is no repeat)
        moment.at = T0 + timedelta(hours=4)  # 8a: the account motive, resolved
        s = sessions.start("acct", {"customer_id": "C5"}, channel="chat")
        moment.at += timedelta(seconds=90)
        sessions.answer(s.id, "ask", "c5@example.com", seq=s.seq)
    # 6: started a minute ago and waiting: still open, in no rate (real clock)
    sessions.start("quiz", {"customer_id": "C4"}, channel="selfcare")
    yield store, library
    store.dispose()


def test_once_and_done_effort_and_recommendation(history: tuple[SqlStore, Library]) -> None:
    store, library = history
    report = build_report(store, library, window_days=7)
    quiz = report.by["motive"]["billing.quiz"].figures()
    assert quiz["sessions"] == 8 and quiz["open"] == 1 and quiz["closed"] == 7
    assert quiz["counts"] == {
        "resolved": 4,
        "once_and_done": 3,  # session 1 has a repeat at exactly 7 days
        "escalated": 1,
        "abandoned": 1,
        "unresolved": 1,
        "callback": 0,
    }
    assert quiz["once_and_done_rate"] == pytest.approx(3 / 7)
    assert quiz["resolved_rate"] == pytest.approx(4 / 7)
    assert quiz["handoff_rate"] == pytest.approx(1 / 7)
    assert quiz["abandonment_rate"] == pytest.approx(1 / 7)
    assert quiz["ces"] == pytest.approx(5.0) and quiz["ces_responses"] == 2
    assert (
        quiz["nps"] == pytest.approx(0.0) and quiz["nps_responses"] == 2
    )  # 1 promoter, 1 detractor
    assert quiz["mean_steps"] == pytest.approx(14 / 8)
    assert quiz["mean_minutes_to_resolution"] == pytest.approx(0.5)
    overall = report.overall.figures()
    assert overall["sessions"] == 9 and overall["closed"] == 8
    assert overall["once_and_done_rate"] == pytest.approx(4 / 8)
    assert report.by["channel"]["chat"].sessions == 1
    assert report.by["category"]["billing"].sessions == 8
    assert report.by["version"]["quiz v1"].sessions == 8
    prevalence = report.prevalence()
    assert [(p["motive"], p["category"], p["sessions"]) for p in prevalence] == [
        ("billing.quiz", "billing", 8),
        ("account.mail", "account", 1),
    ]
    assert prevalence[0]["share"] == pytest.approx(8 / 9)
    assert [(c["category"], c["sessions"]) for c in report.category_prevalence()] == [
        ("billing", 8),
        ("account", 1),
    ]
    assert report.category_prevalence()[1]["share"] == pytest.approx(1 / 9)
    assert prevalence[1]["mean_minutes_to_resolution"] == pytest.approx(1.5)


def test_the_repeat_window_at_its_edges(history: tuple[SqlStore, Library]) -> None:
    store, library = history

    def once_and_done(days: int) -> int:
        return (
            build_report(store, library, window_days=days)
            .by["motive"]["billing.quiz"]
            .once_and_done
        )

    assert once_and_done(7) == 3  # the return at exactly 7 days is a repeat
    assert once_and_done(6) == 4  # 7 days is outside a 6-day window
    assert once_and_done(8) == 2  # 7 days + 1 ms is inside an 8-day window
    assert once_and_done(0) == 4


def test_funnel_and_drop_off_per_node(history: tuple[SqlStore, Library]) -> None:
    store, library = history
    funnel = {n.node: n for n in build_report(store, library).funnels["quiz"]}
    pick = funnel["pick"]
    assert pick.reached == 8 and pick.visits == 8
    assert pick.exits == {"good": 4, "bad": 1, "agent": 1}
    assert pick.abandoned == 1 and pick.handed_off == 0  # the open session is not abandoned
    assert pick.mean_seconds == pytest.approx(30.0)
    assert funnel["agent"].handed_off == 1 and funnel["agent"].reached == 1
    assert funnel["good"].reached == 4 and funnel["good"].exits == {}
    heat = journey_heat(store.url, "quiz")
    assert heat.reached == {"pick": 8, "good": 4, "bad": 1, "agent": 1}
    assert heat.edges == {("pick", "good"): 4, ("pick", "bad"): 1, ("pick", "agent"): 1}
    assert heat.dropped == {"pick": 1, "agent": 1}


def test_scope_by_dates_and_motive(history: tuple[SqlStore, Library]) -> None:
    store, library = history
    later = build_report(
        store, library, since=T0 + timedelta(days=1), until=parse_day("2026-10-31", end=True)
    )
    assert later.overall.sessions == 2  # sessions 2 and 3; the open one is after --until
    assert "to 2026-10-31" in as_text(later)  # --until's own day, included
    assert later.overall.open == 0
    one = build_report(store, library, motive="account.mail")
    assert set(one.by["motive"]) == {"account.mail"} and one.overall.sessions == 1
    with pytest.raises(
        ReportError, match=r"no motive 'billing.quizz'.*did you mean 'billing.quiz'"
    ):
        build_report(store, library, motive="billing.quizz")
    with pytest.raises(ReportError, match="not before"):
        build_report(store, library, since=T0, until=T0)


def test_an_empty_database_is_a_report_with_no_figures(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'empty.db'}")
    report = build_report(store, None)
    figures = report.overall.figures()
    assert figures["sessions"] == 0
    assert figures["once_and_done_rate"] is None and figures["nps"] is None
    assert "No sessions in this period" in as_text(report)
    json.dumps(report.as_dict())  # nothing that JSON cannot say (no NaN, no infinity)
    store.dispose()


def test_a_missing_or_old_database_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no session database at .*journeys simulate"):
        open_store(f"sqlite:///{tmp_path / 'nothing.db'}")
    from alembic import command
    from sqlalchemy import create_engine

    from engine.adapters.sql.migrations import config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(config(engine), "0003")
    engine.dispose()
    with pytest.raises(ReportError, match="journeys db upgrade"):
        open_store(f"sqlite:///{tmp_path / 'old.db'}")


def test_report_command(history: tuple[SqlStore, Library], quiz_library: Path) -> None:
    store, _library = history
    runner = CliRunner()
    base = ["--library", str(quiz_library), "report", "--db", store.url]
    text = runner.invoke(main, base)
    assert text.exit_code == 0, text.output
    assert "Once and done       50.0%" in text.output
    assert "billing.quiz" in text.output and "Funnel: quiz" in text.output
    as_json = runner.invoke(main, [*base, "--format", "json", "--motive", "billing.quiz"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["overall"]["once_and_done_rate"] == pytest.approx(3 / 7)
    assert data["scope"]["motive"] == "billing.quiz"
    bad = runner.invoke(main, [*base, "--since", "yesterday"])
    assert bad.exit_code == 2 and "'yesterday' is not a date" in bad.output
    unknown = runner.invoke(main, [*base, "--journey", "nope"])
    assert unknown.exit_code == 2 and "there is no journey 'nope'" in unknown.output
    assert "Traceback" not in bad.output + unknown.output


def test_a_report_is_plain_data(history: tuple[SqlStore, Library]) -> None:
    store, library = history
    report = build_report(store, library)
    assert isinstance(report, Report)
    data = report.as_dict()
    assert data["funnels"]["quiz"][0]["node"] == "pick"
    assert data["by"]["motive"]["account.mail"]["counts"]["once_and_done"] == 1


def test_the_report_over_http(history: tuple[SqlStore, Library], tmp_path: Path) -> None:
    import asyncio

    import httpx

    from actions.backoffice import once
    from engine.adapters.execution.local_actions import LocalExecutor
    from engine.adapters.http import create_app

    store, library = history
    app = create_app(library, store, LocalExecutor(ledger=once), tmp_path)

    async def calls() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # a loopback client: an agent
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            started = await client.post(
                "/v1/sessions", json={"journey": "quiz", "channel": "selfcare"}
            )
            token = started.json()["token"]
            return {
                "kpis": await client.get(
                    "/v1/reports/kpis", params={"motive": "billing.quiz", "window": 6}
                ),
                "bad": await client.get("/v1/reports/kpis", params={"since": "last week"}),
                "unknown": await client.get("/v1/reports/kpis", params={"motive": "nope"}),
                "customer": await client.get(
                    "/v1/reports/kpis", headers={"Authorization": f"Bearer {token}"}
                ),
                "page": await client.get(
                    "/report", params={"since": "2026-10-01", "until": "2026-10-31"}
                ),
            }

    r = asyncio.run(calls())
    assert r["kpis"].status_code == 200, r["kpis"].text
    figures = r["kpis"].json()
    assert figures["overall"]["once_and_done_rate"] == pytest.approx(4 / 7)  # before the new one
    assert figures["funnels"]["quiz"][0]["exits"] == {"good": 4, "agent": 1, "bad": 1}
    assert r["bad"].status_code == 422
    assert "'last week' is not a date" in r["bad"].json()["detail"]
    assert r["unknown"].status_code == 422
    assert "there is no motive 'nope'" in r["unknown"].json()["detail"]
    assert r["customer"].status_code == 403
    page = r["page"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="kpi-once-and-done"' in page.text and 'name="motive"' in page.text
