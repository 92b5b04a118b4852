"""Coordinators' moderation: blocking a sender (by pseudonym, until an expiry) and the standard
texts people can pick for a reply. Whether a sender is blocked now is asked below the pipeline
(bot.storage.blocks.active_block)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.storage.models import (
    Block,
    Conversation,
    ConversationStatus,
    HandoffStatus,
    Role,
    StandardText,
)
from handoff.context import MAX_NOTE_CHARS, MAX_REPLY_CHARS, Actor, DeskContext
from handoff.errors import Invalid, NotAllowed, NotFound
from handoff.indexing import IndexKeeper

MAX_BLOCK_DAYS = 365
MAX_TITLE_CHARS = 80


def coordinator_only(actor: Actor) -> None:
    if actor.role is not Role.coordinator:
        raise NotAllowed("coordinators_only")


class Moderation:
    def __init__(self, ctx: DeskContext, keeper: IndexKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper

    # blocks ---------------------------------------------------------------------------------------

    def block(self, conversation_id: str, actor: Actor, reason: str, days: int) -> None:
        """Block a sender by pseudonym until the expiry; the conversation closes and nothing more
        reaches the queue. The sender gets one neutral message on their next message."""
        coordinator_only(actor)
        reason = reason.strip()
        if not reason:
            raise Invalid("block_reason_missing")
        if not 1 <= days <= MAX_BLOCK_DAYS:
            raise Invalid("block_days")
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise NotFound("conversation_gone")
            session.add(Block(channel=conversation.channel, pseudonym=conversation.pseudonym,
                              reason=reason[:MAX_NOTE_CHARS], expires_at=now + timedelta(days=days),
                              created_by=actor.user_id, created_at=now))
            handoff = self.ctx.open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.closed
                handoff.closed_at = now
                handoff.outcome = "blocked"
            conversation.status = ConversationStatus.closed
            conversation.closed_at = now
            self.ctx.audit(session, actor, "blocked", conversation_id, days=days)
        self.keeper.remove(conversation_id)
        self.ctx.publish("closed", conversation, user_id=actor.user_id)

    def blocks(self, actor: Actor) -> list[Block]:
        """The blocks in force, newest first."""
        coordinator_only(actor)
        now = self.ctx.clock()
        with self.ctx.factory() as session:
            return list(session.scalars(select(Block).where(Block.lifted_at.is_(None), Block.expires_at > now)
                                        .order_by(Block.created_at.desc())))

    def lift_block(self, block_id: str, actor: Actor) -> None:
        coordinator_only(actor)
        with self.ctx.factory() as session, session.begin():
            block = session.get(Block, block_id)
            if block is None:
                raise NotFound("block_gone")
            block.lifted_at = self.ctx.clock()
            self.ctx.audit(session, actor, "block_lifted", None, block=block_id)

    # standard texts -------------------------------------------------------------------------------

    def standard_texts(self) -> list[StandardText]:
        with self.ctx.factory() as session:
            return list(session.scalars(select(StandardText).where(StandardText.active.is_(True))
                                        .order_by(StandardText.title)))

    def add_standard_text(self, actor: Actor, title: str, body: str) -> None:
        coordinator_only(actor)
        title, body = title.strip(), body.strip()
        if not title or not body:
            raise Invalid("text_incomplete")
        if len(title) > MAX_TITLE_CHARS or len(body) > MAX_REPLY_CHARS:
            raise Invalid("text_too_long")
        with self.ctx.factory() as session, session.begin():
            session.add(StandardText(title=title, body=body, created_by=actor.user_id))

    def remove_standard_text(self, actor: Actor, text_id: str) -> None:
        coordinator_only(actor)
        with self.ctx.factory() as session, session.begin():
            text = session.get(StandardText, text_id)
            if text is None:
                raise NotFound("text_gone")
            text.active = False
