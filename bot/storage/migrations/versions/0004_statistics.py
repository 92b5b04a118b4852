"""statistics

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('contact_facts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.Enum('web', 'telegram', 'sms', 'whatsapp', 'phone', name='channel', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('themes', sa.JSON(), nullable=False),
    sa.Column('risk', sa.Enum('none', 'concern', 'high', 'acute', name='risk', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('route', sa.Enum('bot', 'volunteer', 'professional', 'emergency', name='route', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('after_hours', sa.Boolean(), nullable=False),
    sa.Column('parent_messages', sa.Integer(), nullable=False),
    sa.Column('catalogue_given', sa.JSON(), nullable=False),
    sa.Column('handed_over', sa.Boolean(), nullable=False),
    sa.Column('queue', sa.Enum('volunteer', 'professional', name='queue_name', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('waited_seconds', sa.Integer(), nullable=True),
    sa.Column('handled_seconds', sa.Integer(), nullable=True),
    sa.Column('abandoned', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('referred_to', sa.String(length=64), nullable=True),
    sa.Column('corrected', sa.Boolean(), nullable=False),
    sa.Column('corrected_themes', sa.JSON(), nullable=True),
    sa.Column('verdict', sa.Enum('yes', 'somewhat', 'no', name='verdict', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_facts'))
    )
    with op.batch_alter_table('contact_facts', schema=None) as batch_op:
        batch_op.create_index('ix_contact_facts_channel_hour', ['channel', 'hour'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_facts_hour'), ['hour'], unique=False)

    op.create_table('contact_themes',
    sa.Column('fact_id', sa.String(length=36), nullable=False),
    sa.Column('theme', sa.String(length=32), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fact_id'], ['contact_facts.id'], name=op.f('fk_contact_themes_fact_id_contact_facts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('fact_id', 'theme', name=op.f('pk_contact_themes'))
    )
    with op.batch_alter_table('contact_themes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_themes_hour'), ['hour'], unique=False)

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fact_id', sa.String(length=36), nullable=True))

    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key('fk_corrections_reviewed_by_users', 'users', ['reviewed_by'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_constraint('fk_corrections_reviewed_by_users', type_='foreignkey')
        batch_op.drop_column('reviewed_by')
        batch_op.drop_column('accepted')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('fact_id')

    with op.batch_alter_table('contact_themes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_themes_hour'))

    op.drop_table('contact_themes')
    with op.batch_alter_table('contact_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_facts_hour'))
        batch_op.drop_index('ix_contact_facts_channel_hour')

    op.drop_table('contact_facts')
