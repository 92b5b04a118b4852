"""Honest expected waiting time, from SQL: conversations ahead in the queue, the people PRESENT on
shift (handoff.presence: an open shift whose dashboard was seen within the presence timeout), the
recent handling times, and the queue's schedule (bot.hours.Schedule: the roster, handoff.roster,
or the opening hours while a queue has no roster)."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.hours import Schedule
from bot.rules import PRIORITY, QueueName, WaitEstimate, WaitEstimator
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    User,
    aware,
    role_may_take,
)
from bot.triage.types import Risk
from handoff.presence import present_count, present_user_ids

RECENT = timedelta(days=14)
MIN_SAMPLES = 5


def recent_handling_minutes(session: Session, queue: QueueName, now: datetime, fallback: int) -> int:
    """The median minutes from claim to close in this queue over the last two weeks; the configured
    average until there are enough closed conversations to say something."""
    rows = session.execute(
        select(Handoff.claimed_at, Handoff.closed_at)
        .where(Handoff.queue == queue, Handoff.status == HandoffStatus.closed,
               Handoff.claimed_at.is_not(None), Handoff.closed_at >= now - RECENT)
        .order_by(Handoff.closed_at.desc())
        .limit(500)
    ).all()
    minutes = [((aware(closed) - aware(claimed)).total_seconds() / 60)  # type: ignore[operator]
               for claimed, closed in rows if claimed is not None and closed is not None]
    if len(minutes) < MIN_SAMPLES:
        return fallback
    return max(1, math.ceil(statistics.median(minutes)))


def estimate_wait(
    session: Session,
    queue: QueueName,
    priority: int,
    *,
    now: datetime,
    hours: Schedule,
    zone: ZoneInfo,
    handling_minutes: int,
    presence_timeout: timedelta,
) -> WaitEstimate:
    """Minutes until a new conversation with `priority` is picked up, counting only the people
    present on shift now (`presence_timeout`: handoff.presence); with nobody present, when the
    rota next has someone."""
    open_now = hours.is_open(now, zone)
    present = present_count(session, now=now, timeout=presence_timeout, queues=[queue])
    busy_filter = Conversation.queue == queue
    if present == 0 and priority == PRIORITY[Risk.acute]:
        # Danger now with nobody of this queue present: whoever else is present may take it
        # (role_may_take, the one rule), and is alerted; so they are who the parent waits for.
        ids = present_user_ids(session, now=now, timeout=presence_timeout)
        roles = session.execute(select(User.id, User.role).where(User.id.in_(ids))).all() if ids else []
        takers = [uid for uid, role in roles
                  if role_may_take(role, queue, acute=True, professional_present=False)]
        present = len(takers)
        busy_filter = Conversation.claimed_by.in_(takers)
    if present == 0:
        # Nobody online. After hours: the next opening. Open now (the rota says someone should
        # be here, but nobody is): not "any minute now", but the next opening period after this
        # one, so the parent hears a time the rota stands behind.
        return WaitEstimate(minutes=None, next_shift_starts=hours.next_opening_after_close(now, zone),
                            people_on_shift=0, open_now=open_now)
    ahead = session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.queued,
            Conversation.queue == queue,
            Conversation.priority <= priority,
        )
    ) or 0
    busy = session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.claimed, busy_filter)
    ) or 0
    free = max(0, present - busy)
    if ahead < free:
        return WaitEstimate(minutes=2, next_shift_starts=None, people_on_shift=present, open_now=open_now)
    handling = recent_handling_minutes(session, queue, now, handling_minutes)
    minutes = math.ceil((ahead - free + 1) / present) * handling
    closes = hours.closes_at(now, zone)
    if closes is not None and now + timedelta(minutes=minutes) > closes:
        # The people present are expected only until `closes` (the roster, or the opening
        # hours): "within N minutes" past it is a promise nobody planned. Say the end, and when
        # the schedule has someone again.
        return WaitEstimate(minutes=minutes, next_shift_starts=hours.next_opening_after_close(now, zone),
                            people_on_shift=present, open_now=open_now, closes_at=closes)
    return WaitEstimate(minutes=minutes, next_shift_starts=None, people_on_shift=present, open_now=open_now)


def estimator_for(settings: Settings) -> WaitEstimator:
    """`estimate_wait` with the line's settings: what the composition root hands the pipeline
    (which passes its own opening hours per queue)."""
    zone = ZoneInfo(settings.timezone)
    timeout = timedelta(seconds=settings.presence_timeout_seconds)

    def estimate(session: Session, queue: QueueName, priority: int, now: datetime,
                 hours: Schedule) -> WaitEstimate:
        return estimate_wait(session, queue, priority, now=now, hours=hours, zone=zone,
                             handling_minutes=settings.handling_minutes, presence_timeout=timeout)

    return estimate
