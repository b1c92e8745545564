"""Drop the index on events.session_id: the unique (session_id, seq) index serves the same
lookups, and every step paid for writing both.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_session_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_session_id", "events", ["session_id"])
