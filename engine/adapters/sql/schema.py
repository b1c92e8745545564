"""The session database's tables (SQLAlchemy Core): what the migrations create
(engine/adapters/sql/migrations, checked equal by tests/test_store_schema.py).

``definitions`` (each pinned bundle of journey sources, stored once), ``sessions`` (one small
row per session: its current state), ``events`` (append-only: who, channel, node, answer,
when), ``visits`` (one row per node a session passed through), ``action_runs`` (every
back-office run) and ``authority_grants`` (the grant ledger of engine/adapters/sql/grants.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

_JSON = JSON().with_variant(JSONB(), "postgresql")
# Written at every step and only ever read back whole: PostgreSQL's json keeps the text as
# it is, where jsonb would take it apart at every write (migration 0004).
_JSON_TEXT = JSON()

metadata = MetaData()

definitions = Table(
    "definitions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("journey", String(200), nullable=False),
    Column("sources", _JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("journey", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("definition", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("node", String(400)),
    Column("outcome", String(20)),
    Column("seq", Integer, nullable=False),
    Column("customer_id", String(200), index=True),
    Column("contact_id", String(200), index=True),
    Column("channel", String(40)),
    Column("agent", String(200)),
    Column("motive", String(200)),
    Column("state", _JSON_TEXT, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # What reports group by (migration 0004): times in ms since 1970 (portable arithmetic),
    # the last node reached (where a session stopped), nodes visited, survey scores.
    Column("started_ms", BigInteger),
    Column("ended_ms", BigInteger),
    Column("last_node", String(400)),
    Column("steps", Integer),
    Column("ces", SmallInteger),
    Column("nps", SmallInteger),
    Column("visited_ms", BigInteger),  # when its last node was entered
    # When the session goes on by itself (an incident's next retry): the retry loop reads the
    # due rows through a partial index, so its cost does not grow with the sessions stored.
    Column("due_ms", BigInteger),
    Index("ix_sessions_started_ms", "started_ms"),
    Index(
        "ix_sessions_due",
        "due_ms",
        sqlite_where=text("due_ms IS NOT NULL"),
        postgresql_where=text("due_ms IS NOT NULL"),
    ),
    Index("ix_sessions_repeat", "customer_id", "motive", "started_ms"),
    # The agents' queue (self-care sessions waiting): a partial index holds those rows only,
    # so the steps of all other sessions never write to it.
    Index(
        "ix_sessions_selfcare_waiting",
        "updated_at",
        sqlite_where=text("status = 'waiting' AND channel = 'selfcare'"),
        postgresql_where=text("status = 'waiting' AND channel = 'selfcare'"),
    ),
)

# One row per node a session passed through, in order: funnels, drop-off and time per node
# come from here by grouping in the database (the session's path is in its state as well).
visits = Table(
    "visits",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("journey", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("motive", String(200)),
    Column("node", String(400), nullable=False),
    Column("from_node", String(400)),  # the node before it (none for the first)
    Column("first", SmallInteger, nullable=False),  # 1 the first time the session is here
    Column("spent_ms", BigInteger),  # time spent at from_node (unknown: none)
    Column("entered_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    # Funnels group by these: an index in their order, holding the columns they read, lets
    # SQLite walk it in order instead of sorting a million rows (created on SQLite only:
    # PostgreSQL hashes as fast without it; migration 0004).
    Index(
        "ix_visits_funnel",
        "journey",
        "from_node",
        "node",
        "started_ms",
        "motive",
        "first",
        "spent_ms",
    ).ddl_if(dialect="sqlite"),
    sqlite_with_rowid=False,  # stored in its key's order: one B-tree less to write per visit
)

events = Table(
    "events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("session_id", String(64), nullable=False),  # indexed by the unique constraint
    Column("seq", Integer, nullable=False),
    Column("type", String(20), nullable=False),
    Column("node", String(400)),
    Column("channel", String(40)),
    Column("actor", String(200)),
    Column("data", _JSON_TEXT, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("session_id", "seq", name="events_session_seq"),
)


action_runs = Table(
    "action_runs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("session_id", String(64), nullable=False, index=True),
    Column("node", String(400), nullable=False),
    Column("action", String(200), nullable=False),
    Column("key", String(500), nullable=False),
    Column("mode", String(20), nullable=False),  # wait, background, after
    Column("status", String(20), nullable=False),  # succeeded, failed
    Column("attempts", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("error", Text),
    Column("result", _JSON),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("key", name="action_runs_key"),
)


# The grant ledger (migration 0006): one row per parameter of a granted action, read and
# written by engine/adapters/sql/grants.py in plain SQL.
authority_grants = Table(
    "authority_grants",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("key", String(500), nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    Column("param", String(200), nullable=False),
    Column("amount", Float, nullable=False),
    Column("before", Float),
    Column("role", String(20), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("node", String(400), nullable=False),
    Column("granted_ms", BigInteger, nullable=False),
    Column("released_ms", BigInteger),  # the back office refused the action: no longer counts
    UniqueConstraint("key", "param", name="authority_grants_key"),
    Index("ix_authority_grants_totals", "customer_id", "action", "param", "granted_ms"),
)


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` hook on ``dialect``: leaves out what the tables declare for
    another database only (``ddl_if(dialect=...)``: the funnel index is SQLite's), which
    Alembic's comparison does not know of."""

    def included(item: Any, _name: str | None, _type: str, reflected: bool, _to: Any) -> bool:
        condition = getattr(item, "_ddl_if", None)
        if reflected or condition is None or condition.dialect is None:
            return True
        wanted = condition.dialect
        return dialect in ((wanted,) if isinstance(wanted, str) else tuple(wanted))

    return included
