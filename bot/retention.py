"""Retention: transcripts and channel addresses are deleted RETENTION_DAYS after a conversation's
last message. Deleting a conversation deletes its messages, handoffs and encrypted address
(foreign keys cascade); the audit log keeps who opened what, without any text, and the anonymous
statistics (bot.storage.facts) stay.

The outbox keeps a copy of what was sent (replies and referral summaries can quote the parent).
A finished row (sent, failed, undeliverable) is deleted with its conversation, at the latest at the
next purge once its conversation is gone ("stop en wis" sets its conversation to NULL), and in any
case RETENTION_DAYS after it was made. A pending row stays until the worker has done with it: it
may be the confirmation that reaches a parent whose conversation was just deleted."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from bot.storage import facts
from bot.storage.models import (
    Block,
    Conversation,
    ConversationStatus,
    Outbox,
    OutboxStatus,
    UserSession,
)

logger = logging.getLogger(__name__)


def purge(session: Session, now: datetime, retention_days: int) -> int:
    """Delete every conversation whose last activity is older than the retention period."""
    cutoff = now - timedelta(days=retention_days)
    last_activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    ids = session.scalars(select(Conversation.id).where(last_activity < cutoff)).all()
    if ids:
        # ORM delete so the cascade to messages and handoffs also runs on SQLite without FKs.
        for conversation in session.scalars(select(Conversation).where(Conversation.id.in_(ids))):
            if conversation.status is ConversationStatus.queued:
                facts.on_left(session, conversation)  # nobody picked it up before it was purged
            session.delete(conversation)
        session.flush()
        # Whatever the ORM did not load is removed by the database's ON DELETE CASCADE.
        session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    # Finished outbox rows whose conversation is gone, and any finished row past the period.
    finished = Outbox.status != OutboxStatus.pending
    deleted = session.execute(
        delete(Outbox).where(finished & (Outbox.conversation_id.is_(None) | (Outbox.created_at < cutoff)))
    )
    outbox = cast("CursorResult[Any]", deleted).rowcount  # a DELETE's result has a row count
    # Expired dashboard sessions, and blocks that ended (a sender's pseudonym is kept no longer
    # than the block needs it).
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.execute(delete(Block).where((Block.expires_at < now) | (Block.lifted_at.is_not(None))))
    logger.info("retention purge: %d conversation(s) older than %d days and %d sent reply copies deleted",
                len(ids), retention_days, outbox)
    return len(ids)

