"""WeChat: outbox rows linked to the message they answer (passive replies), the shared access_token row.

Revision ID: 0004_wechat
Revises: 0003_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_wechat"
down_revision = "0003_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("inbox_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_outbox_inbox_id"), ["inbox_id"], unique=False)
    op.create_table(
        "wechat_tokens",
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app_id"),
    )


def downgrade() -> None:
    op.drop_table("wechat_tokens")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index(batch.f("ix_outbox_inbox_id"))
        batch.drop_column("inbox_id")
