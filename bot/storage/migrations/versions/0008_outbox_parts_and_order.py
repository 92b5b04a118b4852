"""outbox: parts already sent, and an index for the per-conversation lease

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Several workers may deliver the outbox at once (issue 13). Two things move from a process's
memory into SQL:

- `outbox.parts_sent`: how many parts of a split reply (Twilio's 1600, Telegram's 4096
  characters) the provider already accepted, so a retry by another worker sends only the rest;
- `ix_outbox_conversation_order`: a worker leases only the oldest pending row of a
  conversation (bot.worker), which this index finds without a scan.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'ix_outbox_conversation_order'


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parts_sent', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_index(INDEX, ['conversation_id', 'status', 'scheduled_at', 'seq'])


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.drop_column('parts_sent')
