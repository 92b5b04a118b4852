"""Claiming: one person gets a waiting conversation, and the parent hears who it is.

A claim takes the Redis marker first (one winner among many clickers, without touching the
database) and is then confirmed by a conditional UPDATE in SQL (`... WHERE status = 'queued'`), so
even an index that drifted from SQL can never hand one conversation to two people. The warm
handover goes to the parent when the person opens the conversation (`greet`), once per claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from bot.rules import QueueName
from bot.storage import facts
from bot.storage.models import (
    AuditLog,
    Channel,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    User,
    aware,
)
from bot.triage.types import Risk
from handoff.availability import Presence
from handoff.context import Actor, DeskContext, may_take, priority_of, queues_of
from handoff.errors import Conflict, NotAllowed, NotFound
from handoff.indexing import IndexKeeper

logger = logging.getLogger(__name__)

#: Phone: after a person claims a call or a callback request, connect them (conversation id,
#: user id); the voice channel's CallConnector, set when Twilio is on.
PhoneConnector = Callable[[str, str], None]


class Claims:
    def __init__(self, ctx: DeskContext, presence: Presence, keeper: IndexKeeper) -> None:
        self.ctx = ctx
        self.presence = presence
        self.keeper = keeper
        self.on_claim_phone: PhoneConnector | None = None

    # claiming -----------------------------------------------------------------------------------

    def claim(self, conversation_id: str, actor: Actor) -> None:
        self.keeper.ensure()
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation_gone")
            if conversation.status is ConversationStatus.claimed and conversation.claimed_by == actor.user_id:
                return
            if conversation.status is ConversationStatus.claimed:
                raise Conflict("claimed_by_other")
            if conversation.status is not ConversationStatus.queued:
                raise Conflict("not_waiting")
            if not self.presence.may_claim(session, actor, conversation, self.ctx.clock()):
                raise NotAllowed("for_professional")
            if conversation.channel is Channel.phone:
                self.check_phone(session, actor)
        if not self.keeper.claim(conversation_id, actor.user_id):
            raise Conflict("just_claimed")
        if not self.confirm(conversation_id, actor):
            self.keeper.unclaim(conversation_id)
            raise Conflict("just_claimed")

    @staticmethod
    def check_phone(session: Session, actor: Actor) -> None:
        """A call is put through to the person: they need a phone number in their profile."""
        user = session.get(User, actor.user_id)
        if user is None or user.phone_encrypted is None:
            raise NotAllowed("no_phone")

    def claim_next(self, actor: Actor) -> str | None:
        """Claim the most urgent conversation this person may take; its id, or None. A call or a
        callback request is skipped for someone without a phone number for calls."""
        self.keeper.ensure()
        queues = queues_of(actor)
        languages = tuple(dict.fromkeys(("nl", *actor.languages)))
        acute_from = self.acute_queues(actor, queues)
        skipped: list[str] = []  # held in the index while we look further, given back below
        try:
            for attempt in range(20):
                try:
                    conversation_id = self.ctx.index.claim_next(actor.user_id, queues, languages, self.ctx.clock(),
                                                                acute_from=acute_from)
                except redis.RedisError as error:
                    logger.warning("queue index unavailable for claim-next (%s); SQL picks",
                                   type(error).__name__)
                    conversation_id = self.sql_next(queues, exclude=skipped, acute_from=acute_from)
                if conversation_id is None:
                    if attempt == 0 and self.sql_waiting(queues, acute_from):
                        self.keeper.rebuild()  # the index missed some: catch up once and look again
                        continue
                    return None
                if not self.may_answer(conversation_id, actor):
                    skipped.append(conversation_id)
                    continue
                if self.confirm(conversation_id, actor):
                    return conversation_id
                self.keeper.unclaim(conversation_id)  # a stale entry: dropped or re-added as SQL says
            return None
        finally:
            for conversation_id in skipped:
                self.keeper.unclaim(conversation_id)

    def acute_queues(self, actor: Actor, queues: Sequence[QueueName]) -> tuple[QueueName, ...]:
        """The other queues whose acute conversations this person may take now (the rule: an
        acute professional-queue conversation while no professional is present)."""
        others = [q for q in QueueName if q not in queues]
        if not others or not any(may_take(actor, q, acute=True, professional_present=False) for q in others):
            return ()
        with self.ctx.factory() as session:
            present = self.presence.professional_present(session, self.ctx.clock())
        return tuple(q for q in others if may_take(actor, q, acute=True, professional_present=present))

    def may_answer(self, conversation_id: str, actor: Actor) -> bool:
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return True  # confirm finds out
            if not self.presence.may_claim(session, actor, conversation, self.ctx.clock()):
                return False  # e.g. a professional came online since the index was asked
            if conversation.channel is not Channel.phone:
                return True
            try:
                self.check_phone(session, actor)
            except NotAllowed:
                return False
            return True

    @staticmethod
    def _claimable(queues: Sequence[QueueName], acute_from: Sequence[QueueName]) -> Any:
        where: ColumnElement[bool] = Conversation.queue.in_(list(queues))
        if acute_from:
            where = where | (Conversation.queue.in_(list(acute_from)) & (Conversation.highest_risk == Risk.acute))
        return where

    def sql_waiting(self, queues: Sequence[QueueName], acute_from: Sequence[QueueName] = ()) -> bool:
        with self.ctx.factory() as session:
            return (session.scalar(select(func.count()).select_from(Conversation).where(
                Conversation.status == ConversationStatus.queued, self._claimable(queues, acute_from))) or 0) > 0

    def sql_next(self, queues: Sequence[QueueName], exclude: Sequence[str] = (),
                 acute_from: Sequence[QueueName] = ()) -> str | None:
        """What claim-next takes when Redis is away: the most urgent, longest waiting, in SQL."""
        with self.ctx.factory() as session:
            return session.scalar(
                select(Conversation.id)
                .where(Conversation.status == ConversationStatus.queued, self._claimable(queues, acute_from),
                       Conversation.id.not_in(list(exclude)))
                .order_by(Conversation.priority, Conversation.queued_at)
                .limit(1))

    def confirm(self, conversation_id: str, actor: Actor) -> bool:
        """The durable claim: a conditional UPDATE, so only a conversation that still waits is taken.
        The warm handover goes to the parent when the person opens the conversation (`greet`),
        not now: it says they are reading, and they are not yet. A call is the exception: its
        handover is said on the line, kept in the transcript as before."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.take(session, conversation_id, actor.user_id, now,
                                     (ConversationStatus.queued,), handoff_reason=None)
            if conversation is None:
                return False
            waited = int((now - (aware(conversation.queued_at) or now)).total_seconds())
            facts.on_claimed(session, conversation, waited)
            self.ctx.audit(session, actor, "claimed", conversation_id,
                           queue=(conversation.queue or QueueName.volunteer).value, waited_seconds=waited)
            if conversation.channel is Channel.phone:
                self._greet(session, conversation, actor, now, call=True)
        self.ctx.publish("claimed", conversation, user_id=actor.user_id)
        self.ctx.wake()
        if conversation.channel is Channel.phone:
            self._connect(conversation_id, actor.user_id, "a claimed call")
        return True

    def _connect(self, conversation_id: str, user_id: str, what: str) -> None:
        if self.on_claim_phone is None:
            return
        try:
            self.on_claim_phone(conversation_id, user_id)
        # The claim stands; the person sees it and can call back.
        except Exception as error:  # noqa: BLE001 - a failed connect never undoes the claim
            logger.error("connecting %s failed (%s)", what, type(error).__name__)

    def take_call(self, conversation_id: str, user_id: str) -> bool:
        """A person accepted a call in its whisper: the conversation is theirs on the dashboard
        too (from the bot or the queue), without a handover text (they are talking already)."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.take(session, conversation_id, user_id, now,
                                     (ConversationStatus.bot, ConversationStatus.queued),
                                     handoff_reason="phone: put through directly")
            if conversation is None:
                return False
            queued_at = aware(conversation.queued_at)
            facts.on_queued(session, conversation)
            facts.on_claimed(session, conversation, int((now - queued_at).total_seconds()) if queued_at else 0)
            session.add(AuditLog(user_id=user_id, action="claimed", conversation_id=conversation_id,
                                 detail={"via": "phone"}))
        self.keeper.remove(conversation_id)
        self.ctx.publish("claimed", conversation, user_id=user_id)
        return True

    def take(self, session: Session, conversation_id: str, user_id: str, now: datetime,
             statuses: tuple[ConversationStatus, ...], *,
             handoff_reason: str | None) -> Conversation | None:
        """The durable claim: a conditional UPDATE (only a conversation still in `statuses` is
        taken, so two people can never both get it), and its handoff row marked claimed."""
        result = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.status.in_(statuses))
            .values(status=ConversationStatus.claimed, claimed_by=user_id, claimed_at=now,
                    acute_alert_at=None, awaiting=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        session.refresh(conversation)
        handoff = self.ctx.open_handoff(session, conversation_id)
        if handoff is None:
            handoff = Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                              priority=priority_of(conversation),
                              reason=handoff_reason or conversation.queue_reason or "")
            session.add(handoff)
        handoff.status = HandoffStatus.claimed
        handoff.claimed_by = user_id
        handoff.claimed_at = now
        return conversation

    @staticmethod
    def held(session: Session, conversation_id: str, actor: Actor) -> Conversation:
        """The conversation, locked, if this person has it; else NotFound or Conflict."""
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None:
            raise NotFound("conversation_gone")
        if conversation.status is not ConversationStatus.claimed or conversation.claimed_by != actor.user_id:
            raise Conflict("not_yours")
        return conversation

    def hand_to_coordinator(self, conversation_id: str, actor: Actor, coordinator_id: str) -> None:
        """An acute conversation that waits for a professional while none is present, handed to
        a coordinator present on shift: it is theirs (claimed for them) and they are alerted.
        The parent hears who it is when the coordinator opens it."""
        now = self.ctx.clock()
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation_gone")
            if conversation.status is not ConversationStatus.queued:
                raise Conflict("not_waiting")
            if coordinator_id not in dict(self.presence.coordinator_options(session, actor, conversation, now)):
                raise NotAllowed("not_for_coordinator")
        self.keeper.ensure()
        if not self.keeper.claim(conversation_id, coordinator_id):
            raise Conflict("just_claimed")
        with self.ctx.factory() as session, session.begin():
            taken = self.take(session, conversation_id, coordinator_id, now,
                              (ConversationStatus.queued,), handoff_reason=None)
            if taken is not None:
                taken.acute_alert_at = now  # the coordinator's alert, until they mark it seen
                waited = int((now - (aware(taken.queued_at) or now)).total_seconds())
                facts.on_claimed(session, taken, waited)
                self.ctx.audit(session, actor, "handed_to_coordinator", conversation_id, to=coordinator_id,
                               waited_seconds=waited)
        if taken is None:
            self.keeper.unclaim(conversation_id)
            raise Conflict("just_claimed")
        self.ctx.publish("claimed", taken, user_id=coordinator_id)
        self.ctx.publish("acute", taken, user_id=coordinator_id)
        if taken.channel is Channel.phone:
            self._connect(conversation_id, coordinator_id, "a handed-on call")

    # the warm handover --------------------------------------------------------------------------

    def greeting(self, session: Session, conversation: Conversation, actor: Actor, now: datetime,
                 *, call: bool = False) -> str | None:
        """The warm handover of this person's claim, if it is still due (the caller sends it):
        claimed once by a conditional UPDATE on the claim's handoff row, so a reload (or two
        tabs at once) never sends it twice. A call gets it only at its claim (`call`): after
        that the person is talking on the line, and no text follows."""
        if (conversation.channel is Channel.phone) is not call:
            return None
        handoff = self.ctx.open_handoff(session, conversation.id)
        if (handoff is None or handoff.status is not HandoffStatus.claimed
                or handoff.claimed_by != actor.user_id or handoff.greeted_at is not None):
            return None
        result = session.execute(
            update(Handoff).where(Handoff.id == handoff.id, Handoff.greeted_at.is_(None))
            .values(greeted_at=now).execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        self.ctx.audit(session, actor, "handover_sent", conversation.id)
        lang = self.ctx.lang(conversation)
        return self.ctx.texts.get("handover", lang, name=actor.display_name, role=self.ctx.role_text(actor, lang))

    def _greet(self, session: Session, conversation: Conversation, actor: Actor, now: datetime,
               *, call: bool = False) -> bool:
        greeting = self.greeting(session, conversation, actor, now, call=call)
        if greeting is None:
            return False
        self.ctx.send(session, conversation, [greeting], user_id=actor.user_id)
        return True

    def greet(self, conversation_id: str, actor: Actor) -> bool:
        """The person opened their claimed conversation: the parent hears who is there now (the
        first opening of this claim only). True when the handover went out."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if (conversation is None or conversation.status is not ConversationStatus.claimed
                    or conversation.claimed_by != actor.user_id):
                return False
            sent = self._greet(session, conversation, actor, now)
        if sent:
            self.ctx.publish("message", conversation, user_id=actor.user_id)
            self.ctx.wake()
        return sent
