"""Shifts: a person starts and stops one; their dashboard's heartbeat keeps them present
(handoff.presence); a shift whose dashboard is long gone ends by itself, and claims of people who
are gone or idle go back to the queue with their place kept."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.rules import QueueName
from bot.storage.models import (
    AuditLog,
    Conversation,
    ConversationStatus,
    Message,
    Role,
    Shift,
    User,
    aware,
)
from handoff.actions import Actions
from handoff.availability import Presence
from handoff.context import Actor, DeskContext, may_take
from handoff.errors import NotAllowed

logger = logging.getLogger(__name__)


class Shifts:
    def __init__(self, ctx: DeskContext, presence: Presence, actions: Actions) -> None:
        self.ctx = ctx
        self.presence = presence
        self.actions = actions
        self._presence_checked_at: datetime | None = None  # the last round's watch_presence

    def start_shift(self, actor: Actor, queue: QueueName | None = None) -> None:
        own = QueueName.volunteer if actor.role is Role.volunteer else QueueName.professional
        queue = queue or own
        if not may_take(actor, queue):
            raise NotAllowed("shift_not_allowed")
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            open_shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id,
                                                            Shift.ended_at.is_(None)))
            if open_shift is not None:
                open_shift.queue = queue
                open_shift.last_seen_at = now
            else:
                session.add(Shift(user_id=actor.user_id, queue=queue, started_at=now, last_seen_at=now))
            self.ctx.audit(session, actor, "shift_started", None, queue=queue.value)
        self.ctx.publish("shift", user_id=actor.user_id, queue=queue)

    def stop_shift(self, user_id: str, reason: str = "stopped") -> int:
        """End the person's shift; their claimed conversations go back to the queue, places kept.
        `reason`: "stopped" (they said so), "logout", "idle" (their dashboard was gone too long),
        or "deactivated"."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            shifts = session.scalars(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None))).all()
            for shift in shifts:
                shift.ended_at = now
            claimed = session.scalars(select(Conversation.id).where(
                Conversation.status == ConversationStatus.claimed, Conversation.claimed_by == user_id)).all()
            if not shifts and not claimed:
                return 0  # not on shift (a logout without a shift): nothing to end
            session.add(AuditLog(user_id=user_id, action="shift_stopped",
                                 detail={"returned": len(claimed), "reason": reason}))
        for conversation_id in claimed:
            self.actions.return_to_queue(conversation_id, user_id, "off_shift")
        self.ctx.publish("shift", user_id=user_id)
        return len(claimed)

    def heartbeat(self, actor: Actor) -> None:
        """The person's dashboard is there (its event stream, or its polling): their open shift
        counts as present. Writes at most every `heartbeat_every`; someone coming back after
        being away is announced to the dashboards at once."""
        now = self.ctx.clock()
        back = False
        with self.ctx.factory() as session, session.begin():
            shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id, Shift.ended_at.is_(None)))
            last = aware(shift.last_seen_at) if shift is not None else None
            if shift is not None and (last is None or now - last >= self.presence.heartbeat_every):
                shift.last_seen_at = now
                back = last is None or now - last > self.presence.timeout
        if back:
            self.ctx.publish("shift", user_id=actor.user_id)

    def end_stale_shifts(self) -> int:
        """A shift whose dashboard has been gone for CLAIM_IDLE_MINUTES ends by itself (audited,
        reason "idle"), and its claims go back to the queue: nobody stays "in dienst" forever
        after closing the tab."""
        limit = self.ctx.clock() - timedelta(minutes=self.ctx.settings.claim_idle_minutes)
        with self.ctx.factory() as session:
            stale = session.scalars(select(Shift.user_id).where(
                Shift.ended_at.is_(None), func.coalesce(Shift.last_seen_at, Shift.started_at) < limit)).all()
        for user_id in dict.fromkeys(stale):
            self.stop_shift(user_id, reason="idle")
        if stale:
            logger.info("ended %d shift(s) whose dashboard was gone", len(set(stale)))
        return len(set(stale))

    def release_idle(self) -> int:
        """Claimed conversations whose person went off shift, or whose dashboard has been away for
        longer than CLAIM_IDLE_MINUTES, go back to the queue with their place kept."""
        now = self.ctx.clock()
        limit = timedelta(minutes=self.ctx.settings.claim_idle_minutes)
        back: list[tuple[str, str | None, str]] = []
        with self.ctx.factory() as session:
            rows = session.execute(
                select(Conversation.id, Conversation.claimed_by, Conversation.claimed_at)
                .where(Conversation.status == ConversationStatus.claimed)
            ).all()
            for conversation_id, user_id, claimed_at in rows:
                if user_id is None:
                    back.append((conversation_id, None, "no_person"))
                    continue
                shift = session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))
                user = session.get(User, user_id)
                if shift is None or user is None or not user.active:
                    back.append((conversation_id, user_id, "off_shift"))
                    continue
                last_reply = aware(session.scalar(select(func.max(Message.created_at)).where(
                    Message.conversation_id == conversation_id, Message.user_id == user_id)))
                seen = max(t for t in (aware(shift.last_seen_at), aware(claimed_at), last_reply,
                                       aware(shift.started_at)) if t is not None)
                if now - seen > limit:
                    back.append((conversation_id, user_id, "idle"))
        for conversation_id, user_id, reason in back:
            self.actions.return_to_queue(conversation_id, user_id, reason)
        if back:
            logger.info("returned %d claimed conversation(s) to the queue", len(back))
        return len(back)

    def watch_presence(self) -> None:
        """Presence runs out by time, not by an event: when someone's presence ran out since the
        last round, publish a shift event, so dashboards show them away. (Coming back is told by
        the heartbeat itself.)"""
        now = self.ctx.clock()
        since, self._presence_checked_at = self._presence_checked_at, now
        if since is None:
            return
        timeout = self.presence.timeout
        seen = func.coalesce(Shift.last_seen_at, Shift.started_at)
        with self.ctx.factory() as session:
            expired = session.scalar(select(func.count()).select_from(Shift).where(
                Shift.ended_at.is_(None), seen >= since - timeout, seen < now - timeout)) or 0
        if expired:
            self.ctx.publish("shift")
