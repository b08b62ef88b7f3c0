"""Usage the relayer counts itself: what the operator reported beside what a job is settled for, and each
operator's usage disputes (reports beyond the relayer's count).

Revision ID: 0002
Revises: 0001
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reported_input_tokens", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("reported_output_tokens", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("operators") as batch:
        batch.add_column(sa.Column("usage_disputes", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("usage_disputes")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reported_output_tokens")
        batch.drop_column("reported_input_tokens")
