"""One parent, one open conversation: two first messages of a new sender arriving together open
one conversation and get one welcome (issue 12, part B). On SQLite and, with DATABASE_URL, on
PostgreSQL. Before the partial unique index this opened two conversations in about 70 of 100
tries on PostgreSQL: SELECT ... FOR UPDATE locks nothing while no row exists yet."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.channels.base import InboundMessage
from bot.config import load_settings
from bot.storage import db
from bot.storage.models import Channel, Conversation, ConversationStatus, Outbox, utcnow
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.web.app import Services, build_services
from tests.channels.conftest import run_async

PAIRS = 50
WELCOME_STARTS = ("Hoi, je praat met de Oudertelefoon", "Hi, this is the Oudertelefoon")


@pytest.fixture
def services(any_database_url: str, redis_url: str, tmp_path: Path,
             embedded_model: EmbeddedModel) -> Iterator[Services]:
    var = tmp_path / "var-race"
    var.mkdir()
    settings = load_settings(
        OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=var, DATABASE_URL=any_database_url,
        REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"t{uuid.uuid4().hex[:12]}", NLU_BACKEND="embedded",
        REPLY_INTERVAL_SECONDS=0,
    )
    built = build_services(settings, triage=Triage.from_settings(settings, model=embedded_model))
    yield built
    run_async(built.close)


def inbound(services: Services, address: str, text: str, channel: Channel = Channel.telegram
            ) -> InboundMessage:
    return InboundMessage(channel=channel, pseudonym=services.vault.pseudonym(channel.value, address),
                          address_encrypted=services.vault.encrypt(address),
                          provider_message_id=uuid.uuid4().hex, text=text, received_at=utcnow())


def together(services: Services, messages: list[InboundMessage]) -> list[BaseException]:
    """Process the messages at the same moment, one thread each."""
    barrier = threading.Barrier(len(messages))
    errors: list[BaseException] = []

    def send(message: InboundMessage) -> None:
        try:
            barrier.wait()
            services.pipeline.process(message)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=send, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_first_messages_together_open_one_conversation_with_one_welcome(
        services: Services) -> None:
    senders = []
    for n in range(PAIRS):
        address = f"race-{n}-{uuid.uuid4().hex[:6]}"
        senders.append(address)
        errors = together(services, [inbound(services, address, "hallo"),
                                     inbound(services, address, "mijn baby huilt de hele nacht")])
        assert not errors, [type(e).__name__ for e in errors]

    one_conversation = one_welcome = 0
    with services.factory() as session:
        for address in senders:
            pseudonym = services.vault.pseudonym(Channel.telegram.value, address)
            conversations = session.scalars(select(Conversation).where(
                Conversation.channel == Channel.telegram,
                Conversation.pseudonym == pseudonym)).all()
            if len(conversations) == 1 and len(conversations[0].messages) >= 2:
                one_conversation += 1
            welcomes = session.scalar(select(func.count()).select_from(Outbox).where(
                Outbox.conversation_id.in_([c.id for c in conversations]),
                Outbox.text.startswith(WELCOME_STARTS[0]) | Outbox.text.startswith(WELCOME_STARTS[1])))
            one_welcome += welcomes == 1
    assert (one_conversation, one_welcome) == (PAIRS, PAIRS)


def test_a_closed_conversation_does_not_count(services: Services) -> None:
    """After a conversation is closed the same sender opens a new one; two closed ones may stay."""
    address = "na-afsluiten"
    first = services.pipeline.process(inbound(services, address, "hallo")).conversation_id
    for _round in range(2):
        with services.factory() as session, session.begin():
            conversation = session.scalar(select(Conversation).where(
                Conversation.status != ConversationStatus.closed,
                Conversation.pseudonym == services.vault.pseudonym("telegram", address)))
            assert conversation is not None
            conversation.status = ConversationStatus.closed
            conversation.closed_at = utcnow()
        later = services.pipeline.process(inbound(services, address, "nog een vraag")).conversation_id
        assert later and later != first
    with services.factory() as session:
        statuses = session.scalars(select(Conversation.status).where(
            Conversation.pseudonym == services.vault.pseudonym("telegram", address))).all()
    assert sorted(s.value for s in statuses) == ["bot", "closed", "closed"]


def test_the_database_refuses_a_second_open_conversation(services: Services) -> None:
    pseudonym = "p" * 20
    with services.factory() as session, session.begin():
        session.add(Conversation(channel=Channel.sms, pseudonym=pseudonym, themes=[]))
    with pytest.raises(IntegrityError), services.factory() as session, session.begin():
        session.add(Conversation(channel=Channel.sms, pseudonym=pseudonym, themes=[]))
    # Another channel, or a closed one, is fine.
    with services.factory() as session, session.begin():
        session.add(Conversation(channel=Channel.whatsapp, pseudonym=pseudonym, themes=[]))
        session.add(Conversation(channel=Channel.sms, pseudonym=pseudonym, themes=[],
                                 status=ConversationStatus.closed))


@pytest.mark.empty_database
def test_migration_closes_older_open_duplicates(any_database_url: str) -> None:
    """A database from before 0007 may hold two open conversations of one sender: the busiest
    (claimed before queued before bot; then the newest) stays open, the others are closed with
    their open handoffs; the index is then made."""
    db.upgrade(any_database_url, "0006")
    engine = db.make_engine(any_database_url)
    rows = [  # id, pseudonym, status, created_at
        ("c-old-bot", "ouder-a", "bot", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("c-new-bot", "ouder-a", "bot", datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC)),
        ("c-claimed", "ouder-b", "claimed", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("c-queued", "ouder-b", "queued", datetime(2026, 12, 1, 8, 0, 2, tzinfo=UTC)),
        ("c-closed", "ouder-b", "closed", datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
        ("c-alone", "ouder-c", "queued", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
    ]
    with engine.begin() as connection:
        for conversation_id, pseudonym, status, created in rows:
            connection.execute(text(
                "INSERT INTO conversations (id, channel, pseudonym, language, status, themes, "
                "highest_risk, route, welcomed, created_at, updated_at) VALUES (:id, 'sms', :p, "
                "'nl', :s, '[]', 'none', 'bot', false, :c, :c)"),
                {"id": conversation_id, "p": pseudonym, "s": status, "c": created})
        connection.execute(text(
            "INSERT INTO handoffs (id, conversation_id, queue, priority, reason, status, created_at) "
            "VALUES ('h-1', 'c-queued', 'volunteer', 3, 'x', 'queued', :c)"),
            {"c": datetime(2026, 12, 1, 8, 0, 2, tzinfo=UTC)})
    db.upgrade(any_database_url)
    with engine.connect() as connection:
        status = dict(connection.execute(text("SELECT id, status FROM conversations")).all())
        handoff = connection.execute(text("SELECT status, outcome FROM handoffs")).one()
    assert status == {"c-old-bot": "closed", "c-new-bot": "bot", "c-claimed": "claimed",
                      "c-queued": "closed", "c-closed": "closed", "c-alone": "queued"}
    assert tuple(handoff) == ("closed", "duplicate")
    db.downgrade(any_database_url, "0006")
    db.upgrade(any_database_url)
    engine.dispose()
