"""Retention purge with a moved clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from bot.retention import purge
from bot.storage import db
from bot.storage.models import AuditLog, Author, Block, Channel, Conversation, Direction, Message


def test_purge_deletes_old_transcripts_and_addresses(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    factory = db.session_factory(engine)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
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
