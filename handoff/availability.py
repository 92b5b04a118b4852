"""Who is there, and what that allows, for the desk: whether a professional is present (an
acute conversation is anyone's while none is), the coordinators an acute conversation can be
handed to, the names on the professional shift, and everyone with an open shift. The rule of
presence itself is handoff.presence (one place, so waits, alerts and the dashboard agree)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.rules import QueueName
from bot.storage.models import Channel, Conversation, ConversationStatus, Role, Shift, User, aware
from bot.triage.types import Risk
from handoff.context import Actor, DeskContext, may_take
from handoff.presence import present_clause, present_count, present_user_ids

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
