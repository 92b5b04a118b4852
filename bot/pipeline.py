"""The one pipeline every inbound message goes through, on every channel.

The hot path (`process`, what a webhook calls), each step safe to repeat:
1. triage first (risk first; it works when Rasa is down): pure CPU, before any transaction, so
   no lock is held while it runs.
2. ONE transaction: deduplicate on the provider's message id, lock the sender's conversation,
   store the message, decide the reply (bot.intents.dialogue), apply the decision and write the
   reply texts to the outbox (bot.storage.outbox), marking the message handled. After this
   commit nothing the parent sent is lost, and the reply is on its way. A connection found dead
   is given one more try on a fresh one.
3. the replies go out: right after the commit by the process that stored them (bot.delivery,
   when the caller asks for it), else, and for every retry, by the worker (bot.worker).
Unexpected errors are caught here: the message is stored on its own, the parent gets a safe
fallback text and the conversation goes to a person, so a parent never meets silence.
`receive` + `handle` (store, then decide in a second transaction) stay for the voice adapter,
for `recover` (the worker handles what a crash left unhandled) and for the fallback; the
outbox's unique (reply_to, seq) makes sure a reply is never written twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import MAX_STORED_CHARS, InboundMessage
from bot.config import Settings
from bot.errors import OudertelefoonError
from bot.hours import Schedule, parse_hours
from bot.intents.call import (
    CallContext,
    CallOutcome,
    CallStep,
    CallTurn,
    CallView,
    decide_call,
    heard,
    load_voice_texts,
)
from bot.intents.catalogue import Catalogue
from bot.intents.dialogue import ConversationView, Decision, DialogueContext, Incoming, decide
from bot.intents.messages import Texts
from bot.intents.referral import consent_answer, summary_texts
from bot.privacy import mask
from bot.rules import PRIORITY, QueueName, WaitEstimate, WaitEstimator, queue_for_risk
from bot.storage import facts
from bot.storage.blocks import active_block, active_block_id
from bot.storage.db import lost_connection
from bot.storage.models import (
    AuditLog,
    Author,
    Block,
    Channel,
    Conversation,
    ConversationStatus,
    Direction,
    Handoff,
    Message,
    Outbox,
    Verdict,
    aware,
    new_id,
    utcnow,
)
from bot.storage.outbox import Written, add_reply, next_slot, wake, written
from bot.storage.redis import key as redis_key
from bot.triage.engine import Triage, TriageResult
from bot.triage.types import Language, Risk, Route, Theme

logger = logging.getLogger(__name__)

VERDICT_WINDOW = timedelta(hours=24)
_VERDICTS = (
    (re.compile(r"^\s*(een\s+)?beetje\b|^\s*(a\s+)?(bit|little)\b|^\s*soort\s+van\b|^\s*2\s*$", re.IGNORECASE),
     Verdict.somewhat),
    (re.compile(r"^\s*(ja+|jawel|zeker|yes|yep|1)\b", re.IGNORECASE), Verdict.yes),
    (re.compile(r"^\s*(nee+|niet\s+echt|no+|not\s+really|3)\b", re.IGNORECASE), Verdict.no),
)


def verdict_of(text: str) -> Verdict | None:
    """A short answer to "ja / een beetje / nee"; None for anything longer or else."""
    if len(text.split()) > 5:
        return None
    for pattern, verdict in _VERDICTS:
        if pattern.search(text):
            return verdict
    return None
SEEN_TTL_SECONDS = 3 * 24 * 3600
# session.info key: the id of the conversation opened (not yet written) in this transaction.
_NEW_CONVERSATION = "pipeline.new_conversation"


# How often `receive` looks again after a unique index refused its insert (a concurrent request
# stored the same delivery, or opened the sender's conversation): once is enough in practice.
RECEIVE_ATTEMPTS = 4


class InjectedFault(OudertelefoonError):
    """Raised on purpose by OUDERTELEFOON_FAULT in tests, to prove that a crash loses nothing."""


class ReceiveConflict(OudertelefoonError):
    """Storing a message kept meeting a concurrent insert; the provider delivers it again."""

    def __init__(self) -> None:
        super().__init__("storing the message kept conflicting with a concurrent request")


# How long a reply written for its own process to post right after the commit stays leased to
# that process: longer than a send may take (the senders' timeout is 10 s). When that process
# dies first, the worker sends the reply once the lease has run out.
SEND_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class Received:
    message_id: str | None
    conversation_id: str | None
    duplicate: bool
    handled: bool
    # The outbox rows the caller asked to post itself (`process(..., send_now=True)`), in order.
    outbox_ids: tuple[str, ...] = field(default=())
    # The same rows as written (bot.storage.outbox.Written), so the caller posts them without
    # reading them back.
    outbox_rows: tuple[Written, ...] = field(default=(), repr=False)


class Pipeline:
    """Receives, triages, decides and queues replies. Synchronous; web handlers call it in a
    thread so the event loop never blocks."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        triage: Triage,
        catalogue: Catalogue,
        texts: Texts,
        redis_client: redis.Redis | None = None,
        clock: Callable[[], datetime] = utcnow,
        fault: str | None = None,
        on_change: Callable[[str, str], None] | None = None,
        on_call: Callable[[str, str], None] | None = None,
        *,
        estimator: WaitEstimator,
        schedules: Mapping[QueueName, Schedule] | None = None,
    ) -> None:
        self.settings = settings
        # Called before every turn: brings `catalogue` up to the coordinators' latest version
        # (bot.catalogue_service, set by the composition root); it never raises.
        self.catalogue_fresh: Callable[[], object] | None = None
        # The wait told to a parent (handoff.estimate.estimator_for, from the composition root).
        self.estimator = estimator
        self.factory = factory
        self.triage = triage
        self.catalogue = catalogue
        self.texts = texts
        self.redis = redis_client
        self.clock = clock
        self.fault = fault
        # Told after each commit what changed for people ("queued", "message", "acute", "closed",
        # "deleted"): the desk indexes the queue and pushes the live update (handoff.desk).
        self.on_change = on_change
        # Told the same, after the desk: the on-call SMS when an acute conversation waits and
        # nobody is present (handoff.oncall).
        self.on_call = on_call
        self.zone = ZoneInfo(settings.timezone)
        self._sqlite = factory.kw["bind"].dialect.name == "sqlite"
        # When someone is expected per queue (after hours, the wait, "wanneer is er iemand?"):
        # the roster (handoff.roster, from the composition root), or the opening hours.
        self.hours: dict[QueueName, Schedule] = dict(schedules) if schedules is not None else {
            QueueName.volunteer: parse_hours(settings.volunteer_hours),
            QueueName.professional: parse_hours(settings.professional_hours),
        }

    # 1. receive --------------------------------------------------------------------------

    def receive(self, inbound: InboundMessage, *, _attempt: int = 0) -> Received:
        """Store the message (once). Returns what was stored and whether it is already handled."""
        if not inbound.provider_message_id:
            raise ValueError("provider_message_id is required")
        if not inbound.text.strip() and inbound.media_kind is None:
            return Received(None, None, False, True)  # an empty message is ignored, not stored
        now = self.clock()
        with self.factory() as session, session.begin():
            existing = session.scalar(
                select(Message).where(
                    Message.channel == inbound.channel,
                    Message.provider_message_id == inbound.provider_message_id,
                )
            )
            if existing is not None:
                return Received(existing.id, existing.conversation_id, True, existing.handled_at is not None)
            if self._seen_before(inbound):
                # Stored once and deleted since ("verwijder mijn gegevens"): a replay is ignored.
                return Received(None, None, True, True)
            block = active_block(session, inbound.channel, inbound.pseudonym, now)
            if block is not None:
                # A blocked sender: nothing is stored and nothing reaches the queue; one neutral
                # message, once per block (the outbox's unique reply_to makes it once).
                notify = block.notified_at is None
                if notify:
                    block.notified_at = now
                    session.add(Outbox(conversation_id=None, reply_to=block.id, seq=0,
                                       channel=inbound.channel, address_encrypted=inbound.address_encrypted,
                                       text=self.texts.get("blocked", "nl"), scheduled_at=now,
                                       next_attempt_at=now))
                blocked = True
            else:
                blocked = False
                notify = False
        if blocked:
            self._mark_seen(inbound)
            if notify:
                self._wake()
            return Received(None, None, False, True)
        try:
            with self.factory() as session, session.begin():
                conversation = self._active_conversation(session, inbound)
                conversation.address_encrypted = inbound.address_encrypted
                conversation.last_message_at = now
                conversation.last_inbound_at = now
                text = inbound.text[:MAX_STORED_CHARS]
                message = Message(
                    channel=inbound.channel,
                    direction=Direction.inbound,
                    author=Author.parent,
                    provider_message_id=inbound.provider_message_id,
                    text=text,
                    text_masked=mask(text),
                    media_kind=inbound.media_kind.value if inbound.media_kind else None,
                    created_at=now,
                )
                conversation.messages.append(message)
                session.flush()
                message_id, conversation_id = message.id, conversation.id
        except IntegrityError:
            # Refused by a unique index, and rolled back whole: either the same delivery was
            # stored a moment ago by a concurrent request (the message's provider id), or this
            # sender's other message opened their conversation a moment ago (one open
            # conversation per sender). Looking again finds the duplicate or joins that
            # conversation. The error itself is not logged or passed on: it holds the text.
            if _attempt + 1 >= RECEIVE_ATTEMPTS:
                raise ReceiveConflict() from None
            return self.receive(inbound, _attempt=_attempt + 1)
        self._mark_seen(inbound)
        return Received(message_id, conversation_id, False, False)

    def _seen_before(self, inbound: InboundMessage) -> bool:
        if self.redis is None:
            return False
        try:
            return bool(self.redis.exists(self._seen_key(inbound)))
        except redis.RedisError:
            return False  # SQL stays the truth; Redis only remembers deleted ones

    def _mark_seen(self, inbound: InboundMessage) -> None:
        if self.redis is None:
            return
        try:
            self.redis.set(self._seen_key(inbound), 1, ex=SEEN_TTL_SECONDS)
        except redis.RedisError:
            logger.warning("redis unavailable: replay memory for deleted conversations skipped")

    def _seen_key(self, inbound: InboundMessage) -> str:
        return redis_key(self.settings.redis_prefix, "seen", inbound.channel.value,
                         inbound.provider_message_id)

    def _active_conversation(self, session: Session, inbound: InboundMessage, *,
                             flush: bool = True) -> Conversation:
        """The sender's open conversation, locked (or their last one, for a verdict answer), or
        a new one. `flush=False`: a new one is not written yet (its id and the values the
        decision reads are set here), so it is inserted once, whole, at the commit, and its
        unique index refuses it there; `_apply` knows it has no earlier replies."""
        conversation = session.scalar(
            select(Conversation)
            .where(
                Conversation.channel == inbound.channel,
                Conversation.pseudonym == inbound.pseudonym,
                Conversation.status != ConversationStatus.closed,
            )
            .order_by(Conversation.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if conversation is None and verdict_of(inbound.text) is not None:
            # "Heb je hier iets aan gehad?" was asked when a person closed the last conversation:
            # a short answer belongs to that one, not to a new conversation.
            last = session.scalar(
                select(Conversation)
                .where(Conversation.channel == inbound.channel,
                       Conversation.pseudonym == inbound.pseudonym)
                .order_by(Conversation.created_at.desc())
                .limit(1)
                .with_for_update()
            )
            if last is not None and last.awaiting == "verdict" and last.closed_at is not None \
                    and self.clock() - (aware(last.closed_at) or self.clock()) <= VERDICT_WINDOW:
                conversation = last
        if conversation is None:
            # Insert, or (when the sender's other message opened one a moment ago) be refused by
            # the unique index on open conversations; `receive` then looks again and joins it.
            # FOR UPDATE above cannot lock a row that does not exist yet; the index can refuse it.
            conversation = Conversation(
                id=new_id(), channel=inbound.channel, pseudonym=inbound.pseudonym, themes=[],
                created_at=self.clock(), language="nl", status=ConversationStatus.bot,
                highest_risk=Risk.none, route=Route.bot, welcomed=False)
            session.add(conversation)
            if flush:
                session.flush()
            else:
                session.info[_NEW_CONVERSATION] = conversation.id
        return conversation

    # 2. handle ---------------------------------------------------------------------------

    def process(self, inbound: InboundMessage, *, send_now: bool = False) -> Received:
        """What a webhook calls: triage, then store and answer in one transaction (the module's
        text). Safe to call again with the same message. `send_now`: the caller posts the replies
        itself right after this returns (bot.delivery); the replies that may go at once are
        written leased to it, and their ids come back in `Received.outbox_ids`."""
        if not inbound.provider_message_id:
            raise ValueError("provider_message_id is required")
        if not inbound.text.strip() and inbound.media_kind is None:
            return Received(None, None, False, True)  # an empty message is ignored, not stored
        if self.catalogue_fresh is not None:
            self.catalogue_fresh()
        if self.fault == "after_store":
            received = self.receive(inbound)
            if received.message_id is None or received.handled:
                return received
            raise InjectedFault("injected crash between storing and replying")
        text = inbound.text[:MAX_STORED_CHARS]
        command = _command(text)
        try:
            result = self.triage.run(text) if text.strip() and not command else None
        except Exception as error:  # noqa: BLE001 - the boundary: stored, answered with the fallback
            logger.error("handling message failed (%s); sending the fallback", type(error).__name__)
            return self._store_then_fallback(inbound)
        retried = False
        attempt = 0
        while True:
            try:
                with self.factory() as session, session.begin():
                    turn = self._turn(session, inbound, text, command, result, send_now)
                break
            except IntegrityError:
                # Refused by a unique index, and rolled back whole: the same delivery stored a
                # moment ago by a concurrent request, or this sender's other message opened their
                # conversation a moment ago. Looking again finds the duplicate or joins it. The
                # error itself is not logged or passed on: it holds the text.
                attempt += 1
                if attempt >= RECEIVE_ATTEMPTS:
                    raise ReceiveConflict() from None
            except DBAPIError as error:
                if lost_connection(error) and not retried:
                    # No pre-ping per checkout: a connection that died in the pool (a database
                    # restart) shows here, once; the transaction runs again on a fresh one.
                    logger.warning("handling message failed (%s): the database connection was "
                                   "lost; trying once more", type(error).__name__)
                    retried = True
                    continue
                logger.error("handling message failed (%s); sending the fallback", type(error).__name__)
                return self._store_then_fallback(inbound)
            except Exception as error:  # noqa: BLE001 - the boundary: never leave a parent in silence
                logger.error("handling message failed (%s); sending the fallback", type(error).__name__)
                return self._store_then_fallback(inbound)
        received, count, changed = turn
        if received.duplicate:
            if received.message_id is not None and not received.handled:
                self.handle(received.message_id)  # stored before, never answered (a crash)
                return Received(received.message_id, received.conversation_id, True, True)
            return received
        self._mark_seen(inbound)
        if changed is not None:
            self._after(changed, wake=count > len(received.outbox_ids))
        elif count > len(received.outbox_ids):
            self._wake()
        return received

    def _turn(self, session: Session, inbound: InboundMessage, text: str, command: str | None,
              result: TriageResult | None, send_now: bool
              ) -> tuple[Received, int, tuple[str, str | None] | None]:
        """The one transaction of `process`: dedupe, lock, store, decide, apply. Returns what was
        received, the number of replies written and what changed for people (None: nothing)."""
        now = self.clock()
        # Two questions in one round trip: is this delivery stored already, is the sender blocked?
        stored_id, block_id = session.execute(select(
            select(Message.id).where(
                Message.channel == inbound.channel,
                Message.provider_message_id == inbound.provider_message_id,
            ).scalar_subquery(),
            active_block_id(inbound.channel, inbound.pseudonym, now).scalar_subquery(),
        )).one()
        if stored_id is not None:
            existing = session.execute(select(Message.conversation_id, Message.handled_at)
                                       .where(Message.id == stored_id)).one()
            return (Received(stored_id, existing[0], True, existing[1] is not None), 0, None)
        if self._seen_before(inbound):
            # Stored once and deleted since ("verwijder mijn gegevens"): a replay is ignored.
            return Received(None, None, True, True), 0, None
        if self._sqlite:
            # SQLite has no row locks: the sender's messages are decided one after the other by
            # taking the database's write lock first (a write of nothing); rows read after it
            # are fresh.
            session.execute(sql_text("UPDATE conversations SET welcomed = welcomed "
                                     "WHERE channel = :channel AND pseudonym = :pseudonym"),
                            {"channel": inbound.channel.name, "pseudonym": inbound.pseudonym})
        block = session.get(Block, block_id) if block_id is not None else None
        if block is not None:
            # A blocked sender: nothing is stored and nothing reaches the queue; one neutral
            # message, once per block (the outbox's unique reply_to makes it once).
            if block.notified_at is not None:
                return Received(None, None, False, True), 0, None
            block.notified_at = now
            row = add_reply(session, channel=inbound.channel, address_encrypted=inbound.address_encrypted,
                            text=self.texts.get("blocked", "nl"), reply_to=block.id, seq=0, at=now,
                            lease=SEND_LEASE if send_now else None)
            return Received(None, None, False, True, (row.id,) if send_now else (),
                            (written(row),) if send_now else ()), 1, None
        conversation = self._active_conversation(session, inbound, flush=False)
        conversation.address_encrypted = inbound.address_encrypted
        conversation.last_message_at = now
        conversation.last_inbound_at = now
        message = Message(
            id=new_id(),
            conversation_id=conversation.id,
            channel=inbound.channel,
            direction=Direction.inbound,
            author=Author.parent,
            provider_message_id=inbound.provider_message_id,
            text=text,
            text_masked=mask(text),
            media_kind=inbound.media_kind.value if inbound.media_kind else None,
            created_at=now,
            handled_at=now,  # stored and answered in this one transaction, or neither
        )
        session.add(message)  # not through conversation.messages: that would load them all
        sent_now: list[Outbox] | None = [] if send_now else None
        conversation_id = conversation.id
        # The rows written here are written once, at the commit (or where a step flushes on
        # purpose), not before every query the decision makes.
        with session.no_autoflush:
            if conversation.status is ConversationStatus.closed and conversation.awaiting == "verdict":
                count = self._verdict(session, conversation, message, now, sent_now)
                changed: tuple[str, str | None] | None = (conversation_id, None)
            else:
                decided = self._decide(session, conversation, message, command, result, now, sent_now)
                count, changed = decided if decided is not None else (0, None)
        rows = sent_now or []
        return (Received(message.id, conversation_id, False, True, tuple(row.id for row in rows),
                         tuple(written(row) for row in rows)), count, changed)

    def _store_then_fallback(self, inbound: InboundMessage) -> Received:
        """Deciding failed: store the message on its own (an error here goes to the provider, who
        delivers it again), then answer it with the fallback."""
        received = self.receive(inbound)
        if received.message_id is None or received.handled:
            return received
        self._fallback(received.message_id)
        return Received(received.message_id, received.conversation_id, received.duplicate, True)

    def handle(self, message_id: str) -> int:
        """Triage and answer one stored message; returns the number of replies queued."""
        try:
            return self._handle(message_id)
        except Exception as error:  # noqa: BLE001 - the boundary: never leave a parent in silence
            logger.error("handling message failed (%s); sending the fallback", type(error).__name__)
            return self._fallback(message_id)

    def _handle(self, message_id: str) -> int:
        if self.catalogue_fresh is not None:
            self.catalogue_fresh()
        now = self.clock()
        with self.factory() as session, session.begin():
            message = session.get(Message, message_id)
            if message is None or message.handled_at is not None:
                return 0
            conversation = lock_conversation(session, message.conversation_id)
            assert conversation is not None
            # Another handler (a redelivered webhook, the worker's recovery) may have answered it
            # while this one waited for the lock.
            session.refresh(message)
            if message.handled_at is not None:
                return 0
            if conversation.status is ConversationStatus.closed and conversation.awaiting == "verdict":
                count = self._verdict(session, conversation, message, now)
                message.handled_at = now
                changed: tuple[str, str | None] = (conversation.id, None)
            else:
                command = _command(message.text)
                result = self.triage.run(message.text) if message.text.strip() and not command else None
                handled = self._decide(session, conversation, message, command, result, now)
                if handled is None:
                    return 0
                count, changed = handled
        self._after(changed, wake=count > 0)
        return count

    def _decide(self, session: Session, conversation: Conversation, message: Message,
                command: str | None, result: TriageResult | None, now: datetime,
                sent_now: list[Outbox] | None = None) -> tuple[int, tuple[str, str | None]] | None:
        """Decide and apply a triaged message, in the caller's transaction. None: nothing to
        answer. `sent_now`: see `_apply`."""
        if result is None and message.media_kind is None and command is None:
            message.handled_at = now  # an empty message: stored, not answered
            return None
        if result is not None:
            message.triage = result.stored()
            self.update_conversation(conversation, result)
            facts.on_message(session, conversation,
                             after_hours=not self.hours[QueueName.volunteer].is_open(now, self.zone))
        status_before = conversation.status
        change = "message" if status_before in (ConversationStatus.queued,
                                                ConversationStatus.claimed) else None
        count = 0
        answered = False
        if status_before is ConversationStatus.claimed:
            if result is not None and result.risk is Risk.acute:
                conversation.acute_alert_at = now  # the person sees an alert; the bot stays silent
                change = "acute"
            if conversation.pending_referral:
                count = self._referral_answer(session, conversation, message, result, now, sent_now)
                answered = count > 0
        if not answered:
            decision = decide(
                self._view(conversation),
                Incoming(text=message.text, triage=result,
                         media_only=result is None and message.media_kind is not None,
                         command=command),
                self._context(session, now),
            )
            count = self._apply(session, conversation, message, decision, now, sent_now)
            if decision.delete:
                change = "deleted"
            elif conversation.status is ConversationStatus.closed:
                change = "closed" if status_before is not ConversationStatus.bot else None
            elif decision.status is ConversationStatus.queued or (
                    decision.priority is not None and status_before is ConversationStatus.queued):
                change = "queued"
        message.handled_at = now
        return count, (conversation.id, change)

    def _verdict(self, session: Session, conversation: Conversation, message: Message,
                 now: datetime, sent_now: list[Outbox] | None = None) -> int:
        """The parent's answer to "Heb je hier iets aan gehad?": counted, never linked to them."""
        verdict = verdict_of(message.text)
        conversation.awaiting = None
        if verdict is None or conversation.fact_id is None:
            return 0
        facts.on_verdict(session, conversation.fact_id, verdict)
        language = "en" if conversation.language == "en" else "nl"
        decision = Decision(replies=[self.texts.get("verdict_thanks", language)], awaiting=None,
                            welcomed=True)
        return self._apply(session, conversation, message, decision, now, sent_now)

    def _after(self, changed: tuple[str, str | None], *, wake: bool) -> None:
        if wake:
            self._wake()
        conversation_id, change = changed
        if change is not None and self.on_change is not None:
            try:
                self.on_change(conversation_id, change)
            except Exception as error:  # noqa: BLE001 - the index catches up; the parent is answered
                logger.error("handoff update failed (%s)", type(error).__name__)
        if change is not None and self.on_call is not None:
            try:
                self.on_call(conversation_id, change)
            except Exception as error:  # noqa: BLE001 - the worker's round tries again
                logger.error("on-call check failed (%s)", type(error).__name__)

    def _referral_answer(self, session: Session, conversation: Conversation, message: Message,
                         result: TriageResult | None, now: datetime,
                         sent_now: list[Outbox] | None = None) -> int:
        """The parent answers the person's question "may I make a summary for <service>?"."""
        answer = consent_answer(message.text, result)
        if answer is None:
            return 0  # about something else: the person reads it; the question stays open
        entry_id = conversation.pending_referral or ""
        conversation.pending_referral = None
        language = "en" if conversation.language == "en" else "nl"
        if answer and entry_id in self.catalogue:
            words = [m.text for m in conversation.messages
                     if m.author is Author.parent and m.id != message.id and m.text.strip()]
            texts = summary_texts(self.texts, language, self.catalogue.get(entry_id), words)
            action = "referral_consent_given"
        else:
            texts = [self.texts.get("referral_declined", language)]
            action = "referral_consent_refused"
        session.add(AuditLog(action=action, conversation_id=conversation.id,
                             detail={"service": entry_id}))
        decision = Decision(replies=texts, awaiting=conversation.awaiting, welcomed=conversation.welcomed)
        return self._apply(session, conversation, message, decision, now, sent_now)

    def update_conversation(self, conversation: Conversation, result: TriageResult) -> None:
        """A triage result joins the conversation: its themes, highest risk, route, language."""
        if result.theme is not Theme.none and result.theme.value not in (conversation.themes or []):
            conversation.themes = [*(conversation.themes or []), result.theme.value]
        conversation.highest_risk = Risk.highest(conversation.highest_risk, result.risk)
        if _route_rank(result.route) > _route_rank(conversation.route):
            conversation.route = result.route
        if result.language is Language.en:
            conversation.language = "en"
        elif result.language is Language.other:
            conversation.language = result.language_code[:8]  # tr, pl, ar ...: for the handover
        elif len(result.text.split()) >= 4:
            conversation.language = "nl"

    def _view(self, conversation: Conversation) -> ConversationView:
        return ConversationView(
            welcomed=conversation.welcomed,
            status=conversation.status,
            awaiting=conversation.awaiting,
            language=conversation.language,
            queue=conversation.queue,
            priority=conversation.priority,
            waiting_notice_at=aware(conversation.waiting_notice_at),
            highest_risk=conversation.highest_risk,
        )

    def _context(self, session: Session, now: datetime) -> DialogueContext:
        def estimate(queue: QueueName, priority: int) -> WaitEstimate:
            return self.estimator(session, queue, priority, now, self.hours[queue])

        return DialogueContext(
            texts=self.texts,
            catalogue=self.catalogue,
            retention_days=self.settings.retention_days,
            volunteer_hours=self.hours[QueueName.volunteer],
            professional_hours=self.hours[QueueName.professional],
            zone=self.zone,
            region=self.settings.region,
            include_unverified=self.settings.include_unverified_catalogue,
            estimate=estimate,
            now=now,
            on_call=self.settings.on_call_phone is not None,
        )

    def _apply(self, session: Session, conversation: Conversation, message: Message,
               decision: Decision, now: datetime, sent_now: list[Outbox] | None = None) -> int:
        """Apply a decision in the caller's transaction: the conversation's status, queue and
        facts, and the replies (stored, and written to the outbox). `sent_now`: when given, the
        replies that may go at once (nothing of this conversation still waits, no burst) are
        leased to the caller, who posts them after the commit; their rows are appended."""
        conversation.welcomed = conversation.welcomed or decision.welcomed
        conversation.awaiting = decision.awaiting
        if decision.notice_at is not None:
            conversation.waiting_notice_at = decision.notice_at
        if decision.preferred is not None:
            conversation.preferred_kind = decision.preferred
        if decision.catalogue_ids:
            facts.on_catalogue(session, conversation, decision.catalogue_ids)
        if (decision.close or decision.delete) and conversation.status is ConversationStatus.queued:
            facts.on_left(session, conversation)  # left before anyone picked up
        if decision.status is ConversationStatus.queued and decision.queue is not None:
            newly = conversation.status is not ConversationStatus.queued
            conversation.status = ConversationStatus.queued
            conversation.queue = decision.queue
            conversation.priority = decision.priority
            conversation.queue_reason = decision.reason
            if newly:
                conversation.queued_at = now
            facts.on_queued(session, conversation)
            session.add(Handoff(conversation_id=conversation.id, queue=decision.queue,
                                priority=decision.priority if decision.priority is not None else 3,
                                reason=decision.reason or ""))
        elif decision.priority is not None and conversation.status is ConversationStatus.queued:
            conversation.priority = decision.priority
        if decision.close:
            conversation.status = ConversationStatus.closed
            conversation.closed_at = now
        address = conversation.address_encrypted
        if decision.replies:
            if session.info.get(_NEW_CONVERSATION) == conversation.id:
                slot, free = now, True  # opened in this transaction: nothing of it waits
            else:
                slot, free = next_slot(session, conversation.id, now,
                                       self.settings.reply_interval_seconds)
            lease = SEND_LEASE if sent_now is not None and free and slot <= now else None
        for seq, text in enumerate(decision.replies):
            reply = Message(id=new_id(), conversation_id=conversation.id,
                            channel=conversation.channel, direction=Direction.outbound,
                            author=Author.bot, text=text, text_masked=text,
                            catalogue_ids=decision.catalogue_ids or None
                            if seq == decision.catalogue_reply else None,
                            created_at=now + timedelta(milliseconds=seq + 1))
            if not decision.delete:
                session.add(reply)
            row = add_reply(session, channel=conversation.channel, address_encrypted=address,
                            text=text, reply_to=message.id, seq=seq, at=slot,
                            conversation_id=None if decision.delete else conversation.id,
                            message_id=None if decision.delete else reply.id, lease=lease)
            if lease is not None and sent_now is not None:
                sent_now.append(row)
        if decision.replies:
            conversation.last_message_at = now
        if decision.delete:
            session.flush()
            # "Verwijder mijn gegevens": this conversation and this sender's earlier ones, with
            # their messages and handoffs (cascade).
            for earlier in session.scalars(select(Conversation).where(
                    Conversation.channel == conversation.channel,
                    Conversation.pseudonym == conversation.pseudonym,
                    Conversation.id != conversation.id)):
                session.delete(earlier)
            session.delete(conversation)
        return len(decision.replies)

    def _fallback(self, message_id: str) -> int:
        """A safe text and a person, when deciding failed."""
        now = self.clock()
        try:
            with self.factory() as session, session.begin():
                message = session.get(Message, message_id)
                if message is None or message.handled_at is not None:
                    return 0
                conversation = session.get(Conversation, message.conversation_id)
                assert conversation is not None
                if conversation.status is ConversationStatus.claimed:
                    # A person has the conversation: they read the message; the bot stays silent.
                    message.handled_at = now
                    changed: tuple[str, str | None] = (conversation.id, "message")
                    count = 0
                else:
                    changed = (conversation.id, "queued")
                    count = -1
                language = "en" if conversation.language == "en" else "nl"
                text = self.texts.get("fallback", language)
                decision = Decision(replies=[text], status=ConversationStatus.queued,
                                    queue=queue_for_risk(conversation.highest_risk),
                                    priority=PRIORITY[conversation.highest_risk],
                                    reason="the bot failed", awaiting=None,
                                    welcomed=conversation.welcomed)
                if count < 0:
                    count = self._apply(session, conversation, message, decision, now)
                    message.handled_at = now
            self._after(changed, wake=count > 0)
            return count
        except Exception as error:  # noqa: BLE001 - the last resort: the worker retries the message
            logger.error("fallback failed too (%s); the worker retries the message", type(error).__name__)
            return 0

    def _wake(self) -> None:
        wake(self.redis, self.settings.redis_prefix)

    # 3. recovery -------------------------------------------------------------------------

    def recover(self, older_than: timedelta = timedelta(seconds=5)) -> int:
        """Handle every stored inbound message that was never handled (a crash in between)."""
        cutoff = self.clock() - older_than
        with self.factory() as session:
            ids = session.scalars(
                select(Message.id)
                .where(Message.direction == Direction.inbound, Message.handled_at.is_(None),
                       Message.created_at <= cutoff)
                .order_by(Message.created_at)
                .limit(500)
            ).all()
        for message_id in ids:
            self.handle(message_id)
        if ids:
            logger.info("recovered %d unhandled message(s)", len(ids))
        return len(ids)


    # 4. a call turn (bot.channels.voice) ---------------------------------------------------
    # A phone call goes through the same boundary as a chat message: the caller's words are
    # stored by `receive`, triaged by the same triage, decided by `decide_call` (beside `decide`,
    # same danger kinds, queue rule and texts) and applied here, in one transaction: the handled
    # mark, the facts, the queue (through `_apply`) and the desk's update after the commit. The
    # voice adapter only renders the decision; when anything fails there, it asks for
    # CallStep.failed: the spoken emergency numbers and the queue.

    def call_turn(self, turn: CallTurn, inbound: InboundMessage | None = None, *,
                  conversation_id: str | None = None, call_sid: str | None = None,
                  reachable: frozenset[QueueName] = frozenset()) -> CallOutcome:
        """One turn of a call. `inbound`: the caller's words, or a key (no text, media voice),
        stored once per call step; `conversation_id`: the call's conversation when the turn
        brings no words (a <Dial> that ended, a key after hours); `reachable`: the queues with
        someone present to ring (the adapter looks them up: it needs their numbers to dial)."""
        if self.fault == "call_down":
            raise InjectedFault("injected crash: calls cannot be handled at all")
        if self.catalogue_fresh is not None:
            self.catalogue_fresh()
        now = self.clock()
        result: TriageResult | None = None
        if inbound is not None and inbound.text.strip() and turn.step in (CallStep.words,
                                                                           CallStep.failed):
            try:
                result = self.triage.run(inbound.text)  # before any lock
            except Exception as error:
                if turn.step is not CallStep.failed:
                    raise
                # The fallback still queues the words, by the risk known so far.
                logger.error("triage failed in a call's fallback (%s)", type(error).__name__)
            if result is not None and turn.step is CallStep.words and not heard(
                    result, turn.confidence, self.settings.voice_speech_confidence):
                return CallOutcome(None, None, heard=False)
            if result is not None:
                turn = turn.with_triage(result)
        message_id: str | None = None
        if inbound is not None:
            received = self.receive(inbound)
            if received.conversation_id is not None:
                conversation_id, message_id = received.conversation_id, received.message_id
            elif turn.step is not CallStep.failed:
                return CallOutcome(None, None)  # blocked, or a replay of a call deleted since
        if conversation_id is None:
            return CallOutcome(None, None)
        if self.fault == "call" and turn.step is not CallStep.failed:
            raise InjectedFault("injected crash in a call turn, after storing")
        with self.factory() as session, session.begin():
            conversation = lock_conversation(session, conversation_id)
            if conversation is None:
                return CallOutcome(None, None)
            if call_sid is not None and conversation.call_sid != call_sid[:64]:
                conversation.call_sid = call_sid[:64]  # on the line: a claim redirects this call
            message = session.get(Message, message_id) if message_id else None
            if message is not None and message.handled_at is None:
                conversation.welcomed = True  # the greeting was spoken
                if result is not None:
                    message.triage = result.stored()
                    self.update_conversation(conversation, result)
                if turn.language == "en" or (result is not None and result.language is Language.en):
                    conversation.language = "en"
                facts.on_message(session, conversation,
                                 after_hours=not self.hours[QueueName.volunteer].is_open(now, self.zone))
                message.handled_at = now  # answered by voice: nothing for the worker to send
            context = CallContext(
                voice=load_voice_texts(self.settings.messages_dir / "voice.yml"), texts=self.texts,
                catalogue=self.catalogue, region=self.settings.region,
                include_unverified=self.settings.include_unverified_catalogue, now=now,
                zone=self.zone, reachable=reachable, messages_dir=self.settings.messages_dir,
                open_now={q: hours.is_open(now, self.zone) for q, hours in self.hours.items()},
                next_opening={q: hours.next_opening(now, self.zone) for q, hours in self.hours.items()})
            view = CallView(status=conversation.status, route=conversation.route,
                            highest_risk=conversation.highest_risk,
                            themes=tuple(conversation.themes or ()))
            decision = decide_call(view, turn, context)
            queued = decision.status is ConversationStatus.queued and decision.queue is not None
            if queued:
                anchor = message or session.scalar(
                    select(Message).where(Message.conversation_id == conversation.id,
                                          Message.author == Author.parent)
                    .order_by(Message.created_at.desc()).limit(1))
                assert anchor is not None  # a conversation is opened by a stored message
                self._apply(session, conversation, anchor, Decision(
                    status=ConversationStatus.queued, queue=decision.queue, priority=decision.priority,
                    reason=decision.reason, awaiting=conversation.awaiting,
                    welcomed=conversation.welcomed), now)
            sent = False
            if decision.sms is not None and conversation.address_encrypted:
                # To the calling number (the conversation's address), once per call step: a
                # replayed key press finds the row. Sent by the worker, like every reply.
                last = session.scalar(select(Message.id).where(
                    Message.conversation_id == conversation.id, Message.author == Author.parent)
                    .order_by(Message.created_at.desc()).limit(1))
                anchor_id = last or conversation.id
                if session.scalar(select(Outbox.id).where(Outbox.reply_to == anchor_id,
                                                          Outbox.channel == Channel.sms).limit(1)) is None:
                    ids = [e.id for e in decision.entries]
                    text = decision.sms
                    reply = Message(channel=Channel.phone, direction=Direction.outbound,
                                    author=Author.bot, text=text, text_masked=text,
                                    catalogue_ids=ids, created_at=now)
                    conversation.messages.append(reply)
                    session.flush()
                    session.add(Outbox(conversation_id=conversation.id, message_id=reply.id,
                                       reply_to=anchor_id, seq=900, channel=Channel.sms,
                                       address_encrypted=conversation.address_encrypted, text=text,
                                       scheduled_at=now, next_attempt_at=now))
                    facts.on_catalogue(session, conversation, ids)
                    session.add(AuditLog(action="voice_sms_consent", conversation_id=conversation.id,
                                         detail={"entries": ids}))
                    sent = True
            elif decision.audit is not None:
                session.add(AuditLog(action=decision.audit, conversation_id=conversation.id))
            conversation_id = conversation.id
        self._after((conversation_id, "queued" if queued else None), wake=sent)
        return CallOutcome(conversation_id, decision)


def lock_conversation(session: Session, conversation_id: str) -> Conversation | None:
    """The conversation, locked for this transaction, so two messages of one parent are decided
    one after the other (never two welcomes). PostgreSQL: SELECT ... FOR UPDATE. SQLite has no
    row locks: a write (of nothing) takes the database's write lock first, and the row is read
    after it, fresh."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sql_text("UPDATE conversations SET welcomed = welcomed WHERE id = :id"),
                        {"id": conversation_id})
    return session.scalar(
        select(Conversation).where(Conversation.id == conversation_id).with_for_update()
        .execution_options(populate_existing=True)
    )


def _route_rank(route: Route) -> int:
    return [Route.bot, Route.volunteer, Route.professional, Route.emergency].index(route)


# "stop en wis" on any channel: end and delete at once, without the question. Only these exact
# words (also "stop & wis", "stop en wissen"), with spaces, quotes or punctuation around them.
_EDGE = r"""[\s.!?,;:'"“”‘’()]*"""
_WIPE = re.compile(rf"^{_EDGE}stop(?:\s+en\s+|\s*&\s*)wis(?:sen)?{_EDGE}$", re.IGNORECASE)


def _command(text: str) -> str | None:
    """Telegram's /start and /stop (also "/start@botname" and with arguments), and "stop en wis"."""
    if _WIPE.match(text):
        return "wipe"
    word = text.strip().split(" ", 1)[0].split("@", 1)[0].lower()
    return {"/start": "start", "/stop": "stop"}.get(word)
