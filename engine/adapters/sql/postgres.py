"""The PostgreSQL fast path: a step (or a start) in one statement, so one round trip in its
own transaction. The session's UPDATE (or INSERT) and the INSERTs of its events, visits and
action runs are data-modifying WITH queries; the INSERTs select from the session's statement,
so that if the session had moved on (no row updated) nothing is written and no row comes back.
Five round trips or more (BEGIN, UPDATE, INSERTs, COMMIT) cost more than the step's own work
on the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.adapters.sql.rows import bound, event_row, run_row, visit_rows
from engine.sessions.runtime import Session
from engine.sessions.service import Records, Runs

if TYPE_CHECKING:
    from engine.adapters.sql.store import SqlStore


def append_at_once(
    store: SqlStore,
    session: Session,
    records: Records,
    params: dict[str, Any],
    runs: Runs,
    visited_from: int | None,
    now_ms: int,
    at: Any,
) -> bool:
    """A step in one statement (see the module's docstring); False if the session had moved
    on from the step (nothing written)."""
    casts = store._statements.casts
    ctes = [
        "old AS (SELECT visited_ms FROM sessions WHERE id = %(w_id)s)",
        f"u AS ({store._statements.sql['update']})",
    ]
    values: dict[str, Any] = dict(params)
    for i, (seq, record) in enumerate(records):
        row = event_row(session, seq, record, at)
        ctes.append(_cte_insert(casts, "events", f"e{i}", row, values, "u, old"))
    if visited_from is not None:
        # The text of the statement depends on the step's shape only (how many events,
        # visits and runs; the times are parameters): PostgreSQL prepares it once and
        # reuses its plan, where a text that changed every step was planned every step.
        values["now_ms"] = now_ms
        for i, row in enumerate(visit_rows(session, visited_from, now_ms, None, None)):
            # The start and the time it reached the node it waited at come from the row.
            computed = {"started_ms": "COALESCE(u.started_ms, CAST(%(now_ms)s AS BIGINT))"}
            if row["idx"] == visited_from:
                computed["spent_ms"] = "CAST(%(now_ms)s AS BIGINT) - old.visited_ms"
            ctes.append(_cte_insert(casts, "visits", f"v{i}", row, values, "u, old", computed))
    ctes += _cte_runs(casts, runs, values, "u, old", at)
    sql = f"WITH {', '.join(ctes)} SELECT u.started_ms FROM u"
    cursor = store._connection().driver_connection.cursor()  # autocommit: one transaction
    cursor.execute(sql, values)
    return cursor.fetchone() is not None


def create_at_once(
    store: SqlStore,
    session: Session,
    row: Mapping[str, Any],
    records: Records,
    runs: Runs,
    now_ms: int,
    at: Any,
) -> None:
    """A new session in one statement, as a step is: the session's INSERT, then its first
    events, visits and action runs selected from it."""
    casts = store._statements.casts
    values: dict[str, Any] = bound(row)
    ctes = [f"s AS ({store._statements.sql['insert_session']} RETURNING id)"]
    for i, (seq, record) in enumerate(records):
        event = event_row(session, seq, record, at)
        ctes.append(_cte_insert(casts, "events", f"e{i}", event, values, "s"))
    for i, visit in enumerate(visit_rows(session, 0, now_ms, None, now_ms)):
        ctes.append(_cte_insert(casts, "visits", f"v{i}", visit, values, "s"))
    ctes += _cte_runs(casts, runs, values, "s", at)
    cursor = store._connection().driver_connection.cursor()  # autocommit: one transaction
    cursor.execute(f"WITH {', '.join(ctes)} SELECT id FROM s", values)


def _cte_insert(
    casts: Mapping[str, Mapping[str, str]],
    table: str,
    name: str,
    row: Mapping[str, Any],
    values: dict[str, Any],
    source: str,
    computed: Mapping[str, str] = {},
) -> str:
    """An INSERT of ``row`` as a WITH query named ``name``, selected from ``source`` (so
    that nothing is written when the source has no row); its parameters go in ``values``,
    ``computed`` columns are SQL over the source."""
    selected = []
    for c in row:
        if c in computed:
            selected.append(computed[c])
        else:
            values[f"{name}_{c}"] = row[c]
            selected.append(f"CAST(%({name}_{c})s AS {casts[table][c]})")
    return (
        f"{name} AS (INSERT INTO {table} ({', '.join(row)}) "
        f"SELECT {', '.join(selected)} FROM {source})"
    )


def _cte_runs(
    casts: Mapping[str, Mapping[str, str]],
    runs: Runs,
    values: dict[str, Any],
    source: str,
    at: Any,
) -> list[str]:
    return [
        _cte_insert(casts, "action_runs", f"r{i}", run_row(run, at), values, source)
        for i, run in enumerate(runs)
    ]
