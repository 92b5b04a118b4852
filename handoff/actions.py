"""What a person does in a conversation they have: reply, return it to the queue (place kept),
transfer it to the other queue with a note, close it (outcome, corrected themes), ask the parent's
consent for a referral, and mark an acute alert as seen. Each action writes the audit log and
publishes a live event; texts for the parent go through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from bot.rules import QueueName
from bot.storage import facts
from bot.storage.models import (
    AuditLog,
    Author,
    Conversation,
    ConversationStatus,
    Correction,
    Handoff,
    HandoffStatus,
    Message,
    Role,
    User,
    aware,
)
from bot.triage.types import Risk, Theme
from handoff.claims import Claims
from handoff.context import (
    MAX_NOTE_CHARS,
    MAX_REPLY_CHARS,
    Actor,
    DeskContext,
    Outcome,
    priority_of,
)
from handoff.errors import Conflict, Invalid, NotAllowed, NotFound
from handoff.indexing import IndexKeeper

logger = logging.getLogger(__name__)

#: The themes a person may set when closing (the triage's themes, without "none").
THEMES = frozenset(t.value for t in Theme if t is not Theme.none)


class Actions:
    def __init__(self, ctx: DeskContext, keeper: IndexKeeper, claims: Claims) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.claims = claims

    def reply(self, conversation_id: str, actor: Actor, text: str) -> None:
        text = text.strip()
        if not text:
            raise Invalid("reply_empty")
        if len(text) > MAX_REPLY_CHARS:
            raise Invalid("reply_too_long", limit=MAX_REPLY_CHARS)
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            greeting = self.claims.greeting(session, conversation, actor, self.ctx.clock())  # who, before what
            self.ctx.send(session, conversation, [greeting, text] if greeting else [text], user_id=actor.user_id)
            self.ctx.audit(session, actor, "replied", conversation_id)
        self.ctx.publish("message", conversation, user_id=actor.user_id)
        self.ctx.wake()

    def release(self, conversation_id: str, actor: Actor | None, reason: str = "returned") -> None:
        """Back to the queue, in the place it had."""
        if actor is not None:
            with self.ctx.factory() as session:
                conversation = session.get(Conversation, conversation_id)
                if conversation is None:
                    raise NotFound("conversation_gone")
                if conversation.status is not ConversationStatus.claimed or (
                        conversation.claimed_by != actor.user_id and actor.role is not Role.coordinator):
                    raise Conflict("not_yours_now")
        if not self.return_to_queue(conversation_id, actor.user_id if actor else None, reason, actor=actor):
            raise Conflict("already_returned")

    def return_to_queue(self, conversation_id: str, user_id: str | None, reason: str, *,
                        actor: Actor | None = None) -> bool:
        """A claimed conversation back to its queue, place kept; the parent is told. False when
        it was not claimed (any more). `reason`: "returned", "off_shift", "idle", "no_person"."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None or conversation.status is not ConversationStatus.claimed:
                return False
            holder = session.get(User, conversation.claimed_by) if conversation.claimed_by else None
            conversation.status = ConversationStatus.queued
            conversation.claimed_by = None
            conversation.claimed_at = None
            handoff = self.ctx.open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.returned
                handoff.closed_at = now
            session.add(Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                                priority=priority_of(conversation), reason=f"returned: {reason}", created_at=now))
            session.add(AuditLog(user_id=actor.user_id if actor else None, action="returned",
                                 conversation_id=conversation_id,
                                 detail={"reason": reason, "from": user_id}))
            lang = self.ctx.lang(conversation)
            name = holder.display_name if holder is not None else self.ctx.texts.get("role_coordinator", lang)
            self.ctx.send(session, conversation, [self.ctx.texts.get("returned", lang, name=name)], user_id=None,
                          author=Author.bot)
            entry = self.keeper.entry(session, conversation)
        self.keeper.add(entry)
        self.ctx.publish("released", conversation, user_id=user_id)
        self.ctx.wake()
        return True

    def transfer(self, conversation_id: str, actor: Actor, note: str) -> None:
        """To the other queue, with a note for the next handover card; the place in line is kept."""
        note = note.strip()[:MAX_NOTE_CHARS]
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            target = QueueName.volunteer if conversation.queue is QueueName.professional else QueueName.professional
            if target is QueueName.volunteer and conversation.highest_risk is Risk.acute:
                raise NotAllowed("acute_stays")
            handoff = self.ctx.open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.transferred
                handoff.closed_at = now
            conversation.status = ConversationStatus.queued
            conversation.queue = target
            conversation.claimed_by = None
            conversation.claimed_at = None
            session.add(Handoff(conversation_id=conversation_id, queue=target, priority=priority_of(conversation),
                                reason=f"transferred by {actor.display_name}", note=note or None,
                                created_at=now))
            facts.on_queued(session, conversation)
            self.ctx.audit(session, actor, "transferred", conversation_id, to=target.value)
            lang = self.ctx.lang(conversation)
            self.ctx.send(session, conversation, [self.ctx.texts.get(f"transferred_{target.value}", lang,
                                                                     name=actor.display_name)],
                          user_id=actor.user_id)
            entry = self.keeper.entry(session, conversation)
        self.keeper.add(entry, "the transfer is in SQL")
        self.ctx.publish("transferred", conversation, user_id=actor.user_id, queue=target)
        self.ctx.wake()

    def close(self, conversation_id: str, actor: Actor, outcome: Outcome, *, referred_to: str | None = None,
              corrected_themes: Sequence[str] = (), closing_note: str = "") -> None:
        outcome = Outcome(outcome)
        corrected = [t for t in dict.fromkeys(corrected_themes) if t]
        unknown = [t for t in corrected if t not in THEMES]
        if unknown:
            raise Invalid("unknown_theme", themes=", ".join(unknown))
        if referred_to and referred_to not in self.ctx.catalogue:
            raise Invalid("unknown_service")
        if outcome is Outcome.referred_service and not referred_to:
            raise Invalid("service_missing")
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            handoff = self.ctx.open_handoff(session, conversation_id)
            if handoff is None:
                handoff = Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                                  priority=priority_of(conversation),
                                  claimed_by=actor.user_id, claimed_at=conversation.claimed_at)
                session.add(handoff)
            handoff.status = HandoffStatus.closed
            handoff.closed_at = now
            handoff.outcome = outcome.value
            handoff.referred_to = referred_to or None
            handoff.closing_note = closing_note.strip()[:MAX_NOTE_CHARS] or None
            predicted = list(conversation.themes or [])
            if corrected and set(corrected) != set(predicted):
                handoff.corrected_themes = corrected
                handoff.corrected_theme = corrected[0]
                texts = session.scalars(select(Message.text_masked).where(
                    Message.conversation_id == conversation_id, Message.author == Author.parent)
                    .order_by(Message.created_at)).all()
                session.add(Correction(conversation_id=conversation_id, user_id=actor.user_id,
                                       predicted=predicted, corrected=corrected,
                                       texts_masked=[t for t in texts if t], created_at=now))
            claimed_at = aware(conversation.claimed_at)
            facts.on_closed(session, conversation,
                            handled_seconds=int((now - claimed_at).total_seconds()) if claimed_at else None,
                            outcome=outcome.value, referred_to=referred_to or None,
                            corrected_themes=handoff.corrected_themes)
            conversation.status = ConversationStatus.closed
            conversation.closed_at = now
            # One short, optional question; a short answer is counted (stats), never linked to them.
            conversation.awaiting = "verdict"
            conversation.pending_referral = None
            self.ctx.audit(session, actor, "closed", conversation_id, outcome=outcome.value,
                           referred_to=referred_to, corrected=bool(handoff.corrected_themes))
            lang = self.ctx.lang(conversation)
            self.ctx.send(session, conversation, [self.ctx.texts.get("closed", lang),
                                                  self.ctx.texts.get("verdict_ask", lang)],
                          user_id=None, author=Author.bot)
        self.keeper.remove(conversation_id)
        self.ctx.publish("closed", conversation, user_id=actor.user_id)
        self.ctx.wake()

    def ask_referral(self, conversation_id: str, actor: Actor, entry_id: str) -> None:
        """Ask the parent's consent for a referral summary; the pipeline reads their answer
        (bot.intents.referral)."""
        if entry_id not in self.ctx.catalogue:
            raise Invalid("unknown_service")
        entry = self.ctx.catalogue.get(entry_id)
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            conversation.pending_referral = entry_id
            self.ctx.send(session, conversation, [self.ctx.texts.get("referral_ask", self.ctx.lang(conversation),
                                                                     service=entry.name)],
                          user_id=actor.user_id)
            self.ctx.audit(session, actor, "referral_consent_asked", conversation_id, service=entry_id)
        self.ctx.publish("message", conversation, user_id=actor.user_id)
        self.ctx.wake()

    def acknowledge_alert(self, conversation_id: str, actor: Actor) -> None:
        with self.ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation_gone")
            if conversation.claimed_by != actor.user_id and actor.role is not Role.coordinator:
                raise NotAllowed("alert_not_yours")
            conversation.acute_alert_at = None
            self.ctx.audit(session, actor, "alert_acknowledged", conversation_id)
