"""What a session store returns besides sessions and their event records: typed rows.

Frozen dataclasses, read as attributes (``run.status``). Each is also a read-only mapping of
its fields (``run["status"]``, ``dict(run)``, ``{**run}``), so that code written for the dict
rows the store used to return reads them unchanged; JSON encoders that know dataclasses
(orjson, FastAPI's) write them as objects, the standard library's wants ``dict(row)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, Self


@dataclass(frozen=True)
class Row(Mapping[str, Any]):
    """A typed row that reads as a mapping of its fields too."""

    @classmethod
    def of(cls, values: Mapping[Any, Any]) -> Self:
        """The row of these values (by field name; a field missing is None, others ignored)."""
        return cls(**{name: values.get(name) for name in _names(cls)})

    def __getitem__(self, key: str) -> Any:
        if key not in _names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_names(type(self)))

    def __len__(self) -> int:
        return len(_names(type(self)))


@cache
def _names(cls: type[Row]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class ActionRun(Row):
    """One back-office run of a session's action: waited for, in the background or after."""

    session_id: str
    node: str
    action: str
    key: str  # the idempotency key: the same for every try of one step's action
    mode: str  # wait, background, after
    status: str  # succeeded, failed, refused
    attempts: int
    run_id: str | None  # the executor's id (a Prefect flow run)
    error: str | None
    result: Mapping[str, Any] | None


@dataclass(frozen=True)
class RecordedRun(ActionRun):
    """An action run as recorded, with its number (to run it again) and when it ended."""

    id: int
    at: str | None  # ISO text


@dataclass(frozen=True)
class WaitingSession(Row):
    """A session waiting at a step, from its row only (no state read): the agents' queue."""

    id: str
    journey: str
    definition: str
    node: str
    contact_id: str | None
    customer_id: str | None
    waiting_since: str | None  # ISO text: when the step that got there was saved


@dataclass(frozen=True)
class Grant(Row):
    """One parameter of an action granted to a customer within an authority limit."""

    key: str
    action: str
    param: str
    amount: float
    before: float | None  # the customer's total before it
    role: str
    session_id: str
    node: str
    granted_ms: int
    released_ms: int | None  # the back office refused the action: it no longer counts
