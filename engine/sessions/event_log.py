"""Events as a session's log records them, and the replay that rebuilds a session from them.

Each event becomes one plain record (``record_of``) saved with the session in one transaction;
``event_of`` gives the event back, and ``replay`` steps a new session through them all: the
same session, by the purity of :func:`engine.sessions.runtime.step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import clock
from engine.definitions.library import Bundle
from engine.sessions.runtime import (
    ActionDone,
    Answer,
    Effect,
    Event,
    HandOff,
    Reserved,
    Retry,
    Session,
    SkipSurvey,
    Start,
    SurveyAnswer,
    Wake,
    new_session,
    step,
)


def record_of(event: Event, actor: str | None = None, channel: str | None = None) -> dict[str, Any]:
    """An event as it is logged: plain data, enough to replay the session."""
    data: dict[str, Any]
    if isinstance(event, Start):
        data = {
            "type": "start",
            "inputs": dict(event.inputs),
            "as_text": event.as_text,
            "role": event.role,
        }
        if event.identity:
            data["identity"] = dict(event.identity)
    elif isinstance(event, Answer):
        data = {
            "type": "answer",
            "node": event.node,
            "value": event.value,
            "as_text": event.as_text,
            "role": event.role,
        }
    elif isinstance(event, ActionDone):
        data = {
            "type": "action",
            "node": event.node,
            "result": event.result,
            "error": event.error,
            "attempts": event.attempts,
            "run_id": event.run_id,
        }
        if event.code is not None:
            data["code"] = event.code
        if event.failure is not None:
            data["failure"] = event.failure
            data["failed_at"] = event.at
        if event.verified is not None:
            data["verified"] = event.verified
    elif isinstance(event, Reserved):
        data = {"type": "authority", "node": event.node, "totals": dict(event.totals)}
    elif isinstance(event, Retry):
        data = {"type": "retry", "node": event.node}
    elif isinstance(event, HandOff):
        data = {"type": "handoff", "queue": event.queue, "reason": event.reason}
    elif isinstance(event, SurveyAnswer):
        data = {"type": "survey", "ces": event.ces, "nps": event.nps}
    elif isinstance(event, Wake):
        data = {"type": "wake", "node": event.node, "data": _plain(event.data)}
    else:
        data = {"type": "skip_survey"}
    data["actor"] = actor
    data["channel"] = channel
    data["at"] = clock.now().isoformat()
    return data


def event_of(record: Mapping[str, Any]) -> Event | None:
    """The runtime event a log record replays (None for records that only annotate)."""
    kind = record["type"]
    if kind == "start":
        return Start(
            record["inputs"],
            record.get("as_text", False),
            record.get("role"),
            record.get("actor"),
            record.get("identity"),
        )
    if kind == "answer":
        return Answer(
            record["node"],
            record["value"],
            None,
            record.get("as_text", False),
            record.get("role"),
            record.get("actor"),
        )
    if kind == "action":
        return ActionDone(
            record["node"],
            record.get("result"),
            record.get("error"),
            record.get("attempts", 1),
            record.get("run_id"),
            record.get("code"),
            record.get("failure"),
            record.get("failed_at"),
            record.get("verified"),
        )
    if kind == "authority":
        return Reserved(record["node"], record.get("totals") or {})
    if kind == "retry":
        return Retry(record.get("node"))
    if kind == "handoff":
        return HandOff(record.get("queue") or HandOff.queue, record.get("reason"))
    if kind == "survey":
        return SurveyAnswer(record.get("ces"), record.get("nps"))
    if kind == "skip_survey":
        return SkipSurvey()
    if kind == "wake":
        return Wake(record["node"], record.get("data"))
    return None


def replay(
    bundle: Bundle,
    header: Mapping[str, Any],
    records: list[dict[str, Any]],
    effects: list[Effect] | None = None,
) -> Session:
    """Rebuild a session from its event log alone; ``effects``, when given, receives what
    each step asked for (the actions run, with the inputs they were given then)."""
    details = {
        k: header.get(k)
        for k in ("locale", "channel", "contact_id", "customer_id", "agent", "motive")
    }
    session = new_session(header["id"], bundle.root, bundle.hash, **details)
    for record in records:
        if record["type"] == "resume":
            session.channel = record.get("channel")
            if "role" in record:
                session.role, session.actor = record["role"], record.get("actor")
            session.seq += 1
            continue
        event = event_of(record)
        if event is not None:
            session, more = step(bundle.definitions, session, event, policy=bundle.policy)
            if effects is not None:
                effects += more
    return session


def _plain(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(data) if data is not None else None
