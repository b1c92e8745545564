"""The grant ledger: what each customer was granted, per action and parameter, and when, for
the authority limits per customer over a period (``per_customer`` in policies.yaml). One row
per parameter of a granted action; the totals are read through the index on the customer,
action, parameter and time. A grant whose action the back office refused is released (it
stays, with the time it was released, and no longer counts).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authority_grants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("param", sa.String(200), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("before", sa.Float),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("node", sa.String(400), nullable=False),
        sa.Column("granted_ms", sa.BigInteger, nullable=False),
        # Set when the back office refused the action (a business error): nothing was given,
        # so the row no longer counts; it stays, as the record of the decision.
        sa.Column("released_ms", sa.BigInteger),
        sa.UniqueConstraint("key", "param", name="authority_grants_key"),
    )
    op.create_index(
        "ix_authority_grants_totals",
        "authority_grants",
        ["customer_id", "action", "param", "granted_ms"],
    )


def downgrade() -> None:
    op.drop_table("authority_grants")
