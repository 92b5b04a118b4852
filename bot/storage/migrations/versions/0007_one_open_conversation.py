"""one open conversation per sender: a partial unique index on (channel, pseudonym)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Before this version two first messages of a new sender arriving together could open two
conversations. A database may therefore hold, for one sender, more than one conversation that is
not closed; the index cannot be made over them. They are resolved first, in SQL:

- the one kept is the one a person is busiest with: claimed before queued before bot, and among
  equals the newest (the pipeline already wrote every new message into the newest);
- the others are closed (closed_at now, nothing awaited, no pending referral, no claim), and
  their open handoff rows are closed with the outcome "duplicate". Their messages stay where they
  are: the handover card shows a sender's earlier conversations, so the person who picks up the
  kept one still sees every word. Merging the messages into one conversation was not chosen: it
  would move statistics rows and handoff history between conversations, for a case that holds
  at most a few seconds of a parent's first words.

The queue index in Redis is rebuilt from SQL at start and by `oudertelefoon handoff rebuild`;
a closed conversation still in it is refused by the conditional claim in SQL.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'uq_conversations_open_sender'
_RANK = {'claimed': 0, 'queued': 1, 'bot': 2}


def _close_duplicates() -> int:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, channel, pseudonym, status, created_at FROM conversations "
        "WHERE status <> 'closed' AND (channel, pseudonym) IN ("
        "  SELECT channel, pseudonym FROM conversations WHERE status <> 'closed' "
        "  GROUP BY channel, pseudonym HAVING COUNT(*) > 1)"
    )).all()
    by_sender: dict[tuple[str, str], list[tuple[str, str, object]]] = {}
    for conversation_id, channel, pseudonym, status, created_at in rows:
        by_sender.setdefault((channel, pseudonym), []).append((conversation_id, status, created_at))
    now = datetime.now(UTC)
    closed = 0
    for group in by_sender.values():
        # Newest first, then the busiest first (a stable sort keeps the newest among equals).
        group.sort(key=lambda row: (row[2], row[0]), reverse=True)
        group.sort(key=lambda row: _RANK.get(row[1], 3))
        for conversation_id, _status, _created in group[1:]:
            bind.execute(sa.text(
                "UPDATE handoffs SET status = 'closed', closed_at = :now, outcome = 'duplicate' "
                "WHERE conversation_id = :id AND status IN ('queued', 'claimed')"
            ), {"now": now, "id": conversation_id})
            bind.execute(sa.text(
                "UPDATE conversations SET status = 'closed', closed_at = :now, awaiting = NULL, "
                "pending_referral = NULL, claimed_by = NULL, claimed_at = NULL, "
                "acute_alert_at = NULL, call_sid = NULL WHERE id = :id"
            ), {"now": now, "id": conversation_id})
            closed += 1
    return closed


def upgrade() -> None:
    _close_duplicates()
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index(INDEX, ['channel', 'pseudonym'], unique=True,
                              postgresql_where=sa.text("status <> 'closed'"),
                              sqlite_where=sa.text("status <> 'closed'"))


def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index(INDEX)
