"""Action runs: every back-office run of a session (waited for, in the background, or after
the end), with its status, attempts, Prefect flow-run id, result or error.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "action_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("node", sa.String(400), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("result", JSON),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="action_runs_key"),
    )
    op.create_index("ix_action_runs_session_id", "action_runs", ["session_id"])


def downgrade() -> None:
    op.drop_table("action_runs")
