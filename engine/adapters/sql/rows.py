"""What a step writes, and the statements that write it: built once, compiled once per
database (SQLAlchemy's per-execution work, coercing each value and computing cache keys,
cost more than the database's own work), run on a DBAPI cursor.

The rows are plain dicts keyed by column; on SQLite a statement's parameters are taken from
them in the compiled order (:meth:`Statements.args`), on PostgreSQL by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect

from engine.adapters.sql.database import to_json
from engine.adapters.sql.schema import action_runs, definitions, events, sessions, visits
from engine.clock import to_ms
from engine.sessions import records
from engine.sessions.runtime import INCIDENT, Session

# The statements of the hot path, built once: building them per call (coercing each value,
# computing cache keys) cost more than the database work itself.
ROW = (
    "journey",
    "version",
    "definition",
    "status",
    "node",
    "outcome",
    "seq",
    "customer_id",
    "contact_id",
    "channel",
    "agent",
    "motive",
    "state",
    "updated_at",
    "started_ms",
    "last_node",
    "steps",
    "ces",
    "nps",
    "due_ms",
)
# A step changes only these: the indexed columns (journey, customer, contact) stay as they
# were at the start, so SQLite need not rewrite their index entries at every step.
STEP = (
    "status",
    "node",
    "outcome",
    "seq",
    "channel",
    "agent",
    "state",
    "updated_at",
    "last_node",
    "steps",
    "ces",
    "nps",
    "due_ms",
)
EVENT = ("session_id", "seq", "type", "node", "channel", "actor", "data", "at")
_UPDATE_SESSION = (
    update(sessions)
    .where(sessions.c.id == bindparam("w_id"), sessions.c.seq == bindparam("w_seq"))
    .values(
        {
            **{c: bindparam(f"v_{c}") for c in STEP},
            # The first time the session is seen finished (a later survey changes nothing).
            "ended_ms": func.coalesce(sessions.c.ended_ms, bindparam("v_ended_ms")),
            "visited_ms": func.coalesce(bindparam("v_visited_ms"), sessions.c.visited_ms),
        }
    )
    .returning(sessions.c.started_ms)
)
_INSERT_SESSION = insert(sessions).values(
    {c: bindparam(f"v_{c}") for c in ("id", "created_at", "ended_ms", "visited_ms", *ROW)}
)
VISIT = (
    "session_id",
    "idx",
    "journey",
    "version",
    "motive",
    "node",
    "from_node",
    "first",
    "spent_ms",
    "entered_ms",
    "started_ms",
)
_INSERT_VISIT = insert(visits).values({c: bindparam(f"v_{c}") for c in VISIT})
_INSERT_EVENT = insert(events).values({c: bindparam(f"v_{c}") for c in EVENT})
_INSERT_DEFINITION = insert(definitions).values(
    {c: bindparam(f"v_{c}") for c in ("hash", "journey", "sources", "created_at")}
)
RUN = (
    "session_id",
    "node",
    "action",
    "key",
    "mode",
    "status",
    "attempts",
    "run_id",
    "error",
    "result",
    "at",
)
_INSERT_RUN = insert(action_runs).values({c: bindparam(f"v_{c}") for c in RUN})
_LOAD_STATE = select(sessions.c.state).where(sessions.c.id == bindparam("w_id"))
_LOAD_VISITED = select(sessions.c.visited_ms).where(sessions.c.id == bindparam("w_id"))


_STATEMENTS = {
    "insert_session": _INSERT_SESSION,
    "update": _UPDATE_SESSION,
    "insert_event": _INSERT_EVENT,
    "load": _LOAD_STATE,
    "visited": _LOAD_VISITED,
    "insert_run": _INSERT_RUN,
    "insert_visit": _INSERT_VISIT,
    "insert_definition": _INSERT_DEFINITION,
}


class Statements:
    """The statements of the hot path compiled for one database: their SQL, and on SQLite
    (positional parameters) how to take a statement's parameters in order."""

    def __init__(self, dialect: Dialect) -> None:
        self.sql: dict[str, str] = {}
        self._by_name: dict[str, Callable[[Mapping[str, Any]], Any] | None] = {}
        self._by_column: dict[str, Callable[[Mapping[str, Any]], Any] | None] = {}
        for name, statement in _STATEMENTS.items():
            compiled = statement.compile(dialect=dialect)
            self.sql[name] = compiled.string
            order = compiled.positiontup or []  # none: named parameters (PostgreSQL)
            self._by_name[name] = _getter(order) if order else None
            inserted = bool(order) and all(n.startswith("v_") for n in order)
            self._by_column[name] = _getter([n[2:] for n in order]) if inserted else None
        # PostgreSQL's casts of every column, for the one-statement step (sql_postgres.py).
        self.casts = {
            table.name: {c.name: c.type.compile(dialect=dialect) for c in table.columns}
            for table in (events, visits, action_runs)
        }

    def args(self, name: str, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL of ``name`` and its parameters from ``params``, keyed by bind name."""
        order = self._by_name[name]
        return self.sql[name], order(params) if order else params

    def row(self, name: str, row: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL of the INSERT ``name`` and its parameters from ``row``, keyed by column."""
        order = self._by_column[name]
        return self.sql[name], order(row) if order else bound(row)

    def rows(self, name: str, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        """The SQL of an INSERT and the parameters of each row, in order (SQLite)."""
        order = self._by_column[name]
        if order is None:
            raise ValueError(f"{name}: for positional parameters only")
        return self.sql[name], [order(row) for row in rows]


def _getter(names: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    pick = itemgetter(*names)
    return (lambda params: (pick(params),)) if len(names) == 1 else pick


def bound(values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values keyed by the names the statements bind them to."""
    return {f"v_{k}": v for k, v in values.items()}


# ------------------------------------------------------------------------ the rows


def session_row(session: Session, now_ms: int, at: Any) -> dict[str, Any]:
    """The session's row as a step leaves it (``started_ms`` used when it is created only)."""
    survey = session.survey
    path = session.path
    return {
        "journey": session.journey,
        "version": session.version,
        "definition": session.definition,
        "status": session.status,
        "node": session.node,
        "outcome": session.outcome,
        "seq": session.seq,
        "customer_id": session.customer_id,
        "contact_id": session.contact_id,
        "channel": session.channel,
        "agent": session.agent,
        "motive": session.motive,
        "state": to_json(session.to_dict(copy=False)),
        "updated_at": at,
        "started_ms": now_ms,
        "ended_ms": now_ms if session.finished else None,
        "last_node": path[-1] if path else None,
        "steps": len(path),
        "ces": survey.get("ces"),
        "nps": survey.get("nps"),
        "due_ms": due_ms(session),
    }


def step_params(
    session: Session, now_ms: int, at: Any, expected_seq: int, visited_from: int | None
) -> dict[str, Any]:
    """The parameters of the UPDATE of a step, by bind name: the columns a step changes (the
    indexed journey, customer and contact stay as they were at the start), the row it
    expects (``w_``), and the times it may set."""
    survey, path = session.survey, session.path
    finished = session.finished
    return {
        "w_id": session.id,
        "w_seq": expected_seq,
        "v_status": session.status,
        "v_node": session.node,
        "v_outcome": session.outcome,
        "v_seq": session.seq,
        "v_channel": session.channel,
        "v_agent": session.agent,
        "v_state": to_json(session.to_dict(copy=False)),
        "v_updated_at": at,
        "v_last_node": path[-1] if path else None,
        "v_steps": len(path),
        "v_ces": survey.get("ces"),
        "v_nps": survey.get("nps"),
        "v_due_ms": due_ms(session),
        "v_ended_ms": now_ms if finished else None,
        # Moved on to new nodes: they were entered now (else the last one stays as it was).
        "v_visited_ms": now_ms if visited_from is not None and len(path) > visited_from else None,
    }


def event_row(session: Session, seq: int, record: Mapping[str, Any], at: Any) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "seq": seq,
        "type": record["type"],
        "node": record.get("node"),
        "channel": record.get("channel") or session.channel,
        "actor": record.get("actor"),
        "data": to_json(records.event_data(record)),
        "at": at,
    }


def run_row(run: Mapping[str, Any], at: Any) -> dict[str, Any]:
    result = run.get("result")
    return {**run, "result": to_json(result) if result is not None else None, "at": at}


def visit_rows(
    session: Session, first: int, now_ms: int, last_ms: int | None, started_ms: int | None
) -> list[dict[str, Any]]:
    """The visits of the nodes of the path from index ``first`` on (those a step passed
    through, all entered now); ``last_ms``: when the node before them was entered."""
    path = session.path
    return [
        {
            "session_id": session.id,
            "idx": idx,
            "journey": session.journey,
            "version": session.version,
            "motive": session.motive,
            "node": path[idx],
            "from_node": path[idx - 1] if idx else None,
            "first": 0 if path[idx] in path[:idx] else 1,
            # Time at the node before: where the session waited, then none for the nodes
            # the step went through at once.
            "spent_ms": (None if last_ms is None else now_ms - last_ms) if idx == first else 0,
            "entered_ms": now_ms,
            "started_ms": started_ms,
        }
        for idx in range(first, len(path))
    ]


def due_ms(session: Session) -> int | None:
    """When the session goes on by itself: an incident's next automatic retry."""
    if session.status != INCIDENT or not session.incident:
        return None
    retry_at = session.incident.get("retry_at")
    return to_ms(datetime.fromisoformat(retry_at)) if retry_at else None
