"""supervision: notes to the person who has a conversation, help requests (issue 15)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

- `supervision_notes`: a supervisor's note to the person who has a conversation (only they see
  it; never sent to the parent). Deleted with its conversation (ON DELETE CASCADE).
- `conversations.help_requested_at` / `help_requested_by`: "vraag hulp" by the person who has
  the conversation. A plain user id (no foreign key, like audit_log.user_id): adding a foreign
  key would make SQLite copy the whole conversations table, and users are deactivated, never
  deleted.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'supervision_notes',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('conversation_id', sa.String(length=36), nullable=False),
        sa.Column('author_id', sa.String(length=36), nullable=True),
        sa.Column('to_user_id', sa.String(length=36), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE',
                                name='fk_supervision_notes_conversation_id_conversations'),
        sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='SET NULL',
                                name='fk_supervision_notes_author_id_users'),
        sa.ForeignKeyConstraint(['to_user_id'], ['users.id'], ondelete='SET NULL',
                                name='fk_supervision_notes_to_user_id_users'),
        sa.PrimaryKeyConstraint('id', name='pk_supervision_notes'),
    )
    op.create_index('ix_supervision_notes_conversation_id', 'supervision_notes', ['conversation_id'])
    op.create_index('ix_supervision_notes_to_user_id', 'supervision_notes', ['to_user_id'])
    # Plain ADD COLUMN on both databases (SQLite's batch mode does not copy the table for it).
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('help_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('help_requested_by', sa.String(length=36), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; batch mode would copy the conversations table
    # and could lose the partial unique index of 0007 on the way.
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_column('conversations', 'help_requested_by')
        op.drop_column('conversations', 'help_requested_at')
    else:
        with op.batch_alter_table('conversations', schema=None) as batch_op:
            batch_op.drop_column('help_requested_by')
            batch_op.drop_column('help_requested_at')
    op.drop_index('ix_supervision_notes_to_user_id', table_name='supervision_notes')
    op.drop_index('ix_supervision_notes_conversation_id', table_name='supervision_notes')
    op.drop_table('supervision_notes')
