"""rosters: planned shifts per person and queue (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

A new table only (nothing existing changes), so up and down are the same on SQLite and
PostgreSQL. Planned shifts are not the live shifts (`shifts`, who is really there): they are
what handoff.roster plans, and what the after-hours text and the wait estimate look ahead to.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('planned_shifts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('queue', sa.Enum('volunteer', 'professional', name='queue_name', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('series_id', sa.String(length=36), nullable=True),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_planned_shifts_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_planned_shifts_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_planned_shifts'))
    )
    with op.batch_alter_table('planned_shifts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_planned_shifts_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_planned_shifts_series_id'), ['series_id'], unique=False)
        batch_op.create_index('ix_planned_shifts_queue_starts_at', ['queue', 'starts_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('planned_shifts', schema=None) as batch_op:
        batch_op.drop_index('ix_planned_shifts_queue_starts_at')
        batch_op.drop_index(batch_op.f('ix_planned_shifts_series_id'))
        batch_op.drop_index(batch_op.f('ix_planned_shifts_user_id'))
    op.drop_table('planned_shifts')
