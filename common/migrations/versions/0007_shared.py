"""Shared state for several processes: the flood window on the conversation row, the platform's order in the inbox.

Revision ID: 0007_shared
Revises: 0006_scale
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_shared"
down_revision = "0006_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("recent", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("recent")
