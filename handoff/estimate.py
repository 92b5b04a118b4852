"""Honest expected waiting time, from SQL: conversations ahead in the queue, people on shift, the
recent handling times, and the queue's opening hours."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.hours import Hours
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    QueueName,
    Shift,
    aware,
)
from handoff.interfaces import WaitEstimate

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
    hours: Hours,
    zone: ZoneInfo,
    handling_minutes: int,
) -> WaitEstimate:
    """Minutes until a new conversation with `priority` is picked up, or when the next shift starts."""
    on_shift = session.scalar(
        select(func.count()).select_from(Shift).where(Shift.queue == queue, Shift.ended_at.is_(None))
    ) or 0
    if on_shift == 0:
        opening = hours.next_opening(now, zone)
        # Open now but nobody on shift: say "as soon as someone is there", not a made-up time.
        return WaitEstimate(minutes=None, next_shift_starts=None if opening <= now else opening,
                            people_on_shift=0)
    ahead = session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.queued,
            Conversation.queue == queue,
            Conversation.priority <= priority,
        )
    ) or 0
    busy = session.scalar(
        select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.claimed, Conversation.queue == queue)
    ) or 0
    free = max(0, on_shift - busy)
    if ahead < free:
        return WaitEstimate(minutes=2, next_shift_starts=None, people_on_shift=on_shift)
    handling = recent_handling_minutes(session, queue, now, handling_minutes)
    minutes = math.ceil((ahead - free + 1) / on_shift) * handling
    return WaitEstimate(minutes=minutes, next_shift_starts=None, people_on_shift=on_shift)
