"""Who is really there. A shift counts as present only while its dashboard's live connection keeps
`Shift.last_seen_at` fresh (the event stream refreshes it every HEARTBEAT_EVERY); a person whose
dashboard has been away for PRESENCE_TIMEOUT_SECONDS no longer counts for waits or alerts.

One place for the rule, so waits, alerts, the dashboard and the on-call message cannot disagree."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from bot.rules import QueueName
from bot.storage.models import Shift, User


def present_clause(now: datetime, timeout: timedelta) -> ColumnElement[bool]:
    """SQL condition on Shift: open, and seen by its dashboard within `timeout` (a shift never
    seen yet counts from its start: starting a shift is being there)."""
    return and_(Shift.ended_at.is_(None),
                func.coalesce(Shift.last_seen_at, Shift.started_at) >= now - timeout)


def present_count(session: Session, *, now: datetime, timeout: timedelta,
                  queues: Iterable[QueueName] | None = None) -> int:
    """People present on shift (distinct people, active accounts), for the given queues or all."""
    query = (select(func.count(func.distinct(Shift.user_id))).select_from(Shift)
             .join(User, User.id == Shift.user_id)
             .where(present_clause(now, timeout), User.active.is_(True)))
    if queues is not None:
        query = query.where(Shift.queue.in_(list(queues)))
    return session.scalar(query) or 0


def present_user_ids(session: Session, *, now: datetime, timeout: timedelta,
                     queues: Iterable[QueueName] | None = None) -> set[str]:
    """The ids of the people present on shift, for the given queues or all."""
    query = (select(Shift.user_id).join(User, User.id == Shift.user_id)
             .where(present_clause(now, timeout), User.active.is_(True)))
    if queues is not None:
        query = query.where(Shift.queue.in_(list(queues)))
    return set(session.scalars(query))
