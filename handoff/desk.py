"""The desk: where a conversation meets a person. Claims, replies, transfers, closing, shifts and
the handover card.

SQL is the durable truth of every conversation's status and every handoff event (the audit log);
Redis (handoff.index) is the fast index that orders the queues and makes a claim atomic. A claim
takes the Redis marker first (one winner among many clickers, without touching the database) and
is then confirmed by a conditional UPDATE in SQL (`... WHERE status = 'queued'`), so even an index
that drifted from SQL can never hand one conversation to two people. When the index is lost (Redis
flushed or restarted), it is rebuilt from SQL on the next use.

Every action writes the audit log and publishes an event (handoff.events) for the live dashboard.
Texts for the parent go through the outbox, like every other reply.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.errors import OudertelefoonError
from bot.hours import parse_hours
from bot.intents.catalogue import Catalogue, CatalogueEntry, render_entry
from bot.intents.guidance import guidance_kind
from bot.intents.messages import Texts
from bot.privacy import mask
from bot.worker import wake
from bot.storage.blocks import active_block  # noqa: F401 (kept for older imports)
from bot.storage.models import (
    AuditLog,
    Author,
    Block,
    Channel,
    Conversation,
    ConversationStatus,
    Correction,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    Outbox,
    QueueName,
    Role,
    Shift,
    StandardText,
    User,
    aware,
    role_may_take,
    role_queues,
    utcnow,
)
from bot.triage.types import Danger, Language, Risk, Theme
from handoff.estimate import estimate_wait
from handoff.events import Event, publish
from handoff.index import QueueEntry, QueueIndex
from bot.rules import PRIORITY, WaitEstimate
from handoff.presence import present_clause, present_count, present_user_ids
from stats import facts

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 2000
#: The longest between two writes of a shift's last_seen_at by its dashboard's heartbeat; a third
#: of the presence timeout when that is shorter, so a present person never looks away.
HEARTBEAT_EVERY = timedelta(seconds=30)
#: Risks whose conversations everyone on shift sees, in every queue.
URGENT = (Risk.acute, Risk.high)
_RISK_ORDER = (Risk.none, Risk.concern, Risk.high, Risk.acute)
# Phone numbers in a guidance text, to pass on: "113", "0800-0113", "14 020".
_PHONE_NUMBER = re.compile(r"(?<![\w-])(?:\d{2,4}[- ]\d{3,4}|\d{3})(?![\w-])")
EARLIER_LIMIT = 5


class DeskError(OudertelefoonError):
    """An action a person cannot do now; `message` is Dutch, for the dashboard."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAllowed(DeskError):
    status = 403


class Conflict(DeskError):
    status = 409


class NotFound(DeskError):
    status = 404


class Outcome(str, enum.Enum):
    helped = "helped"
    referred_service = "referred_service"
    referred_network = "referred_network"
    emergency_services = "emergency_services"
    no_response = "no_response"


OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.helped: "Geholpen in het gesprek",
    Outcome.referred_service: "Doorverwezen naar een dienst",
    Outcome.referred_network: "Doorverwezen naar eigen netwerk",
    Outcome.emergency_services: "Hulpdiensten ingeschakeld",
    Outcome.no_response: "Ouder reageerde niet meer",
}
ROLE_LABELS: dict[Role, str] = {
    Role.volunteer: "vrijwilliger",
    Role.professional: "hulpverlener",
    Role.coordinator: "coördinator",
}
QUEUE_LABELS: dict[QueueName, str] = {
    QueueName.volunteer: "vrijwilligers",
    QueueName.professional: "hulpverleners",
}
THEME_LABELS: dict[str, str] = {
    "money": "geld",
    "housing": "wonen",
    "pregnancy": "zwangerschap",
    "family_planning": "kinderwens en anticonceptie",
    "baby_care": "verzorging baby",
    "child_health": "gezondheid kind",
    "parenting": "opvoeding",
    "mental_health": "psychische gezondheid",
    "domestic_violence": "huiselijk geweld",
    "addiction": "verslaving",
    "relationship": "relatie",
    "loneliness": "eenzaamheid",
    "language_and_forms": "taal en formulieren",
    "rights_and_status": "rechten en verblijf",
    "childcare_work_school": "opvang, werk en school",
}
RISK_LABELS: dict[Risk, str] = {
    Risk.none: "geen",
    Risk.concern: "zorg",
    Risk.high: "hoog",
    Risk.acute: "acuut",
}
CHANNEL_LABELS: dict[Channel, str] = {
    Channel.web: "webchat",
    Channel.telegram: "Telegram",
    Channel.sms: "sms",
    Channel.whatsapp: "WhatsApp",
    Channel.phone: "telefoon",
}


class Actor(Protocol):
    """The person acting (bot.web.auth.Person, or a test's stand-in)."""

    @property
    def user_id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def languages(self) -> tuple[str, ...]: ...


def may_take(actor: Actor, queue: QueueName | None, *, acute: bool = False,
             professional_present: bool = True) -> bool:
    """Whether this person may take a conversation of `queue` (the rule: role_may_take). An acute
    conversation of the professional queue is anyone's while no professional is present."""
    return role_may_take(actor.role, queue, acute=acute, professional_present=professional_present)


def queues_of(actor: Actor) -> tuple[QueueName, ...]:
    return role_queues(actor.role)


def ref(conversation_id: str) -> str:
    """How people name a conversation: never a number or chat id."""
    return "#" + conversation_id.replace("-", "")[:6]


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
class OnShift:
    """A person with an open shift, and whether their dashboard is there (handoff.presence)."""

    user_id: str
    name: str
    role: Role
    queue: QueueName
    started_at: datetime
    last_seen_at: datetime | None
    present: bool


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


@dataclass(frozen=True)
class Urgency:
    """Why an acute or high conversation comes first, from the triage of its highest-risk
    message: the kind of danger and theme (the dashboard says it in words), and the guidance
    the parent got first (bot.intents.guidance, Dutch) with the numbers in it to pass on."""

    risk: Risk
    danger: Danger
    theme: str | None
    guidance_kind: str | None
    guidance: str | None
    numbers: list[str]


@dataclass(frozen=True)
class CardMessage:
    n: int
    author: Author
    text: str
    at: datetime
    by_name: str | None
    risk: Risk | None
    theme: str | None
    catalogue_names: list[str]


@dataclass(frozen=True)
class Earlier:
    started: datetime
    themes: list[str]
    outcome: Outcome | None
    closing_note: str | None
    helped_by: str | None


@dataclass(frozen=True)
class HandoverCard:
    conversation_id: str
    ref: str
    status: ConversationStatus
    queue: QueueName | None
    priority: int | None
    themes: list[str]
    risk: Risk
    risk_reasons: list[str]
    queue_reason: str | None
    channel: Channel
    language: str
    queued_at: datetime | None
    waiting_minutes: int | None
    preferred: QueueName | None
    claimed_by: str | None
    claimed_by_name: str | None
    claimed_by_me: bool
    parent_words: list[CardMessage]
    bot_said: list[CardMessage]
    given: list[CatalogueEntry]
    suggested: list[CatalogueEntry]
    transfer_notes: list[tuple[str, str, datetime]]
    earlier: list[Earlier]
    messages: list[CardMessage]
    acute_alert: bool
    pending_referral: CatalogueEntry | None
    can_claim: bool
    can_reply: bool
    quick_texts: list[tuple[str, str]]
    urgency: Urgency | None = None
    #: Names of the people present on the professional queue's shift (who takes care).
    professionals_present: list[str] = field(default_factory=list)
    #: Coordinators present on shift this person may hand this conversation to: (id, name).
    coordinators: list[tuple[str, str]] = field(default_factory=list)


