"""Insight: the visits table (one row per node a session passes through, with the time it was
entered, the node before and the time spent there) and the session columns reports group by
(start and end in milliseconds, last node, nodes visited, survey scores), plus a partial index
for the agents' queue of self-care sessions. Existing sessions get their start from created_at; their
visits and end, which were not recorded, stay empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("started_ms", sa.BigInteger))
        batch.add_column(sa.Column("ended_ms", sa.BigInteger))
        batch.add_column(sa.Column("last_node", sa.String(400)))
        batch.add_column(sa.Column("steps", sa.Integer))
        batch.add_column(sa.Column("ces", sa.SmallInteger))
        batch.add_column(sa.Column("nps", sa.SmallInteger))
        batch.add_column(sa.Column("visited_ms", sa.BigInteger))
    if op.get_bind().dialect.name == "postgresql":
        # A session's state and its events are written at every step and read back whole:
        # json keeps their text, jsonb would take it apart at every write.
        op.execute("ALTER TABLE sessions ALTER COLUMN state TYPE json USING state::json")
        op.execute("ALTER TABLE events ALTER COLUMN data TYPE json USING data::json")
    if op.get_bind().dialect.name == "sqlite":
        since_1970 = "CAST((julianday(created_at) - 2440587.5) * 86400000 AS INTEGER)"
    else:
        since_1970 = "CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT)"
    op.execute(f"UPDATE sessions SET started_ms = {since_1970}")
    op.create_index("ix_sessions_started_ms", "sessions", ["started_ms"])
    # The repeat-contact window: the same customer's later sessions on the same motive.
    op.create_index("ix_sessions_repeat", "sessions", ["customer_id", "motive", "started_ms"])
    # The agents' queue of self-care sessions waiting for them (partial: only those rows).
    waiting = sa.text("status = 'waiting' AND channel = 'selfcare'")
    op.create_index(
        "ix_sessions_selfcare_waiting",
        "sessions",
        ["updated_at"],
        sqlite_where=waiting,
        postgresql_where=waiting,
    )
    op.create_table(
        "visits",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("journey", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("motive", sa.String(200)),
        sa.Column("node", sa.String(400), nullable=False),
        sa.Column("from_node", sa.String(400)),
        sa.Column("first", sa.SmallInteger, nullable=False),
        sa.Column("spent_ms", sa.BigInteger),
        sa.Column("entered_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    # Funnels group by (journey, from_node, node). SQLite groups by sorting: walking this
    # index in order instead takes 2 s off a report on a million events. PostgreSQL groups
    # by hashing, as fast without it, and would only pay for the index at every step.
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "ix_visits_funnel",
            "visits",
            ["journey", "from_node", "node", "started_ms", "motive", "first", "spent_ms"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE sessions ALTER COLUMN state TYPE jsonb USING state::jsonb")
        op.execute("ALTER TABLE events ALTER COLUMN data TYPE jsonb USING data::jsonb")
    op.drop_table("visits")  # and its index
    op.drop_index("ix_sessions_selfcare_waiting", "sessions")
    op.drop_index("ix_sessions_repeat", "sessions")
    op.drop_index("ix_sessions_started_ms", "sessions")
    with op.batch_alter_table("sessions") as batch:
        for name in ("visited_ms", "nps", "ces", "steps", "last_node", "ended_ms", "started_ms"):
            batch.drop_column(name)
