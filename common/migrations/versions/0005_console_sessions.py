"""The web console: server-side login sessions (only the token's hash stored), and eval reports per index version.

Revision ID: 0005_console_sessions
Revises: 0004_wechat
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_console_sessions"
down_revision = "0004_wechat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_console_sessions_account"), "console_sessions", ["account"], unique=False)
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"], unique=False)
    op.create_table(
        "kb_evals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_kb_evals_version"), "kb_evals", ["version"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_kb_evals_version"), table_name="kb_evals")
    op.drop_table("kb_evals")
    op.drop_index(op.f("ix_console_sessions_expires_at"), table_name="console_sessions")
    op.drop_index(op.f("ix_console_sessions_account"), table_name="console_sessions")
    op.drop_table("console_sessions")
