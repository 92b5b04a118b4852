"""SQLAlchemy 2 models: the durable truth of every conversation.

Plain phone numbers and chat ids never appear here except encrypted in
`Conversation.address_encrypted` (and a volunteer's own call-back number in
`User.phone_encrypted`). Statistics that must outlive the transcripts get their own tables in a
later migration.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.rules import QueueName
from bot.triage.types import Risk, Route


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every time we store is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def new_id() -> str:
    return str(uuid.uuid4())


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the enum's value (the taxonomy id), as a VARCHAR with a CHECK, so adding a value
    # later needs no ALTER TYPE on PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Channel(str, enum.Enum):
    web = "web"
    telegram = "telegram"
    sms = "sms"
    whatsapp = "whatsapp"
    phone = "phone"


class ConversationStatus(str, enum.Enum):
    bot = "bot"
    queued = "queued"
    claimed = "claimed"
    closed = "closed"


class Direction(str, enum.Enum):
    inbound = "inbound"
    outbound = "outbound"


class Author(str, enum.Enum):
    parent = "parent"
    bot = "bot"
    person = "person"


class HandoffStatus(str, enum.Enum):
    queued = "queued"
    claimed = "claimed"
    returned = "returned"
    transferred = "transferred"
    closed = "closed"


class Role(str, enum.Enum):
    volunteer = "volunteer"
    professional = "professional"
    coordinator = "coordinator"


def role_may_take(role: Role, queue: QueueName | None, *, acute: bool = False,
                  professional_present: bool = True) -> bool:
    """Volunteers take the volunteer queue; professionals and coordinators take both. An acute
    conversation in the professional queue may be taken by a volunteer too while no professional
    is present on shift (handoff.presence): danger now does not wait for the rota."""
    if queue is QueueName.volunteer or role in (Role.professional, Role.coordinator):
        return True
    return acute and not professional_present


def role_queues(role: Role) -> tuple[QueueName, ...]:
    """The queues a role sees, the most urgent kind first."""
    if role is Role.volunteer:
        return (QueueName.volunteer,)
    return (QueueName.professional, QueueName.volunteer)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    address_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="nl")
    status: Mapped[ConversationStatus] = mapped_column(
        _enum(ConversationStatus, "conversation_status"), default=ConversationStatus.bot
    )
    themes: Mapped[list[str]] = mapped_column(JSON, default=list)
    highest_risk: Mapped[Risk] = mapped_column(_enum(Risk, "risk"), default=Risk.none)
    route: Mapped[Route] = mapped_column(_enum(Route, "route"), default=Route.bot)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    welcomed: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the bot waits for from the parent ("choose_queue", "confirm_delete", "helped"), if anything.
    awaiting: Mapped[str | None] = mapped_column(String(32), nullable=True)
    queue: Mapped[QueueName | None] = mapped_column(_enum(QueueName, "queue_name"), nullable=True)
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When the parent was last told, while waiting, that their message was added.
    waiting_notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The parent's own choice of volunteer or professional, when they made one (a skill of the
    # queue entry; `queue` is where the conversation waits now).
    preferred_kind: Mapped[QueueName | None] = mapped_column(
        _enum(QueueName, "preferred_kind"), nullable=True
    )
    claimed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_conversations_claimed_by_users"),
        nullable=True, index=True,
    )
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set when the parent wrote something acute while a person had the conversation; cleared when
    # that person acknowledges it.
    acute_alert_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A catalogue entry id the person asked consent for ("may we send you a referral summary?").
    pending_referral: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The anonymous statistics row of this contact (bot.storage.facts); the link dies with the transcript.
    fact_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Phone: Twilio's CallSid while the caller is on the line (waiting in the queue); None once the
    # call ended, so a claim then calls back instead of connecting the waiting caller.
    call_sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Supervision (handoff.supervision): the person who has it asked the supervisors on shift for
    # help ("vraag hulp"); cleared when a supervisor opens or takes it, or they withdraw it. It
    # counts only while the one who asked still has the conversation.
    help_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    help_requested_by: Mapped[str | None] = mapped_column(String(36), nullable=True)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.created_at",
    )
    handoffs: Mapped[list[Handoff]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_conversations_status_created", "status", "created_at"),
        # One open conversation per sender: two first messages arriving together cannot open two
        # (the pipeline inserts, and on this index's refusal takes the one that won).
        Index("uq_conversations_open_sender", "channel", "pseudonym", unique=True,
              postgresql_where=sql_text("status <> 'closed'"),
              sqlite_where=sql_text("status <> 'closed'")),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    text_masked: Mapped[str] = mapped_column(Text, default="")
    media_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set once the bot has decided its reply to this inbound message (NULL: still to do).
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The volunteer or professional who wrote an outbound message (author person).
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_messages_user_id_users"), nullable=True
    )
    # Catalogue entry ids a bot message gave the parent (for the handover card).
    catalogue_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    __table_args__ = (
        # A repeated webhook delivery can never store a second message.
        UniqueConstraint("channel", "provider_message_id", name="uq_messages_provider_id"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Languages this person can help in (ISO codes); Dutch is assumed for everyone.
    languages: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["nl"])
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def may_take(self, queue: QueueName) -> bool:
        return self.active and role_may_take(self.role, queue)

    @property
    def queues(self) -> tuple[QueueName, ...]:
        return role_queues(self.role)


class Handoff(Base):
    __tablename__ = "handoffs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    queue: Mapped[QueueName] = mapped_column(_enum(QueueName, "queue_name"))
    priority: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[HandoffStatus] = mapped_column(
        _enum(HandoffStatus, "handoff_status"), default=HandoffStatus.queued
    )
    claimed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # A transfer note from the person who handed it on: part of the next handover card.
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    corrected_theme: Mapped[str | None] = mapped_column(String(32), nullable=True)
    corrected_themes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    referred_to: Mapped[str | None] = mapped_column(String(64), nullable=True)  # catalogue entry id
    closing_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When the warm handover went to the parent: at the claimer's first opening of the
    # conversation, once per claim (a call is connected instead, without a text).
    greeted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    conversation: Mapped[Conversation] = relationship(back_populates="handoffs")

    __table_args__ = (Index("ix_handoffs_queue_status", "queue", "status"),)


class Shift(Base):
    __tablename__ = "shifts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    queue: Mapped[QueueName] = mapped_column(_enum(QueueName, "queue_name"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Refreshed while the person's dashboard is open; an idle claim returns to the queue.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditLog(Base):
    """Who did what to which conversation. Survives the conversation itself (no foreign key)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class OutboxStatus(str, enum.Enum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # gave up after the last retry
    undeliverable = "undeliverable"  # e.g. WhatsApp's 24-hour window closed and no template


class Outbox(Base):
    """Replies waiting to go out. Written in the same transaction as the decision to send them;
    the worker delivers them with retries. Each row carries its own encrypted address, so a
    confirmation can still reach a parent whose conversation was just deleted; the address is
    wiped once the row is done."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True, index=True
    )
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The inbound message this answers, and the position in the reply: unique together, so a
    # redelivered webhook or a replayed decision can never send the same reply twice.
    reply_to: Mapped[str | None] = mapped_column(String(36), nullable=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    address_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the reply was meant to go (replies to one conversation are spaced); never moved.
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the worker may (re)try it: moved by leases and backoff.
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A reply too long for one provider message goes out in parts: how many the provider
    # already accepted (their provider id in provider_message_id), so a retry by any worker
    # sends only the rest.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("reply_to", "seq", name="uq_outbox_reply_seq"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # The worker leases only the oldest pending row of a conversation (bot.worker).
        Index("ix_outbox_conversation_order", "conversation_id", "status", "scheduled_at", "seq"),
    )


class UserSession(Base):
    """A dashboard login. The cookie holds a random token; only its SHA-256 is stored, so a
    database dump gives no usable session. Deactivating a user ends their sessions."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Block(Base):
    """A sender blocked by a coordinator (by pseudonym, never by number), until `expires_at`."""

    __tablename__ = "blocks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the sender got the one neutral message.
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StandardText(Base):
    """Short standard texts coordinators keep, for quick insertion in a reply."""

    __tablename__ = "standard_texts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Correction(Base):
    """Where the bot was wrong: the themes it gave and the ones the person says are right, with
    the parent's words masked (no numbers, e-mail addresses, postcodes). For the coordinators'
    review and the learning loop; the link to the conversation goes when it is purged."""

    __tablename__ = "corrections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True, index=True
    )
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    predicted: Mapped[list[str]] = mapped_column(JSON, default=list)
    corrected: Mapped[list[str]] = mapped_column(JSON, default=list)
    texts_masked: Mapped[list[str]] = mapped_column(JSON, default=list)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The coordinator's review: True accepted (exported as training data), False rejected.
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_corrections_reviewed_by_users"), nullable=True
    )


