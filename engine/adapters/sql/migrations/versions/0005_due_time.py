"""Sessions that go on by themselves: ``due_ms``, when an incident's next automatic retry is
due, with a partial index holding those rows only (the retry loop reads nothing else).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("due_ms", sa.BigInteger))
    due = sa.text("due_ms IS NOT NULL")
    op.create_index(
        "ix_sessions_due", "sessions", ["due_ms"], sqlite_where=due, postgresql_where=due
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_due", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("due_ms")
