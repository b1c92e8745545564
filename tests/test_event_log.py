"""The event log (engine.sessions.event_log): every event a step takes comes back from its record."""

from __future__ import annotations

import pytest

from engine.sessions import event_log, service
from engine.sessions.runtime import (
    ActionDone,
    Answer,
    Event,
    HandOff,
    Reserved,
    Retry,
    SkipSurvey,
    Start,
    SurveyAnswer,
    Wake,
)

EVENTS: list[Event] = [
    Start({"customer_id": "C001"}, True, "agent", "ann", {"customer_id": "C001", "by": "code"}),
    Answer("identify/ask_id", "10000001", None, True, "supervisor", "bob"),
    ActionDone("fetch", {"status": "late"}, None, 2, "run-1"),
    ActionDone("fetch", None, "no such order", 1, None, "not_found"),
    ActionDone("fetch", None, None, 3, None, None, "timed out", "2026-01-01T10:00:00+00:00"),
    ActionDone("check_code", {"ok": True}, verified="C001"),
    Reserved("refund", {"amount": 12.5}),
    Retry("fetch"),
    HandOff("backoffice", "down"),
    SurveyAnswer(6, 9),
    SkipSurvey(),
    Wake("await_carrier", {"order_id": "10000001"}),
    Wake("await_carrier"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_event_comes_back_from_its_record(event: Event) -> None:
    actor = getattr(event, "actor", None)
    record = event_log.record_of(event, actor, "chat")
    assert (record["actor"], record["channel"]) == (actor, "chat") and record["at"]
    assert event_log.event_of(record) == event


def test_the_service_still_exports_the_names_it_had() -> None:
    assert service.record_of is event_log.record_of and service.replay is event_log.replay
    for name in ("ActionOutcome", "MemoryStore", "Records", "Runs", "SessionStore", "run_status"):
        assert hasattr(service, name), name