class Verdict(str, enum.Enum):
    """The parent's own answer to "Heb je hier iets aan gehad?"."""

    yes = "yes"
    somewhat = "somewhat"
    no = "no"


class ContactFact(Base):
    """One anonymous row per contact (conversation), for the statistics. No text, no pseudonym, no
    address, no user: it outlives the transcript (the retention purge keeps it), and the link from
    the conversation (`Conversation.fact_id`) goes when the conversation is purged or deleted.
    Times are kept to the hour."""

    __tablename__ = "contact_facts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)  # start, to the hour
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    language: Mapped[str] = mapped_column(String(8), default="nl")
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    themes: Mapped[list[str]] = mapped_column(JSON, default=list)
    risk: Mapped[Risk] = mapped_column(_enum(Risk, "risk"), default=Risk.none)
    route: Mapped[Route] = mapped_column(_enum(Route, "route"), default=Route.bot)
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_messages: Mapped[int] = mapped_column(Integer, default=0)
    catalogue_given: Mapped[list[str]] = mapped_column(JSON, default=list)
    handed_over: Mapped[bool] = mapped_column(Boolean, default=False)
    queue: Mapped[QueueName | None] = mapped_column(_enum(QueueName, "queue_name"), nullable=True)
    waited_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    handled_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Queued but never picked up: the parent left (stopped, deleted, or the conversation was purged).
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    referred_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    corrected: Mapped[bool] = mapped_column(Boolean, default=False)
    corrected_themes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    verdict: Mapped[Verdict | None] = mapped_column(_enum(Verdict, "verdict"), nullable=True)

    __table_args__ = (Index("ix_contact_facts_channel_hour", "channel", "hour"),)


