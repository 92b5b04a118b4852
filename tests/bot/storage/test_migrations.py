"""Migrations on SQLite and (when DATABASE_URL names one) PostgreSQL, and the models' rules."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from bot.storage import db
from bot.storage.crypto import AddressVault
from bot.storage.models import (
    AuditLog,
    Author,
    Base,
    Channel,
    Conversation,
    Direction,
    Handoff,
    Message,
    QueueName,
    Role,
    Shift,
    User,
)
from bot.triage.types import Risk

#: Every table the models know, and Alembic's own: a model without a migration (or a migration's
#: table no model knows) fails the test below.
TABLES = set(Base.metadata.tables) | {"alembic_version"}


@pytest.mark.empty_database
def test_upgrade_downgrade_upgrade(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    assert {"conversations", "catalogue_entries", "planned_shifts", "supervision_notes"} <= TABLES
    assert set(inspect(engine).get_table_names()) == TABLES
    db.downgrade(any_database_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(any_database_url)
    assert set(inspect(engine).get_table_names()) == TABLES
    engine.dispose()


def test_models_store_and_cascade(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    factory = db.session_factory(engine)
    vault = AddressVault(b"s" * 32)
    address = "+31687654321"
    with db.transaction(factory) as session:
        user = User(username="anna", display_name="Anna", password_hash="x", role=Role.volunteer)
        conversation = Conversation(
            channel=Channel.sms,
            pseudonym=vault.pseudonym("sms", address),
            address_encrypted=vault.encrypt(address),
            themes=["money", "housing"],
            highest_risk=Risk.high,
        )
        conversation.messages.append(
            Message(channel=Channel.sms, direction=Direction.inbound, author=Author.parent,
                    provider_message_id="SM1", text="huur 😟", text_masked="huur 😟",
                    triage={"theme": "money", "risk": "none"})
        )
        session.add_all([user, conversation])
        session.flush()
        session.add(Handoff(conversation_id=conversation.id, queue=QueueName.professional,
                            priority=2, reason="risk high"))
        session.add(Shift(user_id=user.id, queue=QueueName.volunteer))
        session.add(AuditLog(user_id=user.id, action="open_transcript", conversation_id=conversation.id))
        conversation_id = conversation.id

    with factory() as session:
        stored = session.get(Conversation, conversation_id)
        assert stored is not None
        assert stored.themes == ["money", "housing"] and stored.highest_risk is Risk.high
        assert vault.decrypt(stored.address_encrypted or b"") == address
        assert stored.messages[0].text == "huur 😟"

    # A repeated webhook delivery cannot store a second message.
    with pytest.raises(IntegrityError), db.transaction(factory) as session:
        session.add(Message(conversation_id=conversation_id, channel=Channel.sms,
                            direction=Direction.inbound, author=Author.parent,
                            provider_message_id="SM1", text="dubbel"))

    # No plain address anywhere in the database.
    with engine.connect() as connection:
        for table in ("conversations", "messages", "handoffs", "audit_log"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                assert "687654321" not in " ".join(str(v) for v in row)

    # Deleting a conversation deletes its messages and handoffs; the audit log stays.
    with db.transaction(factory) as session:
        session.delete(session.get(Conversation, conversation_id))
    with factory() as session:
        assert session.scalars(select(Message)).all() == []
        assert session.scalars(select(Handoff)).all() == []
        assert len(session.scalars(select(AuditLog)).all()) == 1
    engine.dispose()


def test_unknown_enum_value_is_refused(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO conversations (id, channel, pseudonym, language, status, themes, "
            "highest_risk, route, welcomed, created_at, updated_at) VALUES "
            "('x', 'fax', 'p', 'nl', 'bot', '[]', 'none', 'bot', false, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
    engine.dispose()
