"""Several serving processes: each outbox row being sent records which serving slot claimed it.

A restarted slot marks only its own predecessor's unfinished sends `uncertain`, never those of a
live sibling process.

Revision ID: 0006_scale
Revises: 0005_console_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_scale"
down_revision = "0005_console_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