class Desk:
    """Claims, replies, transfers, closing, shifts and the handover card (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        redis_client: redis.Redis,
        texts: Texts,
        catalogue: Catalogue,
        *,
        clock: Callable[[], datetime] = utcnow,
        prefix: str = "ot",
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.redis = redis_client
        self.texts = texts
        self.catalogue = catalogue
        self.clock = clock
        self.prefix = prefix
        self.index = QueueIndex(redis_client, prefix=prefix)
        # Phone: after a person claims a call or a callback request, connect them (the voice
        # channel's CallConnector, set when Twilio is on). Called outside the transaction.
        self.on_claim_phone: Callable[[str, str], None] | None = None
        self.zone = ZoneInfo(settings.timezone)
        self.hours = {
            QueueName.volunteer: parse_hours(settings.volunteer_hours),
            QueueName.professional: parse_hours(settings.professional_hours),
        }
        self._presence_checked_at: datetime | None = None  # the last tick's watch_presence

    # presence (handoff.presence: one rule for who is really there) --------------------------------

    @property
    def presence_timeout(self) -> timedelta:
        return timedelta(seconds=self.settings.presence_timeout_seconds)

    @property
    def heartbeat_every(self) -> timedelta:
        """How often a dashboard's heartbeat writes last_seen_at: well below the timeout."""
        return min(HEARTBEAT_EVERY, self.presence_timeout / 3)

    def _professional_present(self, session: Session, now: datetime) -> bool:
        return present_count(session, now=now, timeout=self.presence_timeout,
                             queues=[QueueName.professional]) > 0

    def _present(self, session: Session, user_id: str, now: datetime) -> bool:
        return session.scalar(select(Shift.id).where(Shift.user_id == user_id,
                                                     present_clause(now, self.presence_timeout))
                              .limit(1)) is not None

    def _may_claim(self, session: Session, actor: Actor, conversation: Conversation, now: datetime) -> bool:
        """The rule (may_take) for this conversation now: presence decides only for an acute
        conversation this person's role does not take anyway."""
        acute = conversation.highest_risk is Risk.acute
        present = True
        if acute and not may_take(actor, conversation.queue):
            present = self._professional_present(session, now)
        return may_take(actor, conversation.queue, acute=acute, professional_present=present)

    def _coordinator_options(self, session: Session, actor: Actor, conversation: Conversation,
                             now: datetime) -> list[tuple[str, str]]:
        """Coordinators present on shift to whom this person may hand an acute conversation that
        waits for a professional while none is present: [(user id, name)]; else none."""
        if (actor.role is Role.coordinator or conversation.status is not ConversationStatus.queued
                or conversation.queue is not QueueName.professional
                or conversation.highest_risk is not Risk.acute
                or self._professional_present(session, now)):
            return []
        ids = present_user_ids(session, now=now, timeout=self.presence_timeout)
        if not ids:
            return []
        query = select(User.id, User.display_name).where(
            User.id.in_(ids), User.role == Role.coordinator, User.active.is_(True))
        if conversation.channel is Channel.phone:
            query = query.where(User.phone_encrypted.is_not(None))  # a call is put through to them
        return [(uid, name) for uid, name in session.execute(query.order_by(User.display_name))]

    # the index -------------------------------------------------------------------------------

    def _entry(self, session: Session, conversation: Conversation,
               offers: dict[tuple[Channel, str], str] | None = None) -> QueueEntry:
        assert conversation.queue is not None and conversation.queued_at is not None
        offer_to, offer_until = self._offer(session, conversation, offers)
        return QueueEntry(
            conversation_id=conversation.id,
            queue=conversation.queue,
            priority=conversation.priority if conversation.priority is not None else PRIORITY[Risk.none],
            queued_at=aware(conversation.queued_at) or self.clock(),
            language=conversation.language or "nl",
            preferred=conversation.preferred_kind,
            offer_to=offer_to,
            offer_until=offer_until,
        )

    def _offer(self, session: Session, conversation: Conversation,
               offers: dict[tuple[Channel, str], str] | None = None) -> tuple[str | None, datetime | None]:
        """Continuity: a returning parent is offered first to whoever helped last time, if that
        person is on shift and may take this queue. `offers`: helpers looked up in one batch."""
        if self.settings.offer_seconds <= 0 or conversation.queued_at is None:
            return None, None
        if offers is not None:
            helper = offers.get((conversation.channel, conversation.pseudonym))
        else:
            helper = self._last_helpers(session, [conversation]).get(
                (conversation.channel, conversation.pseudonym))
        if helper is None:
            return None, None
        user = session.get(User, helper)
        if user is None or not user.active or conversation.queue is None or not user.may_take(conversation.queue):
            return None, None
        if not self._present(session, helper, self.clock()):
            return None, None
        return helper, (aware(conversation.queued_at) or self.clock()) + timedelta(
            seconds=self.settings.offer_seconds)

    @staticmethod
    def _last_helpers(session: Session, conversations: Sequence[Conversation]) -> dict[tuple[Channel, str], str]:
        """Who helped each sender last (their latest closed, claimed conversation), in one query."""
        pseudonyms = list({c.pseudonym for c in conversations})
        helpers: dict[tuple[Channel, str], str] = {}
        for start in range(0, len(pseudonyms), 500):
            rows = session.execute(
                select(Conversation.channel, Conversation.pseudonym, Conversation.claimed_by)
                .where(Conversation.pseudonym.in_(pseudonyms[start:start + 500]),
                       Conversation.status == ConversationStatus.closed,
                       Conversation.claimed_by.is_not(None))
                .order_by(Conversation.created_at)
            ).all()
            for channel, pseudonym, user_id in rows:
                helpers[(channel, pseudonym)] = user_id  # the newest wins
        return helpers

    def rebuild(self) -> int:
        """The Redis index from SQL: every queued conversation in its place, every claim marker."""
        with self.factory() as session:
            queued = session.scalars(
                select(Conversation).where(Conversation.status == ConversationStatus.queued,
                                           Conversation.queue.is_not(None))
            ).all()
            offers = self._last_helpers(session, queued) if self.settings.offer_seconds > 0 else {}
            entries = [self._entry(session, c, offers) for c in queued]
            claims = session.execute(
                select(Conversation.id, Conversation.claimed_by).where(
                    Conversation.status == ConversationStatus.claimed,
                    Conversation.claimed_by.is_not(None))
            ).all()
        count = self.index.rebuild(entries, [(cid, uid) for cid, uid in claims])
        logger.info("queue index rebuilt from SQL: %d waiting, %d claimed", count, len(claims))
        return count

    def ensure_index(self) -> None:
        """Rebuild when the index is gone (Redis flushed or restarted without persistence)."""
        try:
            if not self.index.is_built():
                self.rebuild()
        except redis.RedisError as error:
            logger.warning("queue index unavailable (%s); SQL still holds every queue", type(error).__name__)

    def index_conversation(self, conversation_id: str) -> None:
        """Bring one conversation's index entry in line with SQL (after the pipeline changed it)."""
        try:
            self.ensure_index()
            with self.factory() as session:
                conversation = session.get(Conversation, conversation_id)
                if conversation is None or conversation.status in (ConversationStatus.bot,
                                                                   ConversationStatus.closed):
                    self.index.remove(conversation_id)
                    return
                if conversation.status is ConversationStatus.queued and conversation.queue is not None:
                    self.index.add(self._entry(session, conversation))
        except redis.RedisError as error:
            # The worker's periodic ensure_index/rebuild catches up; SQL is the truth meanwhile.
            logger.warning("could not index a conversation (%s)", type(error).__name__)

    def after_pipeline(self, conversation_id: str, change: str) -> None:
        """What the pipeline changed, after its commit: index it and tell the dashboards."""
        if change in ("queued", "closed", "deleted"):
            self.index_conversation(conversation_id)
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                publish(self.redis, Event(type="closed", conversation_id=conversation_id), prefix=self.prefix)
                return
            kind = {"deleted": "closed"}.get(change, change)
            self._publish(kind, conversation, user_id=conversation.claimed_by if kind == "acute" else None)

    def tick(self) -> None:
        """The worker's periodic round: keep the index whole, end the shifts of people long
        gone, return idle claims, and tell the dashboards when someone came or went."""
        self.sync()
        self.end_stale_shifts()
        self.release_idle()
        self.watch_presence()

    def watch_presence(self) -> None:
        """Presence runs out by time, not by an event: when someone's presence ran out since the
        last round, publish a shift event, so dashboards show them away. (Coming back is told by
        the heartbeat itself.)"""
        now = self.clock()
        since, self._presence_checked_at = self._presence_checked_at, now
        if since is None:
            return
        seen = func.coalesce(Shift.last_seen_at, Shift.started_at)
        with self.factory() as session:
            expired = session.scalar(select(func.count()).select_from(Shift).where(
                Shift.ended_at.is_(None), seen >= since - self.presence_timeout,
                seen < now - self.presence_timeout)) or 0
        if expired:
            self._publish("shift")

    def sync(self) -> None:
        """Periodic safety net: rebuild when the index lost track of SQL."""
        try:
            if not self.index.is_built():
                self.rebuild()
                return
            with self.factory() as session:
                waiting = session.scalar(select(func.count()).select_from(Conversation).where(
                    Conversation.status == ConversationStatus.queued)) or 0
            indexed = sum(len(self.index.waiting(q)) for q in QueueName)
            if indexed != waiting:
                self.rebuild()
        except redis.RedisError as error:
            logger.warning("queue index sync skipped (%s)", type(error).__name__)

    # events and audit --------------------------------------------------------------------------

    def _publish(self, kind: str, conversation: Conversation | None = None, user_id: str | None = None,
                 queue: QueueName | None = None) -> None:
        queue = queue or (conversation.queue if conversation is not None else None)
        publish(self.redis, Event(
            type=kind,
            conversation_id=conversation.id if conversation is not None else None,
            queue=queue.value if queue is not None else None,
            user_id=user_id,
            priority=conversation.priority if conversation is not None else None,
        ), prefix=self.prefix)

    @staticmethod
    def _audit(session: Session, actor: Actor | None, action: str, conversation_id: str | None,
               **detail: Any) -> None:
        session.add(AuditLog(user_id=actor.user_id if actor is not None else None, action=action,
                             conversation_id=conversation_id, detail=detail or None))

    def _wake(self) -> None:
        wake(self.redis, self.prefix)

    def _send(self, session: Session, conversation: Conversation, texts: Sequence[str], *,
              user_id: str | None, author: Author = Author.person) -> None:
        """Store and queue texts for the parent on their own channel."""
        now = self.clock()
        last = aware(session.scalar(select(func.max(Outbox.scheduled_at)).where(
            Outbox.conversation_id == conversation.id)))
        slot = now if last is None else max(now, last + timedelta(seconds=self.settings.reply_interval_seconds))
        for seq, text in enumerate(texts):
            message = Message(channel=conversation.channel, direction=Direction.outbound, author=author,
                              text=text, text_masked=mask(text), user_id=user_id,
                              created_at=now + timedelta(milliseconds=seq + 1))
            conversation.messages.append(message)
            session.flush()
            if conversation.channel is Channel.phone:
                continue  # said on the line, not sent: the transcript keeps it for the card
            at = slot + timedelta(milliseconds=seq * 10)
            session.add(Outbox(conversation_id=conversation.id, message_id=message.id, reply_to=message.id,
                               seq=0, channel=conversation.channel,
                               address_encrypted=conversation.address_encrypted, text=text,
                               scheduled_at=at, next_attempt_at=at))
        conversation.last_message_at = now

    def _lang(self, conversation: Conversation) -> str:
        return "en" if conversation.language == "en" else "nl"

    def _role_text(self, actor: Actor, lang: str) -> str:
        return self.texts.get(f"role_{actor.role.value}", lang)

    # people and shifts ------------------------------------------------------------------------

    @staticmethod
    def _on_shift(session: Session, user_id: str) -> bool:
        return session.scalar(select(Shift.id).where(Shift.user_id == user_id, Shift.ended_at.is_(None))
                              .limit(1)) is not None

    def start_shift(self, actor: Actor, queue: QueueName | None = None) -> None:
        own = QueueName.volunteer if actor.role is Role.volunteer else QueueName.professional
        queue = queue or own
        if not may_take(actor, queue):
            raise NotAllowed("Je kunt geen dienst draaien voor de wachtrij van hulpverleners.")
        now = self.clock()
        with self.factory() as session, session.begin():
            open_shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id,
                                                            Shift.ended_at.is_(None)))
            if open_shift is not None:
                open_shift.queue = queue
                open_shift.last_seen_at = now
            else:
                session.add(Shift(user_id=actor.user_id, queue=queue, started_at=now, last_seen_at=now))
            self._audit(session, actor, "shift_started", None, queue=queue.value)
        self._publish("shift", user_id=actor.user_id, queue=queue)

    def stop_shift(self, user_id: str, reason: str = "stopped") -> int:
        """End the person's shift; their claimed conversations go back to the queue, places kept.
        `reason`: "stopped" (they said so), "logout", "idle" (their dashboard was gone too long),
        or "deactivated"."""
        now = self.clock()
        with self.factory() as session, session.begin():
            shifts = session.scalars(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None))).all()
            for shift in shifts:
                shift.ended_at = now
            claimed = session.scalars(select(Conversation.id).where(
                Conversation.status == ConversationStatus.claimed, Conversation.claimed_by == user_id)).all()
            if not shifts and not claimed:
                return 0  # not on shift (a logout without a shift): nothing to end
            session.add(AuditLog(user_id=user_id, action="shift_stopped",
                                 detail={"returned": len(claimed), "reason": reason}))
        for conversation_id in claimed:
            self._return(conversation_id, user_id, "off_shift")
        self._publish("shift", user_id=user_id)
        return len(claimed)

    def heartbeat(self, actor: Actor) -> None:
        """The person's dashboard is there (its event stream, or its polling): their open shift
        counts as present. Writes at most every `heartbeat_every`; someone coming back after
        being away is announced to the dashboards at once."""
        now = self.clock()
        back = False
        with self.factory() as session, session.begin():
            shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id, Shift.ended_at.is_(None)))
            last = aware(shift.last_seen_at) if shift is not None else None
            if shift is not None and (last is None or now - last >= self.heartbeat_every):
                shift.last_seen_at = now
                back = last is None or now - last > self.presence_timeout
        if back:
            self._publish("shift", user_id=actor.user_id)

    def end_stale_shifts(self) -> int:
        """A shift whose dashboard has been gone for CLAIM_IDLE_MINUTES ends by itself (audited,
        reason "idle"), and its claims go back to the queue: nobody stays "in dienst" forever
        after closing the tab."""
        limit = self.clock() - timedelta(minutes=self.settings.claim_idle_minutes)
        with self.factory() as session:
            stale = session.scalars(select(Shift.user_id).where(
                Shift.ended_at.is_(None), func.coalesce(Shift.last_seen_at, Shift.started_at) < limit)).all()
        for user_id in dict.fromkeys(stale):
            self.stop_shift(user_id, reason="idle")
        if stale:
            logger.info("ended %d shift(s) whose dashboard was gone", len(set(stale)))
        return len(set(stale))

    def release_idle(self) -> int:
        """Claimed conversations whose person went off shift, or whose dashboard has been away for
        longer than CLAIM_IDLE_MINUTES, go back to the queue with their place kept."""
        now = self.clock()
        limit = timedelta(minutes=self.settings.claim_idle_minutes)
        back: list[tuple[str, str | None, str]] = []
        with self.factory() as session:
            rows = session.execute(
                select(Conversation.id, Conversation.claimed_by, Conversation.claimed_at)
                .where(Conversation.status == ConversationStatus.claimed)
            ).all()
            for conversation_id, user_id, claimed_at in rows:
                if user_id is None:
                    back.append((conversation_id, None, "no_person"))
                    continue
                shift = session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))
                user = session.get(User, user_id)
                if shift is None or user is None or not user.active:
                    back.append((conversation_id, user_id, "off_shift"))
                    continue
                last_reply = aware(session.scalar(select(func.max(Message.created_at)).where(
                    Message.conversation_id == conversation_id, Message.user_id == user_id)))
                seen = max(t for t in (aware(shift.last_seen_at), aware(claimed_at), last_reply,
                                       aware(shift.started_at)) if t is not None)
                if now - seen > limit:
                    back.append((conversation_id, user_id, "idle"))
        for conversation_id, user_id, reason in back:
            self._return(conversation_id, user_id, reason)
        if back:
            logger.info("returned %d claimed conversation(s) to the queue", len(back))
        return len(back)

    # claiming -----------------------------------------------------------------------------------

    def claim(self, conversation_id: str, actor: Actor) -> None:
        self.ensure_index()
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet meer.")
            if conversation.status is ConversationStatus.claimed and conversation.claimed_by == actor.user_id:
                return
            if conversation.status is ConversationStatus.claimed:
                raise Conflict("Iemand anders heeft dit gesprek al opgepakt.")
            if conversation.status is not ConversationStatus.queued:
                raise Conflict("Dit gesprek wacht niet meer op iemand.")
            if not self._may_claim(session, actor, conversation, self.clock()):
                raise NotAllowed("Dit gesprek is voor een hulpverlener.")
            if conversation.channel is Channel.phone:
                self._check_phone(session, actor)
        if not self._index_claim(conversation_id, actor.user_id):
            raise Conflict("Iemand anders heeft dit gesprek net opgepakt.")
        if not self._confirm(conversation_id, actor):
            self._unclaim(conversation_id)
            raise Conflict("Iemand anders heeft dit gesprek net opgepakt.")

    @staticmethod
    def _check_phone(session: Session, actor: Actor) -> None:
        user = session.get(User, actor.user_id)
        if user is None or user.phone_encrypted is None:
            raise NotAllowed("Voor een telefoongesprek heb je een telefoonnummer in je profiel nodig. "
                             "Vraag een coördinator om het in te vullen.")

    def _unclaim(self, conversation_id: str) -> None:
        try:
            self.index.unclaim(conversation_id)
            self.index_conversation(conversation_id)
        except redis.RedisError:
            pass

    def _index_claim(self, conversation_id: str, user_id: str) -> bool:
        try:
            if self.index.claim(conversation_id, user_id):
                return True
            if self.index.claimed_by(conversation_id) is not None:
                return False
            # Not in the index although SQL says it waits (the index drifted): index it, try again.
            self.index_conversation(conversation_id)
            return self.index.claim(conversation_id, user_id)
        except redis.RedisError as error:
            # Without Redis the conditional UPDATE in _confirm alone decides: still one winner.
            logger.warning("queue index unavailable for a claim (%s); SQL decides", type(error).__name__)
            return True

    def claim_next(self, actor: Actor) -> str | None:
        """Claim the most urgent conversation this person may take; its id, or None. A call or a
        callback request is skipped for someone without a phone number for calls."""
        self.ensure_index()
        queues = queues_of(actor)
        languages = tuple(dict.fromkeys(("nl", *actor.languages)))
        acute_from = self._acute_queues(actor, queues)
        skipped: list[str] = []  # held in the index while we look further, given back below
        try:
            for attempt in range(20):
                try:
                    conversation_id = self.index.claim_next(actor.user_id, queues, languages, self.clock(),
                                                            acute_from=acute_from)
                except redis.RedisError as error:
                    logger.warning("queue index unavailable for claim-next (%s); SQL picks",
                                   type(error).__name__)
                    conversation_id = self._sql_next(queues, exclude=skipped, acute_from=acute_from)
                if conversation_id is None:
                    if attempt == 0 and self._sql_waiting(queues, acute_from):
                        self.rebuild()  # the index missed some: catch up once and look again
                        continue
                    return None
                if not self._may_answer(conversation_id, actor):
                    skipped.append(conversation_id)
                    continue
                if self._confirm(conversation_id, actor):
                    return conversation_id
                self._unclaim(conversation_id)  # a stale entry: dropped or re-added as SQL says
            return None
        finally:
            for conversation_id in skipped:
                self._unclaim(conversation_id)

    def _acute_queues(self, actor: Actor, queues: Sequence[QueueName]) -> tuple[QueueName, ...]:
        """The other queues whose acute conversations this person may take now (the rule: an
        acute professional-queue conversation while no professional is present)."""
        others = [q for q in QueueName if q not in queues]
        if not others or not any(may_take(actor, q, acute=True, professional_present=False) for q in others):
            return ()
        with self.factory() as session:
            present = self._professional_present(session, self.clock())
        return tuple(q for q in others if may_take(actor, q, acute=True, professional_present=present))

    def _may_answer(self, conversation_id: str, actor: Actor) -> bool:
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                return True  # _confirm finds out
            if not self._may_claim(session, actor, conversation, self.clock()):
                return False  # e.g. a professional came online since the index was asked
            if conversation.channel is not Channel.phone:
                return True
            try:
                self._check_phone(session, actor)
            except NotAllowed:
                return False
            return True

    @staticmethod
    def _claimable(queues: Sequence[QueueName], acute_from: Sequence[QueueName]) -> Any:
        where = Conversation.queue.in_(list(queues))
        if acute_from:
            where = where | (Conversation.queue.in_(list(acute_from)) & (Conversation.highest_risk == Risk.acute))
        return where

    def _sql_waiting(self, queues: Sequence[QueueName], acute_from: Sequence[QueueName] = ()) -> bool:
        with self.factory() as session:
            return (session.scalar(select(func.count()).select_from(Conversation).where(
                Conversation.status == ConversationStatus.queued, self._claimable(queues, acute_from))) or 0) > 0

    def _sql_next(self, queues: Sequence[QueueName], exclude: Sequence[str] = (),
                  acute_from: Sequence[QueueName] = ()) -> str | None:
        with self.factory() as session:
            return session.scalar(
                select(Conversation.id)
                .where(Conversation.status == ConversationStatus.queued, self._claimable(queues, acute_from),
                       Conversation.id.not_in(list(exclude)))
                .order_by(Conversation.priority, Conversation.queued_at)
                .limit(1))

    def _confirm(self, conversation_id: str, actor: Actor) -> bool:
        """The durable claim: a conditional UPDATE, so only a conversation that still waits is taken.
        The warm handover goes to the parent when the person opens the conversation (`greet`),
        not now: it says they are reading, and they are not yet. A call is the exception: its
        handover is said on the line, kept in the transcript as before."""
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = self._take(session, conversation_id, actor.user_id, now,
                                      (ConversationStatus.queued,), handoff_reason=None)
            if conversation is None:
                return False
            waited = int((now - (aware(conversation.queued_at) or now)).total_seconds())
            facts.on_claimed(session, conversation, waited)
            self._audit(session, actor, "claimed", conversation_id, queue=(conversation.queue or QueueName.volunteer).value,
                        waited_seconds=waited)
            if conversation.channel is Channel.phone:
                self._greet(session, conversation, actor, now, call=True)
        self._publish("claimed", conversation, user_id=actor.user_id)
        self._wake()
        if conversation.channel is Channel.phone and self.on_claim_phone is not None:
            try:
                self.on_claim_phone(conversation_id, actor.user_id)
            except Exception as error:  # the claim stands; the person sees it and can call back
                logger.error("connecting a claimed call failed (%s)", type(error).__name__)
        return True

    def take_call(self, conversation_id: str, user_id: str) -> bool:
        """A person accepted a call in its whisper: the conversation is theirs on the dashboard
        too (from the bot or the queue), without a handover text (they are talking already)."""
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = self._take(session, conversation_id, user_id, now,
                                      (ConversationStatus.bot, ConversationStatus.queued),
                                      handoff_reason="telefoon: direct doorverbonden")
            if conversation is None:
                return False
            queued_at = aware(conversation.queued_at)
            facts.on_queued(session, conversation)
            facts.on_claimed(session, conversation, int((now - queued_at).total_seconds()) if queued_at else 0)
            session.add(AuditLog(user_id=user_id, action="claimed", conversation_id=conversation_id,
                                 detail={"via": "phone"}))
        try:
            self.index.remove(conversation_id)
        except redis.RedisError:
            pass
        self._publish("claimed", conversation, user_id=user_id)
        return True

    def _take(self, session: Session, conversation_id: str, user_id: str, now: datetime,
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
        handoff = self._open_handoff(session, conversation_id)
        if handoff is None:
            handoff = Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                              priority=conversation.priority if conversation.priority is not None else 3,
                              reason=handoff_reason or conversation.queue_reason or "")
            session.add(handoff)
        handoff.status = HandoffStatus.claimed
        handoff.claimed_by = user_id
        handoff.claimed_at = now
        return conversation

    @staticmethod
    def _open_handoff(session: Session, conversation_id: str) -> Handoff | None:
        return session.scalar(
            select(Handoff)
            .where(Handoff.conversation_id == conversation_id,
                   Handoff.status.in_((HandoffStatus.queued, HandoffStatus.claimed)))
            .order_by(Handoff.created_at.desc())
            .limit(1))

    def _claimed(self, session: Session, conversation_id: str, actor: Actor) -> Conversation:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None:
            raise NotFound("Dit gesprek bestaat niet meer.")
        if conversation.status is not ConversationStatus.claimed or conversation.claimed_by != actor.user_id:
            raise Conflict("Je hebt dit gesprek niet (meer). Pak het eerst op.")
        return conversation

    def _greeting(self, session: Session, conversation: Conversation, actor: Actor, now: datetime,
                  *, call: bool = False) -> str | None:
        """The warm handover of this person's claim, if it is still due (the caller sends it):
        claimed once by a conditional UPDATE on the claim's handoff row, so a reload (or two
        tabs at once) never sends it twice. A call gets it only at its claim (`call`): after
        that the person is talking on the line, and no text follows."""
        if (conversation.channel is Channel.phone) is not call:
            return None
        handoff = self._open_handoff(session, conversation.id)
        if (handoff is None or handoff.status is not HandoffStatus.claimed
                or handoff.claimed_by != actor.user_id or handoff.greeted_at is not None):
            return None
        result = session.execute(
            update(Handoff).where(Handoff.id == handoff.id, Handoff.greeted_at.is_(None))
            .values(greeted_at=now).execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        self._audit(session, actor, "handover_sent", conversation.id)
        lang = self._lang(conversation)
        return self.texts.get("handover", lang, name=actor.display_name, role=self._role_text(actor, lang))

    def _greet(self, session: Session, conversation: Conversation, actor: Actor, now: datetime,
               *, call: bool = False) -> bool:
        greeting = self._greeting(session, conversation, actor, now, call=call)
        if greeting is None:
            return False
        self._send(session, conversation, [greeting], user_id=actor.user_id)
        return True

    def greet(self, conversation_id: str, actor: Actor) -> bool:
        """The person opened their claimed conversation: the parent hears who is there now (the
        first opening of this claim only). True when the handover went out."""
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if (conversation is None or conversation.status is not ConversationStatus.claimed
                    or conversation.claimed_by != actor.user_id):
                return False
            sent = self._greet(session, conversation, actor, now)
        if sent:
            self._publish("message", conversation, user_id=actor.user_id)
            self._wake()
        return sent

    def open(self, conversation_id: str, actor: Actor) -> HandoverCard:
        """The conversation page is opened: the warm handover (first opening of a claim), then
        the card with the transcript that now shows it."""
        self.greet(conversation_id, actor)
        return self.card(conversation_id, actor)

    def hand_to_coordinator(self, conversation_id: str, actor: Actor, coordinator_id: str) -> None:
        """An acute conversation that waits for a professional while none is present, handed to
        a coordinator present on shift: it is theirs (claimed for them) and they are alerted.
        The parent hears who it is when the coordinator opens it."""
        now = self.clock()
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet meer.")
            if conversation.status is not ConversationStatus.queued:
                raise Conflict("Dit gesprek wacht niet meer op iemand.")
            if coordinator_id not in dict(self._coordinator_options(session, actor, conversation, now)):
                raise NotAllowed("Dit gesprek kun je nu niet aan een coördinator geven.")
        self.ensure_index()
        if not self._index_claim(conversation_id, coordinator_id):
            raise Conflict("Iemand anders heeft dit gesprek net opgepakt.")
        with self.factory() as session, session.begin():
            conversation = self._take(session, conversation_id, coordinator_id, now,
                                      (ConversationStatus.queued,), handoff_reason=None)
            if conversation is not None:
                conversation.acute_alert_at = now  # the coordinator's alert, until they mark it seen
                waited = int((now - (aware(conversation.queued_at) or now)).total_seconds())
                facts.on_claimed(session, conversation, waited)
                self._audit(session, actor, "handed_to_coordinator", conversation_id, to=coordinator_id,
                            waited_seconds=waited)
        if conversation is None:
            self._unclaim(conversation_id)
            raise Conflict("Iemand anders heeft dit gesprek net opgepakt.")
        self._publish("claimed", conversation, user_id=coordinator_id)
        self._publish("acute", conversation, user_id=coordinator_id)
        if conversation.channel is Channel.phone and self.on_claim_phone is not None:
            try:
                self.on_claim_phone(conversation_id, coordinator_id)
            except Exception as error:  # the claim stands; the coordinator sees it and can call back
                logger.error("connecting a handed-on call failed (%s)", type(error).__name__)

    # in the conversation --------------------------------------------------------------------------

    def reply(self, conversation_id: str, actor: Actor, text: str) -> None:
        text = text.strip()
        if not text:
            raise DeskError("Je bericht is leeg.")
        if len(text) > MAX_REPLY_CHARS:
            raise DeskError(f"Je bericht is te lang (meer dan {MAX_REPLY_CHARS} tekens).")
        with self.factory() as session, session.begin():
            conversation = self._claimed(session, conversation_id, actor)
            greeting = self._greeting(session, conversation, actor, self.clock())  # who, before what
            self._send(session, conversation, [greeting, text] if greeting else [text], user_id=actor.user_id)
            self._audit(session, actor, "replied", conversation_id)
        self._publish("message", conversation, user_id=actor.user_id)
        self._wake()

    def release(self, conversation_id: str, actor: Actor | None, reason: str = "returned") -> None:
        """Back to the queue, in the place it had."""
        if actor is not None:
            with self.factory() as session:
                conversation = session.get(Conversation, conversation_id)
                if conversation is None:
                    raise NotFound("Dit gesprek bestaat niet meer.")
                if conversation.status is not ConversationStatus.claimed or (
                        conversation.claimed_by != actor.user_id and actor.role is not Role.coordinator):
                    raise Conflict("Je hebt dit gesprek niet (meer).")
        if not self._return(conversation_id, actor.user_id if actor else None, reason, actor=actor):
            raise Conflict("Dit gesprek is al teruggezet of afgesloten.")

    def _return(self, conversation_id: str, user_id: str | None, reason: str, *,
                actor: Actor | None = None) -> bool:
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None or conversation.status is not ConversationStatus.claimed:
                return False
            holder = session.get(User, conversation.claimed_by) if conversation.claimed_by else None
            conversation.status = ConversationStatus.queued
            conversation.claimed_by = None
            conversation.claimed_at = None
            handoff = self._open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.returned
                handoff.closed_at = now
            session.add(Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                                priority=conversation.priority if conversation.priority is not None else 3,
                                reason=f"returned: {reason}", created_at=now))
            session.add(AuditLog(user_id=actor.user_id if actor else None, action="returned",
                                 conversation_id=conversation_id,
                                 detail={"reason": reason, "from": user_id}))
            lang = self._lang(conversation)
            name = holder.display_name if holder is not None else self.texts.get("role_coordinator", lang)
            self._send(session, conversation, [self.texts.get("returned", lang, name=name)], user_id=None,
                       author=Author.bot)
            entry = self._entry(session, conversation)
        try:
            self.index.add(entry)
        except redis.RedisError:
            logger.warning("queue index unavailable; the conversation is queued in SQL and indexed later")
        self._publish("released", conversation, user_id=user_id)
        self._wake()
        return True

    def transfer(self, conversation_id: str, actor: Actor, note: str) -> None:
        """To the other queue, with a note for the next handover card; the place in line is kept."""
        note = note.strip()[:MAX_NOTE_CHARS]
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = self._claimed(session, conversation_id, actor)
            target = QueueName.volunteer if conversation.queue is QueueName.professional else QueueName.professional
            if target is QueueName.volunteer and conversation.highest_risk is Risk.acute:
                raise NotAllowed("Een gesprek met acuut risico blijft bij de hulpverleners.")
            handoff = self._open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.transferred
                handoff.closed_at = now
            conversation.status = ConversationStatus.queued
            conversation.queue = target
            conversation.claimed_by = None
            conversation.claimed_at = None
            session.add(Handoff(conversation_id=conversation_id, queue=target,
                                priority=conversation.priority if conversation.priority is not None else 3,
                                reason=f"transferred by {actor.display_name}", note=note or None,
                                created_at=now))
            facts.on_queued(session, conversation)
            self._audit(session, actor, "transferred", conversation_id, to=target.value)
            lang = self._lang(conversation)
            self._send(session, conversation, [self.texts.get(f"transferred_{target.value}", lang,
                                                              name=actor.display_name)],
                       user_id=actor.user_id)
            entry = self._entry(session, conversation)
        try:
            self.index.add(entry)
        except redis.RedisError:
            logger.warning("queue index unavailable; the transfer is in SQL and indexed later")
        self._publish("transferred", conversation, user_id=actor.user_id, queue=target)
        self._wake()

    def close(self, conversation_id: str, actor: Actor, outcome: Outcome, *, referred_to: str | None = None,
              corrected_themes: Sequence[str] = (), closing_note: str = "") -> None:
        outcome = Outcome(outcome)
        corrected = [t for t in dict.fromkeys(corrected_themes) if t]
        unknown = [t for t in corrected if t not in THEME_LABELS]
        if unknown:
            raise DeskError("Onbekend thema: " + ", ".join(unknown))
        if referred_to and referred_to not in self.catalogue:
            raise DeskError("Die dienst staat niet in het aanbod.")
        if outcome is Outcome.referred_service and not referred_to:
            raise DeskError("Kies naar welke dienst je hebt doorverwezen.")
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = self._claimed(session, conversation_id, actor)
            handoff = self._open_handoff(session, conversation_id)
            if handoff is None:
                handoff = Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                                  priority=conversation.priority if conversation.priority is not None else 3,
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
            self._audit(session, actor, "closed", conversation_id, outcome=outcome.value,
                        referred_to=referred_to, corrected=bool(handoff.corrected_themes))
            lang = self._lang(conversation)
            self._send(session, conversation, [self.texts.get("closed", lang),
                                               self.texts.get("verdict_ask", lang)],
                       user_id=None, author=Author.bot)
        try:
            self.index.remove(conversation_id)
        except redis.RedisError:
            pass
        self._publish("closed", conversation, user_id=actor.user_id)
        self._wake()

    def ask_referral(self, conversation_id: str, actor: Actor, entry_id: str) -> None:
        """Ask the parent's consent for a referral summary; the pipeline reads their answer."""
        if entry_id not in self.catalogue:
            raise DeskError("Die dienst staat niet in het aanbod.")
        entry = self.catalogue.get(entry_id)
        with self.factory() as session, session.begin():
            conversation = self._claimed(session, conversation_id, actor)
            conversation.pending_referral = entry_id
            self._send(session, conversation, [self.texts.get("referral_ask", self._lang(conversation),
                                                              service=entry.name)],
                       user_id=actor.user_id)
            self._audit(session, actor, "referral_consent_asked", conversation_id, service=entry_id)
        self._publish("message", conversation, user_id=actor.user_id)
        self._wake()

    def acknowledge_alert(self, conversation_id: str, actor: Actor) -> None:
        with self.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet meer.")
            if conversation.claimed_by != actor.user_id and actor.role is not Role.coordinator:
                raise NotAllowed("Alleen wie dit gesprek heeft kan de melding afvinken.")
            conversation.acute_alert_at = None
            self._audit(session, actor, "alert_acknowledged", conversation_id)

    # blocks and standard texts (coordinators) ---------------------------------------------------------

    @staticmethod
    def _coordinator(actor: Actor) -> None:
        if actor.role is not Role.coordinator:
            raise NotAllowed("Alleen coördinatoren kunnen dit.")

    def block(self, conversation_id: str, actor: Actor, reason: str, days: int) -> None:
        """Block a sender by pseudonym until the expiry; the conversation closes and nothing more
        reaches the queue. The sender gets one neutral message on their next message."""
        self._coordinator(actor)
        reason = reason.strip()
        if not reason:
            raise DeskError("Geef een reden voor de blokkade.")
        if not 1 <= days <= 365:
            raise DeskError("Kies een duur van 1 tot 365 dagen.")
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet meer.")
            session.add(Block(channel=conversation.channel, pseudonym=conversation.pseudonym,
                              reason=reason[:MAX_NOTE_CHARS], expires_at=now + timedelta(days=days),
                              created_by=actor.user_id, created_at=now))
            handoff = self._open_handoff(session, conversation_id)
            if handoff is not None:
                handoff.status = HandoffStatus.closed
                handoff.closed_at = now
                handoff.outcome = "blocked"
            conversation.status = ConversationStatus.closed
            conversation.closed_at = now
            self._audit(session, actor, "blocked", conversation_id, days=days)
        try:
            self.index.remove(conversation_id)
        except redis.RedisError:
            pass
        self._publish("closed", conversation, user_id=actor.user_id)

    def blocks(self, actor: Actor) -> list[Block]:
        self._coordinator(actor)
        now = self.clock()
        with self.factory() as session:
            return list(session.scalars(select(Block).where(Block.lifted_at.is_(None), Block.expires_at > now)
                                        .order_by(Block.created_at.desc())))

    def lift_block(self, block_id: str, actor: Actor) -> None:
        self._coordinator(actor)
        with self.factory() as session, session.begin():
            block = session.get(Block, block_id)
            if block is None:
                raise NotFound("Deze blokkade bestaat niet.")
            block.lifted_at = self.clock()
            self._audit(session, actor, "block_lifted", None, block=block_id)

    def standard_texts(self) -> list[StandardText]:
        with self.factory() as session:
            return list(session.scalars(select(StandardText).where(StandardText.active.is_(True))
                                        .order_by(StandardText.title)))

    def add_standard_text(self, actor: Actor, title: str, body: str) -> None:
        self._coordinator(actor)
        title, body = title.strip(), body.strip()
        if not title or not body:
            raise DeskError("Een standaardtekst heeft een titel en een tekst.")
        if len(title) > 80 or len(body) > MAX_REPLY_CHARS:
            raise DeskError("De titel of de tekst is te lang.")
        with self.factory() as session, session.begin():
            session.add(StandardText(title=title, body=body, created_by=actor.user_id))

    def remove_standard_text(self, actor: Actor, text_id: str) -> None:
        self._coordinator(actor)
        with self.factory() as session, session.begin():
            text = session.get(StandardText, text_id)
            if text is None:
                raise NotFound("Deze standaardtekst bestaat niet.")
            text.active = False

    # reading ------------------------------------------------------------------------------------

    def snapshot(self, actor: Actor) -> QueueSnapshot:
        """The queue page: what waits for this person (their queues; for someone on shift also
        the acute and high conversations of every queue), their own conversations, who has the
        urgent ones, who is on shift and present, and the expected waits."""
        self.ensure_index()
        now = self.clock()
        queues = queues_of(actor)
        with self.factory() as session:
            shift = session.scalar(select(Shift).where(Shift.user_id == actor.user_id, Shift.ended_at.is_(None)))
            urgent_too = shift is not None and len(queues) < len(QueueName)
            order: dict[str, int] = {}
            offers: dict[str, QueueEntry] = {}
            try:
                for position, entry in enumerate(self.index.entries(list(QueueName) if urgent_too else queues)):
                    order[entry.conversation_id] = position
                    offers[entry.conversation_id] = entry
            except redis.RedisError:
                pass  # SQL order below
            visible = Conversation.queue.in_(queues)
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
            returning = self._returning(session, [*waiting_rows, *claimed_rows])
            professional_present = self._professional_present(session, now)

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
            on_shift = {q: present_count(session, now=now, timeout=self.presence_timeout, queues=[q])
                        for q in QueueName}
            estimates = {q: estimate_wait(session, q, PRIORITY[Risk.none], now=now, hours=self.hours[q],
                                          zone=self.zone, handling_minutes=self.settings.handling_minutes,
                                          presence_timeout=self.presence_timeout)
                         for q in queues}
            people = self._people(session, now)
        return QueueSnapshot(waiting=waiting, mine=mine, claimed_by_others=others, shift=shift,
                             on_shift=on_shift, estimates=estimates, people=people,
                             professional_present=professional_present)

    def _people(self, session: Session, now: datetime) -> list[OnShift]:
        """Everyone with an open shift (active accounts), present first, then by name."""
        present = present_user_ids(session, now=now, timeout=self.presence_timeout)
        rows = session.execute(
            select(Shift, User.display_name, User.role).join(User, User.id == Shift.user_id)
            .where(Shift.ended_at.is_(None), User.active.is_(True))
        ).all()
        people = [OnShift(user_id=shift.user_id, name=name, role=role, queue=shift.queue,
                          started_at=aware(shift.started_at) or now, last_seen_at=aware(shift.last_seen_at),
                          present=shift.user_id in present)
                  for shift, name, role in rows]
        return sorted(people, key=lambda p: (not p.present, p.name.lower()))

    @staticmethod
    def _returning(session: Session, conversations: Sequence[Conversation]) -> set[str]:
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

    def _readable(self, session: Session, conversation: Conversation, actor: Actor, now: datetime) -> None:
        if actor.role is Role.coordinator:
            return
        if conversation.claimed_by == actor.user_id:
            return
        if conversation.status in (ConversationStatus.queued, ConversationStatus.claimed):
            if may_take(actor, conversation.queue):
                return  # claimed: they see who has it; the transcript is for the one who has it
            # Acute and high conversations are for everyone on shift to see (who takes care).
            if conversation.highest_risk in URGENT and self._on_shift(session, actor.user_id):
                return
            if conversation.status is ConversationStatus.queued and self._may_claim(session, actor, conversation, now):
                return
        raise NotAllowed("Dit gesprek is niet voor jou.")

    def card(self, conversation_id: str, actor: Actor) -> HandoverCard:
        """The handover card and transcript. Every opening is written to the audit log."""
        now = self.clock()
        with self.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet (meer). Misschien is het verwijderd.")
            self._readable(session, conversation, actor, now)
            mine = conversation.claimed_by == actor.user_id
            full = mine or actor.role is Role.coordinator or conversation.status is ConversationStatus.queued
            if not full:
                raise Conflict("Iemand anders heeft dit gesprek opgepakt.")
            self._audit(session, actor, "transcript_opened", conversation_id)
            names = dict(session.execute(select(User.id, User.display_name)).all())
            messages = self._card_messages(conversation, names)
            given_ids = [i for m in conversation.messages if m.catalogue_ids for i in m.catalogue_ids]
            given = [self.catalogue.get(i) for i in dict.fromkeys(given_ids) if i in self.catalogue]
            suggested = self._suggest(conversation, {e.id for e in given})
            handoffs = sorted(conversation.handoffs, key=lambda h: aware(h.created_at) or now)
            notes = [(self._transfer_author(h.reason), h.note, aware(h.created_at) or now)
                     for h in handoffs if h.note]
            reasons: list[str] = []
            for m in conversation.messages:
                for r in (m.triage or {}).get("risk_reasons", []) or []:
                    if r not in reasons:
                        reasons.append(r)
            queued_at = aware(conversation.queued_at)
            pending = self.catalogue.get(conversation.pending_referral) \
                if conversation.pending_referral and conversation.pending_referral in self.catalogue else None
            lang = Language.en if conversation.language == "en" else Language.nl
            quick = [(t.title, t.body) for t in session.scalars(
                select(StandardText).where(StandardText.active.is_(True)).order_by(StandardText.title))]
            quick += [(e.name, render_entry(e, lang)) for e in [*suggested, *given]]
            card = HandoverCard(
                conversation_id=conversation.id, ref=ref(conversation.id), status=conversation.status,
                queue=conversation.queue, priority=conversation.priority,
                themes=list(conversation.themes or []), risk=conversation.highest_risk,
                risk_reasons=reasons, queue_reason=conversation.queue_reason,
                channel=conversation.channel, language=conversation.language,
                queued_at=queued_at,
                waiting_minutes=int((now - queued_at).total_seconds() // 60) if queued_at else None,
                preferred=conversation.preferred_kind, claimed_by=conversation.claimed_by,
                claimed_by_name=names.get(conversation.claimed_by) if conversation.claimed_by else None,
                claimed_by_me=mine,
                parent_words=[m for m in messages if m.author is Author.parent],
                bot_said=[m for m in messages if m.author is Author.bot],
                given=given, suggested=suggested, transfer_notes=notes,
                earlier=self._earlier(session, conversation, names),
                messages=messages, acute_alert=conversation.acute_alert_at is not None,
                pending_referral=pending,
                can_claim=(conversation.status is ConversationStatus.queued
                           and self._may_claim(session, actor, conversation, now)),
                can_reply=mine and conversation.status is ConversationStatus.claimed,
                quick_texts=quick,
                urgency=self._urgency(conversation),
                professionals_present=self._professional_names(session, now)
                if conversation.queue is QueueName.professional else [],
                coordinators=self._coordinator_options(session, actor, conversation, now),
            )
        return card

    def _professional_names(self, session: Session, now: datetime) -> list[str]:
        ids = present_user_ids(session, now=now, timeout=self.presence_timeout, queues=[QueueName.professional])
        if not ids:
            return []
        return sorted(session.scalars(select(User.display_name).where(User.id.in_(ids))))

    def _urgency(self, conversation: Conversation) -> Urgency | None:
        """Why an acute or high conversation comes first: its highest-risk parent message decides
        (of equal risk, one with a named danger, then the latest), and the guidance that message
        got first (bot.intents.guidance: the one rule and the one text)."""
        if conversation.highest_risk not in URGENT:
            return None
        best: tuple[tuple[int, bool, int], dict[str, Any]] | None = None
        for n, message in enumerate(conversation.messages):
            triage = message.triage or {}
            if message.author is not Author.parent or triage.get("risk") not in Risk._value2member_map_:
                continue
            key = (_RISK_ORDER.index(Risk(triage["risk"])), triage.get("danger") not in (None, "none"), n)
            if best is None or key > best[0]:
                best = (key, triage)
        triage = best[1] if best is not None else {}
        risk = Risk(triage["risk"]) if triage else conversation.highest_risk
        danger = Danger(triage["danger"]) if triage.get("danger") in Danger._value2member_map_ else Danger.none
        theme = triage.get("theme") if triage.get("theme") not in (None, Theme.none.value) else None
        kind = guidance_kind(risk, danger, triage.get("risk_category"))
        text = self.texts.guidance.text(kind, "nl") if kind and self.texts.guidance is not None else None
        numbers = list(dict.fromkeys(_PHONE_NUMBER.findall(text))) if text else []
        return Urgency(risk=conversation.highest_risk, danger=danger, theme=theme,
                       guidance_kind=kind, guidance=text, numbers=numbers)

    @staticmethod
    def _transfer_author(reason: str) -> str:
        prefix = "transferred by "
        return reason[len(prefix):] if reason.startswith(prefix) else ""

    def _card_messages(self, conversation: Conversation, names: dict[str, str]) -> list[CardMessage]:
        out = []
        for n, m in enumerate(conversation.messages, start=1):
            triage = m.triage or {}
            risk = Risk(triage["risk"]) if triage.get("risk") in Risk._value2member_map_ else None
            theme = triage.get("theme") if triage.get("theme") not in (None, Theme.none.value) else None
            entries = [self.catalogue.get(i).name for i in (m.catalogue_ids or []) if i in self.catalogue]
            text = m.text or (f"[{m.media_kind}]" if m.media_kind else "")
            out.append(CardMessage(n=n, author=m.author, text=text, at=aware(m.created_at) or self.clock(),
                                   by_name=names.get(m.user_id) if m.user_id else None,
                                   risk=risk, theme=theme, catalogue_names=entries))
        return out

    def _suggest(self, conversation: Conversation, exclude: set[str]) -> list[CatalogueEntry]:
        picked: list[CatalogueEntry] = []
        for theme in conversation.themes or []:
            try:
                entries = self.catalogue.pick(Theme(theme), region=self.settings.region,
                                              include_unverified=self.settings.include_unverified_catalogue)
            except ValueError:
                continue
            for entry in entries:
                if entry.id not in exclude and entry.id not in {e.id for e in picked}:
                    picked.append(entry)
        return picked[:3]

    def _earlier(self, session: Session, conversation: Conversation, names: dict[str, str]) -> list[Earlier]:
        rows = session.scalars(
            select(Conversation)
            .where(Conversation.channel == conversation.channel,
                   Conversation.pseudonym == conversation.pseudonym,
                   Conversation.id != conversation.id,
                   Conversation.created_at < (conversation.created_at or self.clock()))
            .order_by(Conversation.created_at.desc())
            .limit(EARLIER_LIMIT)
        ).all()
        out = []
        for c in rows:
            closed = [h for h in c.handoffs if h.status is HandoffStatus.closed]
            last = max(closed, key=lambda h: aware(h.closed_at) or aware(h.created_at) or self.clock()) \
                if closed else None
            outcome = Outcome(last.outcome) if last and last.outcome in Outcome._value2member_map_ else None
            out.append(Earlier(started=aware(c.created_at) or self.clock(), themes=list(c.themes or []),
                               outcome=outcome, closing_note=last.closing_note if last else None,
                               helped_by=names.get(c.claimed_by) if c.claimed_by else None))
        return out

    def messages_after(self, conversation_id: str, actor: Actor, after: int) -> list[CardMessage]:
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("Dit gesprek bestaat niet (meer).")
            self._readable(session, conversation, actor, self.clock())
            if not (conversation.claimed_by == actor.user_id or actor.role is Role.coordinator
                    or conversation.status is ConversationStatus.queued):
                raise Conflict("Iemand anders heeft dit gesprek opgepakt.")
            names = dict(session.execute(select(User.id, User.display_name)).all())
            return [m for m in self._card_messages(conversation, names) if m.n > after]

