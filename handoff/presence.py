"""Who is really there. A shift counts as present only while its dashboard's live connection keeps
`Shift.last_seen_at` fresh (the event stream refreshes it every HEARTBEAT_EVERY); a person whose
dashboard has been away for PRESENCE_TIMEOUT_SECONDS no longer counts for waits or alerts.

One place for the rule, so waits, alerts, the dashboard and the on-call message cannot disagree.
`Presence` asks it for the desk: who is present, and what that allows (acute conversations, the
coordinator on duty)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from bot.rules import QueueName
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
from handoff.context import Actor, DeskContext, may_take


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


#: The longest between two writes of a shift's last_seen_at by its dashboard's heartbeat; a third
#: of the presence timeout when that is shorter, so a present person never looks away.
HEARTBEAT_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class OnShift:
    """A person with an open shift, and whether their dashboard is there."""

    user_id: str
    name: str
    role: Role
    queue: QueueName
    started_at: datetime
    last_seen_at: datetime | None
    present: bool


class Presence:
    """The desk's questions about who is there, and what that allows (the rule: may_take)."""

    def __init__(self, ctx: DeskContext) -> None:
        self.ctx = ctx

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.ctx.settings.presence_timeout_seconds)

    @property
    def heartbeat_every(self) -> timedelta:
        """How often a dashboard's heartbeat writes last_seen_at: well below the timeout."""
        return min(HEARTBEAT_EVERY, self.timeout / 3)

    def professional_present(self, session: Session, now: datetime) -> bool:
        return present_count(session, now=now, timeout=self.timeout, queues=[QueueName.professional]) > 0

    def present(self, session: Session, user_id: str, now: datetime) -> bool:
        return session.scalar(select(Shift.id).where(Shift.user_id == user_id, present_clause(now, self.timeout))
                              .limit(1)) is not None

    @staticmethod
    def on_shift(session: Session, user_id: str) -> bool:
        return session.scalar(select(Shift.id).where(Shift.user_id == user_id, Shift.ended_at.is_(None))
                              .limit(1)) is not None

    def may_claim(self, session: Session, actor: Actor, conversation: Conversation, now: datetime) -> bool:
        """The rule (may_take) for this conversation now: presence decides only for an acute
        conversation this person's role does not take anyway."""
        acute = conversation.highest_risk is Risk.acute
        present = True
        if acute and not may_take(actor, conversation.queue):
            present = self.professional_present(session, now)
        return may_take(actor, conversation.queue, acute=acute, professional_present=present)

    def coordinator_options(self, session: Session, actor: Actor, conversation: Conversation,
                            now: datetime) -> list[tuple[str, str]]:
        """Coordinators present on shift to whom this person may hand an acute conversation that
        waits for a professional while none is present: [(user id, name)]; else none."""
        if (actor.role is Role.coordinator or conversation.status is not ConversationStatus.queued
                or conversation.queue is not QueueName.professional
                or conversation.highest_risk is not Risk.acute
                or self.professional_present(session, now)):
            return []
        ids = present_user_ids(session, now=now, timeout=self.timeout)
        if not ids:
            return []
        query = select(User.id, User.display_name).where(
            User.id.in_(ids), User.role == Role.coordinator, User.active.is_(True))
        if conversation.channel is Channel.phone:
            query = query.where(User.phone_encrypted.is_not(None))  # a call is put through to them
        return [(uid, name) for uid, name in session.execute(query.order_by(User.display_name))]

    def professional_names(self, session: Session, now: datetime) -> list[str]:
        """Names of the people present on the professional queue's shift (who takes care)."""
        ids = present_user_ids(session, now=now, timeout=self.timeout, queues=[QueueName.professional])
        if not ids:
            return []
        return sorted(session.scalars(select(User.display_name).where(User.id.in_(ids))))

    def people(self, session: Session, now: datetime) -> list[OnShift]:
        """Everyone with an open shift (active accounts), present first, then by name."""
        present = present_user_ids(session, now=now, timeout=self.timeout)
        rows = session.execute(
            select(Shift, User.display_name, User.role).join(User, User.id == Shift.user_id)
            .where(Shift.ended_at.is_(None), User.active.is_(True))
        ).all()
        people = [OnShift(user_id=shift.user_id, name=name, role=role, queue=shift.queue,
                          started_at=aware(shift.started_at) or now, last_seen_at=aware(shift.last_seen_at),
                          present=shift.user_id in present)
                  for shift, name, role in rows]
        return sorted(people, key=lambda p: (not p.present, p.name.lower()))
