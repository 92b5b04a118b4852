"""The Redis queue index kept in line with SQL: the entry of a waiting conversation (its place,
and who it is offered to first), a rebuild from SQL when the index is lost or drifted, and the
claim marker that makes a claim atomic. SQL stays the truth: every failure of Redis here is
logged and left to the next sync (handoff.index is the index itself)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.rules import PRIORITY, QueueName
from bot.storage.models import Channel, Conversation, ConversationStatus, User, aware
from bot.triage.types import Risk
from handoff.availability import Presence
from handoff.context import DeskContext
from handoff.events import Event, publish
from handoff.index import QueueEntry

logger = logging.getLogger(__name__)


class IndexKeeper:
    def __init__(self, ctx: DeskContext, presence: Presence) -> None:
        self.ctx = ctx
        self.presence = presence

    def entry(self, session: Session, conversation: Conversation,
              offers: dict[tuple[Channel, str], str] | None = None) -> QueueEntry:
        assert conversation.queue is not None and conversation.queued_at is not None
        offer_to, offer_until = self.offer(session, conversation, offers)
        return QueueEntry(
            conversation_id=conversation.id,
            queue=conversation.queue,
            priority=conversation.priority if conversation.priority is not None else PRIORITY[Risk.none],
            queued_at=aware(conversation.queued_at) or self.ctx.clock(),
            language=conversation.language or "nl",
            preferred=conversation.preferred_kind,
            offer_to=offer_to,
            offer_until=offer_until,
        )

    def offer(self, session: Session, conversation: Conversation,
              offers: dict[tuple[Channel, str], str] | None = None) -> tuple[str | None, datetime | None]:
        """Continuity: a returning parent is offered first to whoever helped last time, if that
        person is on shift and may take this queue. `offers`: helpers looked up in one batch."""
        settings = self.ctx.settings
        if settings.offer_seconds <= 0 or conversation.queued_at is None:
            return None, None
        if offers is not None:
            helper = offers.get((conversation.channel, conversation.pseudonym))
        else:
            helper = self.last_helpers(session, [conversation]).get((conversation.channel, conversation.pseudonym))
        if helper is None:
            return None, None
        user = session.get(User, helper)
        if user is None or not user.active or conversation.queue is None or not user.may_take(conversation.queue):
            return None, None
        if not self.presence.present(session, helper, self.ctx.clock()):
            return None, None
        return helper, (aware(conversation.queued_at) or self.ctx.clock()) + timedelta(seconds=settings.offer_seconds)

    @staticmethod
    def last_helpers(session: Session, conversations: Sequence[Conversation]) -> dict[tuple[Channel, str], str]:
        """Who helped each sender last (their latest closed, claimed conversation), in one query."""
        pseudonyms = list({c.pseudonym for c in conversations})
        helpers: dict[tuple[Channel, str], str] = {}
        for start in range(0, len(pseudonyms), 500):
            rows = session.execute(
                select(Conversation.channel, Conversation.pseudonym, Conversation.claimed_by)
                .where(Conversation.pseudonym.in_(pseudonyms[start:start + 500]),
                       Conversation.status == ConversationStatus.closed,
                       Conversation.claimed_by.is_not(None))
                .order_by(Conversation.created_at)
            ).all()
            for channel, pseudonym, user_id in rows:
                if user_id is not None:
                    helpers[(channel, pseudonym)] = user_id  # the newest wins
        return helpers

    def rebuild(self) -> int:
        """The Redis index from SQL: every queued conversation in its place, every claim marker."""
        since = self.ctx.index.mark()  # what changes after this is newer than the read below
        with self.ctx.factory() as session:
            queued = session.scalars(
                select(Conversation).where(Conversation.status == ConversationStatus.queued,
                                           Conversation.queue.is_not(None))
            ).all()
            offers = self.last_helpers(session, queued) if self.ctx.settings.offer_seconds > 0 else {}
            entries = [self.entry(session, c, offers) for c in queued]
            claims = session.execute(
                select(Conversation.id, Conversation.claimed_by).where(
                    Conversation.status == ConversationStatus.claimed,
                    Conversation.claimed_by.is_not(None))
            ).all()
        count = self.ctx.index.rebuild(entries, [(cid, uid) for cid, uid in claims if uid is not None],
                                       since=since)
        logger.info("queue index rebuilt from SQL: %d waiting, %d claimed", count, len(claims))
        return count

    def ensure(self) -> None:
        """Rebuild when the index is gone (Redis flushed or restarted without persistence)."""
        try:
            if not self.ctx.index.is_built():
                self.rebuild()
        except redis.RedisError as error:
            logger.warning("queue index unavailable (%s); SQL still holds every queue", type(error).__name__)

    def index_conversation(self, conversation_id: str) -> None:
        """Bring one conversation's index entry in line with SQL (after the pipeline changed it)."""
        try:
            self.ensure()
            with self.ctx.factory() as session:
                conversation = session.get(Conversation, conversation_id)
                if conversation is None or conversation.status in (ConversationStatus.bot,
                                                                   ConversationStatus.closed):
                    self.ctx.index.remove(conversation_id)
                    return
                if conversation.status is ConversationStatus.queued and conversation.queue is not None:
                    self.ctx.index.add(self.entry(session, conversation))
        except redis.RedisError as error:
            # The worker's periodic ensure/rebuild catches up; SQL is the truth meanwhile.
            logger.warning("could not index a conversation (%s)", type(error).__name__)

    def after_pipeline(self, conversation_id: str, change: str) -> None:
        """What the pipeline changed, after its commit: index it and tell the dashboards."""
        if change in ("queued", "closed", "deleted"):
            self.index_conversation(conversation_id)
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                publish(self.ctx.redis, Event(type="closed", conversation_id=conversation_id),
                        prefix=self.ctx.prefix)
                return
            kind = {"deleted": "closed"}.get(change, change)
            self.ctx.publish(kind, conversation, user_id=conversation.claimed_by if kind == "acute" else None)

    def sync(self) -> None:
        """Periodic safety net: rebuild when the index lost track of SQL."""
        try:
            if not self.ctx.index.is_built():
                self.rebuild()
                return
            with self.ctx.factory() as session:
                waiting = session.scalar(select(func.count()).select_from(Conversation).where(
                    Conversation.status == ConversationStatus.queued)) or 0
            indexed = sum(len(self.ctx.index.waiting(q)) for q in QueueName)
            if indexed != waiting:
                self.rebuild()
        except redis.RedisError as error:
            logger.warning("queue index sync skipped (%s)", type(error).__name__)

    def add(self, entry: QueueEntry, what: str = "the conversation is queued in SQL") -> None:
        try:
            self.ctx.index.add(entry)
        except redis.RedisError:
            logger.warning("queue index unavailable; %s and indexed later", what)

    def remove(self, conversation_id: str) -> None:
        try:
            self.ctx.index.remove(conversation_id)
        except redis.RedisError:
            pass  # the next sync drops it

    def claim(self, conversation_id: str, user_id: str) -> bool:
        """The claim marker: one winner among many clickers, without touching the database."""
        index = self.ctx.index
        try:
            if index.claim(conversation_id, user_id):
                return True
            if index.claimed_by(conversation_id) is not None:
                return False
            # Not in the index although SQL says it waits (the index drifted): index it, try again.
            self.index_conversation(conversation_id)
            return index.claim(conversation_id, user_id)
        except redis.RedisError as error:
            # Without Redis the conditional UPDATE in SQL alone decides: still one winner.
            logger.warning("queue index unavailable for a claim (%s); SQL decides", type(error).__name__)
            return True

    def unclaim(self, conversation_id: str) -> None:
        """Give a marker back: the entry is dropped or re-added as SQL says."""
        try:
            self.ctx.index.unclaim(conversation_id)
            self.index_conversation(conversation_id)
        except redis.RedisError:
            pass
