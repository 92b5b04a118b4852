"""The on-call alert: an SMS to ON_CALL_PHONE when an acute conversation waits and nobody at all
is present on shift (handoff.presence).

What the SMS says: that an acute conversation waits, its themes and risk, and a link to the
dashboard conversation. Never the parent's words, number or chat id.

When: right after the pipeline commits a turn that leaves the conversation acute and queued
(`OnCall.after_pipeline`, next to the desk's hook), and on the worker's periodic round
(`OnCall.tick`) for acute conversations still waiting when the last present person went away.

Once per episode: an episode is the time between pick-ups. A conversation gets at most one SMS
until a person picks it up (claims it); once claimed and back in the queue (returned, transferred,
an idle claim released), it may get one more. The episode number is the number of pick-ups so
far (handoffs with a `claimed_at`), and the SMS is an outbox row whose `reply_to` is a key made
of conversation id and episode number. The outbox's unique (reply_to, seq) makes "at most one" a
database guarantee: two workers or processes that decide at the same moment cannot both insert
it, and a restart (of the service, of Redis, or both) forgets nothing. No Redis key: it would be
lost with Redis's data, and SQL has to be asked anyway.

How it goes out: the worker delivers the outbox row through the existing TwilioSender (channel
sms, TWILIO_SMS_FROM), with its retries and backoff; the row has no conversation id, so a failing
alert never holds up the parent's own replies. The on-call number is stored encrypted in the row
and wiped once it is done, like every outbox address. Each alert is in the audit log
(`on_call_alerted`, with the conversation id, never the number).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import redis
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.labels import RISK_LABELS, THEME_LABELS
from bot.rules import PRIORITY
from bot.storage.crypto import AddressVault
from bot.storage.models import (
    AuditLog,
    Channel,
    Conversation,
    ConversationStatus,
    Handoff,
    Outbox,
    aware,
    utcnow,
)
from bot.storage.outbox import wake
from bot.triage.types import Risk
from handoff.context import ref
from handoff.presence import present_count

logger = logging.getLogger(__name__)

ACTION = "on_call_alerted"
# The dashboard's page of one conversation (bot.web.dashboard).
CONVERSATION_PATH = "/dashboard/conversations/{conversation_id}"
# A conversation whose last activity is older than this is not alerted by the periodic round
# (e.g. when ON_CALL_PHONE is switched on while old acute conversations still wait): it waits in
# the queue, first in line, as before.
STALE_AFTER = timedelta(hours=24)
# At most this many alerts per round (a flood of acute conversations should not become a flood of
# SMS in one go; the next round takes the rest).
ROUND_LIMIT = 20
# Namespace of the episode keys (uuid5): stable on every run and every process.
_EPISODE_NAMESPACE = uuid.UUID("5b0c6a1e-8a43-4d0e-9d3f-0c1a7e0f2b61")
# The changes (bot.pipeline) after which a conversation can be acute and queued.
_CHANGES = ("queued", "message")

SMS_TEXT = ("Oudertelefoon: een gesprek met spoed wacht (onderwerp: {themes}, risico: {risk}). "
            "Er is niemand online. Open: {link}")
NO_THEME = "onbekend"


def dashboard_link(public_base_url: str, conversation_id: str) -> str:
    return public_base_url.rstrip("/") + CONVERSATION_PATH.format(conversation_id=conversation_id)


def sms_text(themes: Sequence[str], risk: Risk, link: str) -> str:
    """The SMS: themes (Dutch labels), risk and the link. Nothing the parent wrote."""
    labels = [THEME_LABELS.get(theme, theme) for theme in themes if theme in THEME_LABELS]
    return SMS_TEXT.format(themes=", ".join(labels) or NO_THEME, risk=RISK_LABELS[risk], link=link)


def episode_key(conversation_id: str, episode: int) -> str:
    """The outbox `reply_to` of the alert of one episode (36 characters, like an id)."""
    return str(uuid.uuid5(_EPISODE_NAMESPACE, f"on-call:{conversation_id}:{episode}"))


def acute_waiting(conversation: Conversation, now: datetime) -> bool:
    """Queued with the acute priority (first in the professional queue), and not stale."""
    if conversation.status is not ConversationStatus.queued:
        return False
    if conversation.priority != PRIORITY[Risk.acute]:
        return False
    last = aware(conversation.last_message_at or conversation.queued_at or conversation.created_at)
    return last is None or now - last <= STALE_AFTER


def episode(session: Session, conversation_id: str) -> int:
    """How often the conversation was picked up so far."""
    return session.scalar(select(func.count(Handoff.claimed_at)).where(
        Handoff.conversation_id == conversation_id)) or 0


class OnCall:
    """Decides and records the on-call SMS; the worker sends it."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], vault: AddressVault,
                 redis_client: redis.Redis | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.factory = factory
        self.vault = vault
        self.redis = redis_client
        self.clock = clock
        self.timeout = timedelta(seconds=settings.presence_timeout_seconds)

    @property
    def enabled(self) -> bool:
        return self.settings.on_call_phone is not None

    def after_pipeline(self, conversation_id: str, change: str) -> None:
        """The pipeline committed a turn (called next to Desk.after_pipeline)."""
        if self.enabled and change in _CHANGES:
            self.check(conversation_id)

    def tick(self) -> int:
        """The worker's round: acute conversations still waiting while nobody is present.
        Returns how many alerts were queued."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self.factory() as session:
            if present_count(session, now=now, timeout=self.timeout) > 0:
                return 0
            last = func.coalesce(Conversation.last_message_at, Conversation.queued_at,
                                 Conversation.created_at)
            ids = session.scalars(
                select(Conversation.id)
                .where(Conversation.status == ConversationStatus.queued,
                       Conversation.priority == PRIORITY[Risk.acute],
                       last >= now - STALE_AFTER)
                .order_by(Conversation.queued_at)
            ).all()
            if not ids:
                return 0
            claims = dict(session.execute(
                select(Handoff.conversation_id, func.count(Handoff.claimed_at))
                .where(Handoff.conversation_id.in_(ids))
                .group_by(Handoff.conversation_id)
            ).all())
            keys = {cid: episode_key(cid, claims.get(cid, 0)) for cid in ids}
            done = set(session.scalars(select(Outbox.reply_to).where(
                Outbox.reply_to.in_(list(keys.values())))))
        queued = 0
        for conversation_id in ids:
            if queued >= ROUND_LIMIT:
                break
            if keys[conversation_id] not in done and self.check(conversation_id):
                queued += 1
        return queued

    def check(self, conversation_id: str) -> bool:
        """Queue the SMS if this conversation waits acute, nobody is present and this episode was
        not alerted yet. True when an SMS was queued now."""
        phone = self.settings.on_call_phone
        if phone is None:
            return False
        now = self.clock()
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None or not acute_waiting(conversation, now):
                return False  # the cheap answer for most turns, without a lock
        try:
            with self.factory() as session, session.begin():
                # Locked: a claim in between waits for this decision (PostgreSQL; SQLite writes
                # one at a time anyway).
                conversation = session.get(Conversation, conversation_id, with_for_update=True)
                if conversation is None or not acute_waiting(conversation, now):
                    return False
                if present_count(session, now=now, timeout=self.timeout) > 0:
                    return False
                number = episode(session, conversation_id)
                key = episode_key(conversation_id, number)
                if session.scalar(select(Outbox.id).where(Outbox.reply_to == key).limit(1)):
                    return False  # this episode was alerted already
                themes = list(conversation.themes or [])
                risk = conversation.highest_risk
                row = Outbox(
                    conversation_id=None,  # never in line with the parent's own replies
                    message_id=None,
                    reply_to=key,
                    seq=0,
                    channel=Channel.sms,
                    address_encrypted=self.vault.encrypt(phone),
                    text=sms_text(themes, risk, dashboard_link(self.settings.public_base_url,
                                                               conversation_id)),
                    scheduled_at=now,
                    next_attempt_at=now,
                )
                session.add(row)
                session.flush()
                session.add(AuditLog(action=ACTION, conversation_id=conversation_id, detail={
                    "episode": number, "outbox": row.id, "risk": risk.value, "themes": themes}))
                outbox_id = row.id
        except IntegrityError:
            return False  # another worker or process queued it a moment ago: once is enough
        logger.info("on-call alert queued for conversation %s (outbox %s)",
                    ref(conversation_id), outbox_id)
        wake(self.redis, self.settings.redis_prefix)
        return True
