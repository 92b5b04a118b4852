"""What every part of the desk shares: who acts (Actor and the rule of what they may take), the
services (SQL, Redis, texts, catalogue, clock), and the few writes every action makes: the audit
log, a live event, a text for the parent through the outbox.

SQL is the durable truth of every conversation's status and every handoff event (the audit log);
Redis (handoff.index) is the fast index. Texts for the parent go through the outbox, like every
other reply. No words for people here: texts come from data/messages (Texts), labels and refusals
are said by the web layer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.hours import Schedule, parse_hours
from bot.intents.catalogue import Catalogue
from bot.intents.messages import Texts
from bot.privacy import mask
from bot.rules import QueueName
from bot.storage.models import (
    AuditLog,
    Author,
    Channel,
    Conversation,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    Role,
    role_may_take,
    role_queues,
    utcnow,
)
from bot.storage.outbox import PART_GAP, add_reply, next_slot, wake
from bot.triage.types import Risk
from handoff.events import Event, publish
from handoff.index import QueueIndex

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 2000
#: Risks whose conversations everyone on shift sees, in every queue.
URGENT = (Risk.acute, Risk.high)


class Outcome(str, enum.Enum):
    """How a conversation ended (chosen by the person who closes it; counted by stats)."""

    helped = "helped"
    referred_service = "referred_service"
    referred_network = "referred_network"
    emergency_services = "emergency_services"
    no_response = "no_response"


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


def priority_of(conversation: Conversation) -> int:
    return conversation.priority if conversation.priority is not None else 3


@dataclass
class DeskContext:
    """The services every part of the desk uses, and the writes they all make. `clock` may be
    replaced (tests move time); every part reads it from here."""

    settings: Settings
    factory: sessionmaker[Session]
    redis: redis.Redis
    texts: Texts
    catalogue: Catalogue
    clock: Callable[[], datetime] = utcnow
    prefix: str = "ot"
    index: QueueIndex = field(init=False)
    zone: ZoneInfo = field(init=False)
    #: When someone is expected per queue: the opening hours; the Desk puts the roster here.
    hours: dict[QueueName, Schedule] = field(init=False)

    def __post_init__(self) -> None:
        self.index = QueueIndex(self.redis, prefix=self.prefix)
        self.zone = ZoneInfo(self.settings.timezone)
        self.hours = {
            QueueName.volunteer: parse_hours(self.settings.volunteer_hours),
            QueueName.professional: parse_hours(self.settings.professional_hours),
        }

    # live events and the audit log ---------------------------------------------------------------

    def publish(self, kind: str, conversation: Conversation | None = None, user_id: str | None = None,
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
    def audit(session: Session, actor: Actor | None, action: str, conversation_id: str | None,
              **detail: Any) -> None:
        session.add(AuditLog(user_id=actor.user_id if actor is not None else None, action=action,
                             conversation_id=conversation_id, detail=detail or None))

    def wake(self) -> None:
        wake(self.redis, self.prefix)

    # texts for the parent -----------------------------------------------------------------------

    def send(self, session: Session, conversation: Conversation, texts: Sequence[str], *,
             user_id: str | None, author: Author = Author.person) -> None:
        """Store texts for the parent and queue them on their own channel, through the outbox's
        one writer (bot.storage.outbox: spaced only inside a burst). Call `wake` after the commit."""
        now = self.clock()
        slot, _ = next_slot(session, conversation.id, now, self.settings.reply_interval_seconds)
        for seq, text in enumerate(texts):
            message = Message(channel=conversation.channel, direction=Direction.outbound, author=author,
                              text=text, text_masked=mask(text), user_id=user_id,
                              created_at=now + timedelta(milliseconds=seq + 1))
            conversation.messages.append(message)
            session.flush()
            if conversation.channel is Channel.phone:
                continue  # said on the line, not sent: the transcript keeps it for the card
            add_reply(session, channel=conversation.channel, address_encrypted=conversation.address_encrypted,
                      text=text, reply_to=message.id, seq=0, at=slot + PART_GAP * seq,
                      conversation_id=conversation.id, message_id=message.id)
        conversation.last_message_at = now

    @staticmethod
    def lang(conversation: Conversation) -> str:
        return "en" if conversation.language == "en" else "nl"

    def role_text(self, actor: Actor, lang: str) -> str:
        return self.texts.get(f"role_{actor.role.value}", lang)

    # the handoff rows ---------------------------------------------------------------------------

    @staticmethod
    def open_handoff(session: Session, conversation_id: str) -> Handoff | None:
        """The conversation's handoff that is still waiting or claimed (the newest)."""
        return session.scalar(
            select(Handoff)
            .where(Handoff.conversation_id == conversation_id,
                   Handoff.status.in_((HandoffStatus.queued, HandoffStatus.claimed)))
            .order_by(Handoff.created_at.desc())
            .limit(1))
