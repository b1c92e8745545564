"""The persisted formats (engine/sessions/records.py): a session's state and an event record written
today read back equal, and records of the format before (unversioned) are upgraded."""

from __future__ import annotations

from typing import Any

import pytest

from engine.sessions import records
from engine.sessions.records import EVENT_FORMAT, FORMAT, SESSION_FORMAT, RecordFormatError
from engine.sessions.runtime import Frame, Session


def full_session() -> Session:
    """A session with every field set to something other than its default."""
    return Session(
        id="S1",
        journey="delivery",
        version=3,
        definition="d" * 64,
        status="incident",
        node="identify/ask_id",
        outcome="resolved",
        seq=7,
        context={"order_id": "10000001", "tracking": {"days_late": 7, "lines": [1, 2]}},
        path=["ask_order", "identify", "identify/ask_id"],
        messages=["Hello"],
        stack=[Frame("delivery", ""), Frame("identify", "identify/", "identify")],
        visits={"ask_order": 1, "identify": 2},
        locale="fr",
        channel="chat",
        contact_id="Q2D7-LWHV",
        customer_id="C001",
        agent="agent-7",
        motive="delivery.late",
        survey={"ces": 2, "nps": 9},
        handoff={"queue": "logistics"},
        error={"code": "E1"},
        incident={"node": "track", "tries": 2, "retry_at": "2026-12-04T10:00:00+00:00"},
        role="agent",
        actor="agent-7",
        grants=[{"node": "refund", "action": "payments.refund", "param": "amount"}],
        identity={"customer_id": "C001", "by": "agent"},
        totals={"payments.refund": {"amount": 4.9}},
    )


def test_a_state_written_today_reads_back_equal() -> None:
    session = full_session()
    data = session.to_dict()
    assert data[FORMAT] == SESSION_FORMAT
    again = Session.from_dict(data)
    assert again == session and again.to_dict() == data
    assert Session.from_dict(session.to_dict(copy=False), copy=False) == session


def test_every_field_of_a_session_is_in_its_format() -> None:
    """A field added to Session must be added to records.SESSION_DEFAULTS (and its format
    raised, with an upgrade): else from_dict could not read it."""
    assert set(full_session().__dict__) == records.SESSION_FIELDS


def unversioned(session: Session) -> dict[str, Any]:
    """The state as it was stored before formats were numbered (format 1)."""
    data = session.to_dict()
    del data[FORMAT]
    return data


def test_an_unversioned_state_is_upgraded() -> None:
    session = full_session()
    assert Session.from_dict(unversioned(session)) == session


def test_an_old_state_without_the_later_fields_gets_their_defaults() -> None:
    old = unversioned(full_session())
    for later in ("incident", "role", "actor", "grants", "identity", "totals", "error"):
        del old[later]
    upgraded = Session.from_dict(old)
    assert (upgraded.incident, upgraded.role, upgraded.grants, upgraded.totals) == (
        None,
        None,
        [],
        {},
    )
    assert upgraded.context == full_session().context


def test_a_field_that_no_longer_exists_is_dropped_from_an_unversioned_state() -> None:
    old = {**unversioned(full_session()), "retired": 1}
    assert Session.from_dict(old) == full_session()


def test_an_unknown_or_missing_field_of_a_current_state_is_a_clear_error() -> None:
    data = full_session().to_dict()
    with pytest.raises(RecordFormatError, match=r"unknown fields \['extra'\]"):
        Session.from_dict({**data, "extra": 1})
    del data["totals"]
    with pytest.raises(RecordFormatError, match=r"no \['totals'\]"):
        Session.from_dict(data)


@pytest.mark.parametrize("found", [SESSION_FORMAT + 1, 0, "2", True])
def test_a_state_of_a_format_this_version_does_not_know_is_refused(found: Any) -> None:
    with pytest.raises(RecordFormatError, match="reads formats 1 to"):
        Session.from_dict({**full_session().to_dict(), FORMAT: found})


def test_a_state_that_is_not_a_session_is_refused() -> None:
    with pytest.raises(RecordFormatError, match="lacks definition"):
        Session.from_dict({"id": "S1", "journey": "j", "version": 1})


def test_an_event_record_round_trips_and_an_unversioned_one_is_upgraded() -> None:
    record = {"type": "answer", "node": "ask_order", "value": "10000001", "at": "2026-12-04"}
    stored = records.event_data(record)
    assert stored[FORMAT] == EVENT_FORMAT and record.keys() < stored.keys()
    assert records.event_record(stored) == record
    assert records.event_record(record) == record  # format 1: no number
    with pytest.raises(RecordFormatError, match="event record is of format 9"):
        records.event_record({**record, FORMAT: 9})