class ContactTheme(Base):
    """A contact's themes, one row each, so themes are counted in SQL (a contact may have several)."""

    __tablename__ = "contact_themes"

    fact_id: Mapped[str] = mapped_column(ForeignKey("contact_facts.id", ondelete="CASCADE"), primary_key=True)
    theme: Mapped[str] = mapped_column(String(32), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PlannedShift(Base):
    """A shift on the roster (issue 15): who is planned for which queue, from when to when.
    Planned is not present: handoff.presence (Shift) decides who is really there; the roster says
    when someone is expected (handoff.roster). `series_id` ties the weeks of "herhaal wekelijks"."""

    __tablename__ = "planned_shifts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    queue: Mapped[QueueName] = mapped_column(_enum(QueueName, "queue_name"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    series_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_planned_shifts_queue_starts_at", "queue", "starts_at"),)


class SupervisionNote(Base):
    """A supervisor's note to the person who has a conversation (handoff.supervision). Staff text
    for that person only: never sent to the parent, never in the transcript or the outbox, never
    logged. Stored as written (not encrypted, like transfer and closing notes) and deleted with
    the conversation (retention purge, "verwijder mijn gegevens")."""

    __tablename__ = "supervision_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # The person who had the conversation when it was written: only they see it.
    to_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --------------------------------------------------------------------------- the catalogue (0009)


class CatalogueRecord(Base):
    """One catalogue entry as coordinators keep it (issue 15). `data` holds the entry's fields in
    the shape of data/aanbod's YAML, validated by bot.intents.catalogue.CatalogueEntry on every
    write; whether it is checked (`checked_at`, `checked_by`) and published are columns, not data.
    `file` and `position` keep the YAML file and the order it is exported to."""

    __tablename__ = "catalogue_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    file: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    # None: nobody checked it (or the check went with a change of its facts).
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # None with a check: checked in the reviewed YAML (seeded or imported), not in the dashboard.
    checked_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_catalogue_entries_checked_by_users"),
        nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL", name="fk_catalogue_entries_updated_by_users"),
        nullable=True)
    # Raised by every change: an edit form carries it, so two people cannot overwrite each other.
    version: Mapped[int] = mapped_column(Integer, default=1)


class CatalogueState(Base):
    """The catalogue as a whole, one row (id 1): its version, raised in the same transaction as
    every change (each process compares it with the version it loaded, bot.catalogue_service),
    the best entries per theme (data/aanbod/best.yml) and each YAML file's header comment."""

    __tablename__ = "catalogue_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    best: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
