"""The persisted formats of a session's state and of its event records, versioned.

A stored session state (``Session.to_dict``) and a stored event record carry the number of
their format under ``"format"``; a record without it is of format 1, the unversioned format
written before formats were numbered. Reading a record runs the upgrades from its format to
the current one, one format at a time (SpiffWorkflow's serializer ``VERSION`` and its
migrations), so that a session stored by an older journeys goes on where it stopped.

Changing a format: add a field, say, then raise ``SESSION_FORMAT`` and add the upgrade from
the format before, which gives the field of an older record its value. A record of a format
newer than this journeys knows is refused, never half read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import SessionError

FORMAT = "format"

#: The format of a session's state as ``Session.to_dict`` writes it now.
SESSION_FORMAT = 2
#: The format of an event record as the store writes it now.
EVENT_FORMAT = 2

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class RecordFormatError(SessionError):
    """A stored record this version of journeys cannot read."""

    title = "Unreadable record"
    http_status = 500


#: The fields of a session's state and their value when an older record lacks them. Format 1
#: grew over time: a state written before a field existed does not have it.
SESSION_DEFAULTS: dict[str, Callable[[], Any]] = {
    "status": lambda: "waiting",
    "node": lambda: None,
    "outcome": lambda: None,
    "seq": lambda: 0,
    "context": dict,
    "path": list,
    "messages": list,
    "stack": list,
    "visits": dict,
    "locale": lambda: None,
    "channel": lambda: None,
    "contact_id": lambda: None,
    "customer_id": lambda: None,
    "agent": lambda: None,
    "motive": lambda: None,
    "survey": dict,
    "handoff": lambda: None,
    "error": lambda: None,
    "incident": lambda: None,
    "role": lambda: None,
    "actor": lambda: None,
    "grants": list,
    "identity": lambda: None,
    "totals": dict,
}
#: The fields every state has had from the first format on.
SESSION_REQUIRED = ("id", "journey", "version", "definition")
SESSION_FIELDS = frozenset((*SESSION_REQUIRED, *SESSION_DEFAULTS))
_STORED = SESSION_FIELDS | {FORMAT}


def _session_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (unversioned) -> 2: the fields added since the first release get their
    defaults; a field that no longer exists is dropped."""
    missing = [name for name in SESSION_REQUIRED if name not in data]
    if missing:
        raise RecordFormatError(
            f"a stored session state lacks {', '.join(missing)}: it is not a session's state"
        )
    upgraded = {name: data[name] for name in SESSION_REQUIRED}
    for name, default in SESSION_DEFAULTS.items():
        upgraded[name] = data[name] if name in data else default()
    upgraded[FORMAT] = 2
    return upgraded


def _event_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (unversioned) -> 2: the same fields, now numbered."""
    return {**data, FORMAT: 2}


SESSION_UPGRADES: dict[int, Upgrade] = {1: _session_1_to_2}
EVENT_UPGRADES: dict[int, Upgrade] = {1: _event_1_to_2}


def upgrade_session(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored session state in the current format (the same mapping when it is already)."""
    return _upgraded("session state", data, SESSION_FORMAT, SESSION_UPGRADES)


def check_session_fields(data: Mapping[str, Any]) -> None:
    """A state of the current format holds the fields of a session and nothing else."""
    if len(data) == len(_STORED) and data.keys() <= _STORED:
        return
    unknown, missing = sorted(data.keys() - _STORED), sorted(_STORED - data.keys())
    said = [f"unknown fields {unknown}" if unknown else "", f"no {missing}" if missing else ""]
    raise RecordFormatError(
        f"a session state of format {data.get(FORMAT)!r} has {'; '.join(p for p in said if p)}: "
        "it was not written by this version of journeys"
    )


def event_data(record: Mapping[str, Any]) -> dict[str, Any]:
    """An event record as stored: with its format."""
    return {**record, FORMAT: EVENT_FORMAT}


def event_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event record as the service reads it: upgraded, without its format."""
    upgraded = dict(_upgraded("event record", data, EVENT_FORMAT, EVENT_UPGRADES))
    upgraded.pop(FORMAT, None)
    return upgraded


def _upgraded(
    what: str, data: Mapping[str, Any], current: int, upgrades: Mapping[int, Upgrade]
) -> Mapping[str, Any]:
    found = data.get(FORMAT, 1)
    if found == current:
        return data
    if not isinstance(found, int) or isinstance(found, bool) or not 1 <= found < current:
        raise RecordFormatError(
            f"a stored {what} is of format {found!r}; this version of journeys reads formats "
            f"1 to {current}: upgrade journeys to read it"
        )
    upgraded = dict(data)
    for version in range(found, current):
        upgraded = upgrades[version](upgraded)
    return upgraded
