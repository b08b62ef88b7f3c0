"""The payer's usage caps: each job's `maxInputTokens` and `maxOutputTokens` from its `JobOpened` event.

Jobs ingested before keep no caps (NULL): their settlements are not clamped.

Revision ID: 0003
Revises: 0002
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("max_input_tokens", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_output_tokens", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("max_output_tokens")
        batch.drop_column("max_input_tokens")
