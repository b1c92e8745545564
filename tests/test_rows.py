"""The typed rows a store returns (engine/sessions/rows.py): attributes, and the mapping they also are."""

from __future__ import annotations

import json

import orjson
import pytest

from engine.sessions.rows import ActionRun, RecordedRun, WaitingSession

RUN = {
    "session_id": "S1",
    "node": "refund",
    "action": "payments.refund",
    "key": "S1:refund:1",
    "mode": "background",
    "status": "failed",
    "attempts": 2,
    "run_id": "f-1",
    "error": "timed out",
    "result": None,
}


def test_a_row_reads_as_attributes_and_as_the_mapping_of_its_fields() -> None:
    run = RecordedRun.of({**RUN, "id": 7, "at": "2026-12-04T10:00:00+00:00", "extra": 1})
    assert (run.id, run.action, run["status"], run.get("missing")) == (
        7,
        "payments.refund",
        "failed",
        None,
    )
    assert dict(run) == {**RUN, "id": 7, "at": "2026-12-04T10:00:00+00:00"}
    assert {**run, "ran": True}["ran"] is True
    with pytest.raises(KeyError):
        run["extra"]
    with pytest.raises(AttributeError):
        run.status = "succeeded"  # type: ignore[misc]
    assert json.loads(orjson.dumps(run)) == dict(run)  # as the HTTP adapter writes it


def test_a_run_without_its_number_is_its_fields_only() -> None:
    assert list(ActionRun.of(RUN)) == list(RUN)
    assert ActionRun.of(RUN) == ActionRun(**RUN)


def test_a_missing_field_is_none() -> None:
    row = WaitingSession.of({"id": "S1", "journey": "j", "definition": "d", "node": "n"})
    assert (row.contact_id, row.waiting_since) == (None, None)
