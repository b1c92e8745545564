"""Insight: the visits table (one row per node a session passes through, with the time it was
entered) and the session columns reports group by (start and end in milliseconds, last node,
nodes visited, survey scores). Existing sessions get their start from created_at; their
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
    if op.get_bind().dialect.name == "sqlite":
        since_1970 = "CAST((julianday(created_at) - 2440587.5) * 86400000 AS INTEGER)"
    else:
        since_1970 = "CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT)"
    op.execute(f"UPDATE sessions SET started_ms = {since_1970}")
    op.create_index("ix_sessions_started_ms", "sessions", ["started_ms"])
    # The repeat-contact window: the same customer's later sessions on the same motive.
    op.create_index("ix_sessions_repeat", "sessions", ["customer_id", "motive", "started_ms"])
    op.create_table(
        "visits",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("journey", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("motive", sa.String(200)),
        sa.Column("node", sa.String(400), nullable=False),
        sa.Column("entered_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("visits")
    op.drop_index("ix_sessions_repeat", "sessions")
    op.drop_index("ix_sessions_started_ms", "sessions")
    with op.batch_alter_table("sessions") as batch:
        for name in ("nps", "ces", "steps", "last_node", "ended_ms", "started_ms"):
            batch.drop_column(name)
