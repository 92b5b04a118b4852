"""Retention purge with a moved clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.retention import purge
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    Author,
    Block,
    Channel,
    Conversation,
    Direction,
    Message,
    Outbox,
    OutboxStatus,
)


def test_purge_deletes_old_transcripts_and_addresses(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    factory = db.session_factory(engine)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with db.transaction(factory) as session:
        for name, age in (("old", 31), ("fresh", 29)):
            conversation = Conversation(
                channel=Channel.web, pseudonym=name, address_encrypted=b"token",
                created_at=now - timedelta(days=60), last_message_at=now - timedelta(days=age),
            )
            conversation.messages.append(Message(channel=Channel.web, direction=Direction.inbound,
                                                 author=Author.parent, text=f"bericht {name}"))
            session.add(conversation)
        session.add(AuditLog(action="open_transcript", conversation_id="old"))
        session.add(Block(channel=Channel.web, pseudonym="ended", reason="r", expires_at=now - timedelta(days=1)))
        session.add(Block(channel=Channel.web, pseudonym="lifted", reason="r", expires_at=now + timedelta(days=9),
                          lifted_at=now - timedelta(hours=1)))
        session.add(Block(channel=Channel.web, pseudonym="running", reason="r", expires_at=now + timedelta(days=9)))

    with db.transaction(factory) as session:
        assert purge(session, now, retention_days=30) == 1
    with factory() as session:
        assert session.scalars(select(Conversation.pseudonym)).all() == ["fresh"]
        assert session.scalars(select(Message.text)).all() == ["bericht fresh"]
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 1
        assert session.scalars(select(Block.pseudonym)).all() == ["running"]

    # A month later the other one goes too.
    with db.transaction(factory) as session:
        assert purge(session, now + timedelta(days=2), retention_days=30) == 1
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    engine.dispose()


def test_purge_deletes_sent_reply_copies_of_gone_and_old_conversations(any_database_url: str) -> None:
    """The outbox keeps what was sent (it can quote the parent): a finished row goes with its
    conversation ("stop en wis" or retention) and at the latest after the period; a pending row
    (the wipe's own confirmation, on its way) stays until the worker is done with it."""
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    factory = db.session_factory(engine)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with db.transaction(factory) as session:
        for name, age in (("old", 31), ("fresh", 1)):
            conversation = Conversation(channel=Channel.web, pseudonym=name, created_at=now - timedelta(days=age),
                                        last_message_at=now - timedelta(days=age))
            session.add(conversation)
            session.flush()
            session.add(Outbox(conversation_id=conversation.id, reply_to=f"r-{name}", seq=0,
                               channel=Channel.web, text=f"samenvatting {name}", status=OutboxStatus.sent,
                               created_at=now - timedelta(days=age)))
        # Left by a wipe: the conversation is gone (SET NULL); one copy sent, the confirmation pending.
        session.add(Outbox(conversation_id=None, reply_to="r-wiped", seq=0, channel=Channel.web,
                           text="antwoord dat het bericht citeert", status=OutboxStatus.sent, created_at=now))
        session.add(Outbox(conversation_id=None, reply_to="r-wiped", seq=1, channel=Channel.web,
                           text="je gegevens zijn gewist", status=OutboxStatus.pending, created_at=now))
        # An old finished row of a living conversation (its conversation is fresh).
        fresh_id = session.scalar(select(Conversation.id).where(Conversation.pseudonym == "fresh"))
        session.add(Outbox(conversation_id=fresh_id, reply_to="r-fresh-old", seq=0, channel=Channel.web,
                           text="oud antwoord", status=OutboxStatus.failed, created_at=now - timedelta(days=40)))

    with db.transaction(factory) as session:
        purge(session, now, retention_days=30)
    with factory() as session:
        assert sorted(session.scalars(select(Outbox.text)).all()) == ["je gegevens zijn gewist", "samenvatting fresh"]
    engine.dispose()
