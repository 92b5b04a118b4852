"""Honest expected waiting time, from SQL: conversations ahead in the queue, people on shift,
the average handling time, and the queue's opening hours."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.hours import Hours
from bot.storage.models import Conversation, ConversationStatus, QueueName, Shift
from handoff.interfaces import WaitEstimate


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
    minutes = math.ceil((ahead + 1) / on_shift) * handling_minutes
    return WaitEstimate(minutes=minutes, next_shift_starts=None, people_on_shift=on_shift)
