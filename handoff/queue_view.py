"""The queue page's view: what waits for this person in the index's order, their own
conversations, who has the urgent ones, who is on shift and present, and the expected waits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bot.rules import PRIORITY, QueueName, WaitEstimate
from bot.storage.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Role,
    Shift,
    User,
    aware,
)
from bot.triage.types import Risk
from handoff.availability import OnShift, Presence
from handoff.context import URGENT, Actor, DeskContext, may_take, queues_of, ref
from handoff.estimate import estimate_wait
from handoff.index import QueueEntry
from handoff.indexing import IndexKeeper
from handoff.presence import present_count


@dataclass(frozen=True)
class QueueItem:
    conversation_id: str
    ref: str
    queue: QueueName
    priority: int
    risk: Risk
    themes: list[str]
    channel: Channel
    language: str
    queued_at: datetime
    waiting_minutes: int
    preferred: QueueName | None
    status: ConversationStatus
    claimed_by_name: str | None
    offered_to_me: bool
    returning: bool
    acute_alert: bool
    # Whether the person looking may claim it now (a professional-queue conversation shown to a
    # volunteer because it is urgent: only when acute and no professional is present).
    can_claim: bool = True
    urgent: bool = False


@dataclass(frozen=True)
class QueueSnapshot:
    waiting: list[QueueItem]
    mine: list[QueueItem]
    claimed_by_others: list[QueueItem]
    shift: Shift | None
    #: People PRESENT on shift per queue (not merely with an open shift).
    on_shift: dict[QueueName, int]
    estimates: dict[QueueName, WaitEstimate]
    #: Everyone with an open shift, present or away.
    people: list[OnShift]
    professional_present: bool


class QueueView:
    def __init__(self, ctx: DeskContext, presence: Presence, keeper: IndexKeeper) -> None:
        self.ctx = ctx
        self.presence = presence
        self.keeper = keeper

    def snapshot(self, actor: Actor) -> QueueSnapshot:
        """The queue page: what waits for this person (their queues; for someone on shift also
        the acute and high conversations of every queue), their own conversations, who has the
        urgent ones, who is on shift and present, and the expected waits."""
        ctx = self.ctx
        self.keeper.ensure()
        now = ctx.clock()
        queues = queues_of(actor)
        with ctx.factory() as session:
            shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id, Shift.ended_at.is_(None)))
            urgent_too = shift is not None and len(queues) < len(QueueName)
            order: dict[str, int] = {}
            offers: dict[str, QueueEntry] = {}
            try:
                for position, entry in enumerate(ctx.index.entries(list(QueueName) if urgent_too else queues)):
                    order[entry.conversation_id] = position
                    offers[entry.conversation_id] = entry
            except redis.RedisError:
                pass  # SQL order below
            visible: ColumnElement[bool] = Conversation.queue.in_(queues)
            if urgent_too:
                visible = visible | Conversation.highest_risk.in_(URGENT)
            waiting_rows = session.scalars(
                select(Conversation).where(Conversation.status == ConversationStatus.queued,
                                           Conversation.queue.is_not(None), visible)
                .order_by(Conversation.priority, Conversation.queued_at)
            ).all()
            waiting_rows = sorted(waiting_rows, key=lambda c: order.get(c.id, len(order)))
            claimed_rows = session.scalars(
                select(Conversation).where(Conversation.status == ConversationStatus.claimed)
                .order_by(Conversation.claimed_at)
            ).all()
            names = dict(session.execute(select(User.id, User.display_name)).all())
            returning = self.returning(session, [*waiting_rows, *claimed_rows])
            professional_present = self.presence.professional_present(session, now)

            def item(c: Conversation) -> QueueItem:
                entry = offers.get(c.id)
                offered = bool(entry and entry.offer_to == actor.user_id and entry.offer_until
                               and now < entry.offer_until)
                queued_at = aware(c.queued_at) or aware(c.created_at) or now
                acute = c.highest_risk is Risk.acute
                return QueueItem(
                    conversation_id=c.id, ref=ref(c.id), queue=c.queue or QueueName.volunteer,
                    priority=c.priority if c.priority is not None else 3, risk=c.highest_risk,
                    themes=list(c.themes or []), channel=c.channel, language=c.language,
                    queued_at=queued_at, waiting_minutes=max(0, int((now - queued_at).total_seconds() // 60)),
                    preferred=c.preferred_kind, status=c.status,
                    claimed_by_name=names.get(c.claimed_by) if c.claimed_by else None,
                    offered_to_me=offered, returning=c.id in returning,
                    acute_alert=c.acute_alert_at is not None,
                    can_claim=may_take(actor, c.queue, acute=acute, professional_present=professional_present),
                    urgent=c.highest_risk in URGENT,
                )

            waiting = [item(c) for c in waiting_rows]
            mine = [item(c) for c in claimed_rows if c.claimed_by == actor.user_id]
            # Who takes care: coordinators see every claim; someone on shift the urgent ones.
            others = [item(c) for c in claimed_rows if c.claimed_by != actor.user_id
                      and (actor.role is Role.coordinator or (shift is not None and c.highest_risk in URGENT))]
            timeout = self.presence.timeout
            on_shift = {q: present_count(session, now=now, timeout=timeout, queues=[q]) for q in QueueName}
            estimates = {q: estimate_wait(session, q, PRIORITY[Risk.none], now=now, hours=ctx.hours[q],
                                          zone=ctx.zone, handling_minutes=ctx.settings.handling_minutes,
                                          presence_timeout=timeout)
                         for q in queues}
            people = self.presence.people(session, now)
        return QueueSnapshot(waiting=waiting, mine=mine, claimed_by_others=others, shift=shift,
                             on_shift=on_shift, estimates=estimates, people=people,
                             professional_present=professional_present)

    @staticmethod
    def returning(session: Session, conversations: Sequence[Conversation]) -> set[str]:
        """The conversations whose sender wrote before (another conversation on that channel)."""
        if not conversations:
            return set()
        pseudonyms = {c.pseudonym for c in conversations}
        rows = session.execute(
            select(Conversation.pseudonym, Conversation.channel, func.count())
            .where(Conversation.pseudonym.in_(pseudonyms))
            .group_by(Conversation.pseudonym, Conversation.channel)
        ).all()
        many = {(p, ch) for p, ch, n in rows if n > 1}
        return {c.id for c in conversations if (c.pseudonym, c.channel) in many}
