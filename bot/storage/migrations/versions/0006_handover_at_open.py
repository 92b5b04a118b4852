"""handover at open: when the warm handover went to the parent, per claim

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('greeted_at', sa.DateTime(timezone=True), nullable=True))
    # Claims made before this version sent the handover at the claim itself: not again.
    op.execute("UPDATE handoffs SET greeted_at = claimed_at WHERE status = 'claimed'")


def downgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('greeted_at')
