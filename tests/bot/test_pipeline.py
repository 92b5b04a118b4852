"""The pipeline itself (bot/pipeline.py): the hot path a webhook calls. Triage runs before any
transaction; dedupe, lock, message, decision and outbox rows are one transaction (one commit);
duplicates, errors (the fallback) and a dead connection; the order and spacing of replies, and
the replies posted at once by the process that stored them (bot.delivery). On SQLite and, with
DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from bot import delivery
from bot.channels.base import InboundMessage, OutboundMessage, Sender, SendResult
from bot.config import load_settings
from bot.storage.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    OutboxStatus,
    aware,
    utcnow,
)
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.web.app import Services, build_services
from tests.channels.conftest import run_async

QUESTION = "hoe vraag ik een stadspas aan"  # answered by the bot itself


@pytest.fixture
def services(any_database_url: str, redis_url: str, tmp_path: Path,
             embedded_model: EmbeddedModel) -> Iterator[Services]:
    var = tmp_path / "var-pipeline"
    var.mkdir()
    settings = load_settings(
        OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=var, DATABASE_URL=any_database_url,
        REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"t{uuid.uuid4().hex[:12]}", NLU_BACKEND="embedded",
        REPLY_INTERVAL_SECONDS=0,
    )
    built = build_services(settings, triage=Triage.from_settings(settings, model=embedded_model))
    yield built
    run_async(built.close)


def inbound(services: Services, address: str, text: str, sid: str | None = None) -> InboundMessage:
    channel = Channel.telegram
    return InboundMessage(channel=channel, pseudonym=services.vault.pseudonym(channel.value, address),
                          address_encrypted=services.vault.encrypt(address),
                          provider_message_id=sid or uuid.uuid4().hex, text=text, received_at=utcnow())


class Commits:
    """Counts the database commits (and transactions begun) on an engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.commits = 0
        self.begins = 0

    def __enter__(self) -> Self:
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "begin", self._begin)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "begin", self._begin)

    def _commit(self, _connection: Any) -> None:
        self.commits += 1

    def _begin(self, _connection: Any) -> None:
        self.begins += 1


def rows_to(services: Services, address: str) -> list[Outbox]:
    pseudonym = services.vault.pseudonym(Channel.telegram.value, address)
    with services.factory() as session:
        ids = select(Conversation.id).where(Conversation.pseudonym == pseudonym)
        return list(session.scalars(select(Outbox).where(Outbox.conversation_id.in_(ids))
                                    .order_by(Outbox.scheduled_at, Outbox.seq)))


def test_one_commit_per_message(services: Services) -> None:
    address = f"p-{uuid.uuid4().hex[:8]}"
    for text in ("hallo", QUESTION, "dank je"):
        with Commits(services.engine) as counted:
            received = services.pipeline.process(inbound(services, address, text))
        assert received.handled and received.message_id is not None
        assert counted.commits == 1, text
    assert len(rows_to(services, address)) >= 3  # every message was answered


def test_triage_runs_before_any_transaction(services: Services) -> None:
    real = services.pipeline.triage
    seen: list[int] = []

    class Watching:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def run(self, text: str) -> Any:
            pool = services.engine.pool
            assert isinstance(pool, QueuePool)
            seen.append(pool.checkedout())  # connections in use right now
            return real.run(text)

    assert isinstance(services.engine.pool, QueuePool)
    services.pipeline.triage = Watching()  # type: ignore[assignment]
    services.pipeline.process(inbound(services, f"p-{uuid.uuid4().hex[:8]}", QUESTION))
    assert seen == [0]  # triaged once, holding no connection (so no lock, no transaction)


def test_a_duplicate_is_stored_and_answered_once(services: Services) -> None:
    address, sid = f"p-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    first = services.pipeline.process(inbound(services, address, QUESTION, sid))
    before = len(rows_to(services, address))
    again = services.pipeline.process(inbound(services, address, QUESTION, sid))
    assert not first.duplicate and again.duplicate
    assert again.message_id == first.message_id
    assert len(rows_to(services, address)) == before
    with services.factory() as session:
        assert session.scalar(select(Message.id).where(Message.provider_message_id == sid)) == first.message_id


def test_an_error_in_deciding_stores_the_message_and_sends_the_fallback(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("bot.pipeline.decide", broken)
    address = f"p-{uuid.uuid4().hex[:8]}"
    received = services.pipeline.process(inbound(services, address, QUESTION))
    assert received.handled and received.message_id is not None
    fallback = services.texts.get("fallback", "nl")
    assert [row.text for row in rows_to(services, address)] == [fallback]
    with services.factory() as session:
        message = session.get(Message, received.message_id)
        assert message is not None and message.handled_at is not None
        conversation = session.get(Conversation, received.conversation_id)
        assert conversation is not None and conversation.status is ConversationStatus.queued


def test_an_error_in_triage_stores_the_message_and_sends_the_fallback_once(services: Services) -> None:
    calls: list[str] = []

    class Failing:
        def run(self, text: str) -> Any:
            calls.append(text)
            raise RuntimeError("the model is broken")

    services.pipeline.triage = Failing()  # type: ignore[assignment]
    address = f"p-{uuid.uuid4().hex[:8]}"
    received = services.pipeline.process(inbound(services, address, QUESTION))
    assert received.handled and len(calls) == 1
    assert [row.text for row in rows_to(services, address)] == [services.texts.get("fallback", "nl")]


def test_a_dead_connection_is_tried_once_more(services: Services) -> None:
    """The first statement of the transaction meets a connection that died in the pool: the
    transaction runs again on a fresh one and the parent gets the real answer, not the
    fallback."""
    failed: list[bool] = []
    dbapi_error = services.engine.dialect.loaded_dbapi.OperationalError

    def die_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not failed and statement.lstrip().upper().startswith("SELECT"):
            failed.append(True)
            raise dbapi_error("server closed the connection unexpectedly")

    def as_disconnect(context: Any) -> None:
        if "closed the connection" in str(context.original_exception):
            context.is_disconnect = True

    event.listen(services.engine, "before_cursor_execute", die_once)
    event.listen(services.engine, "handle_error", as_disconnect)
    try:
        address = f"p-{uuid.uuid4().hex[:8]}"
        received = services.pipeline.process(inbound(services, address, QUESTION))
    finally:
        event.remove(services.engine, "before_cursor_execute", die_once)
        event.remove(services.engine, "handle_error", as_disconnect)
    assert failed == [True]
    assert received.handled
    texts = [row.text for row in rows_to(services, address)]
    assert texts and services.texts.get("fallback", "nl") not in texts


def test_replies_in_a_burst_are_spaced_and_wait_for_the_earlier_ones(services: Services) -> None:
    services.pipeline.settings = services.pipeline.settings.model_copy(
        update={"reply_interval_seconds": 5})
    address = f"p-{uuid.uuid4().hex[:8]}"
    first = services.pipeline.process(inbound(services, address, QUESTION), send_now=True)
    # Nothing waited: the reply may go at once, leased to this process (the worker leaves it).
    assert first.outbox_ids
    rows = rows_to(services, address)
    assert [row.id for row in rows] == list(first.outbox_ids)
    assert all((aware(row.next_attempt_at) or utcnow()) > utcnow() + timedelta(seconds=10) for row in rows)
    # The parent writes again before that reply went out: this one waits its turn, for the worker.
    second = services.pipeline.process(inbound(services, address, "hoi"), send_now=True)
    assert second.outbox_ids == ()
    later = [row for row in rows_to(services, address) if row.id not in first.outbox_ids]
    assert later
    assert min(r.scheduled_at for r in later) >= max(r.scheduled_at for r in rows) + timedelta(seconds=4.9)
    # Parts of one reply stay in order.
    assert [r.seq for r in later] == sorted(r.seq for r in later)


def test_a_follow_up_after_the_reply_went_out_is_answered_at_once(services: Services) -> None:
    services.pipeline.settings = services.pipeline.settings.model_copy(
        update={"reply_interval_seconds": 5})
    address = f"p-{uuid.uuid4().hex[:8]}"
    first = services.pipeline.process(inbound(services, address, QUESTION), send_now=True)
    second = services.pipeline.process(inbound(services, address, "hoi"), send_now=True)
    assert first.outbox_ids and second.outbox_ids == ()  # a burst: the first reply still waits
    with services.factory() as session, session.begin():
        session.execute(update(Outbox).where(Outbox.status == OutboxStatus.pending)
                        .values(status=OutboxStatus.sent, sent_at=utcnow()))
    # Every reply went out (a moment ago): the parent's next message is answered at once.
    third = services.pipeline.process(inbound(services, address, "dank je wel"), send_now=True)
    assert third.outbox_ids


class Recorder(Sender):
    channels = (Channel.telegram,)

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"tg-{len(self.sent)}")


def test_the_webhook_process_posts_the_reply_right_after_the_commit(services: Services) -> None:
    recorder = Recorder()
    services.senders[Channel.telegram] = recorder
    services.courier = delivery.Courier(services.worker())
    address = f"p-{uuid.uuid4().hex[:8]}"

    async def webhook() -> Any:
        received = await delivery.process(services, inbound(services, address, QUESTION))
        assert services.courier is not None
        await services.courier.drain()
        return received

    with Commits(services.engine) as counted:
        received = run_async(webhook)
    assert received.outbox_ids
    assert [m.outbox_id for m in recorder.sent] == list(received.outbox_ids)  # in order
    assert all(row.status is OutboxStatus.sent for row in rows_to(services, address))
    # The message with its decision, and the replies marked sent (a part's mark merges with
    # every other mark under way; alone, at most one per part).
    assert counted.commits <= 1 + len(received.outbox_ids)
    # The worker finds nothing left to send.
    assert run_async(lambda: services.worker().run_once()) == 0


class Statements:
    """Records the SQL statements run on an engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self) -> Self:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)

    def _statement(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(" ".join(statement.split()).upper())


def test_a_new_conversation_is_written_once_and_asks_nothing_it_knows(services: Services) -> None:
    """The first message of a sender: the conversation and its fact are inserted whole at the
    commit (never inserted, then updated), nothing asks for earlier replies of a conversation
    that did not exist, and "stored before?" and "blocked?" are one question."""
    address = f"p-{uuid.uuid4().hex[:8]}"
    with Statements(services.engine) as recorded:
        received = services.pipeline.process(inbound(services, address, QUESTION))
    assert received.handled and len(rows_to(services, address)) >= 1
    assert not [s for s in recorded.seen if s.startswith("UPDATE CONVERSATIONS SET")
                and "WELCOMED = WELCOMED" not in s]  # (SQLite's write lock is not an update)
    assert not [s for s in recorded.seen if s.startswith("UPDATE CONTACT_FACTS")]
    assert not [s for s in recorded.seen if "FROM OUTBOX" in s]
    assert not [s for s in recorded.seen if s.startswith("SELECT CONTACT_THEMES")]
    assert len([s for s in recorded.seen if "FROM BLOCKS" in s]) == 1
    with services.factory() as session:
        conversation = session.scalar(select(Conversation).where(
            Conversation.id == received.conversation_id))
        assert conversation is not None and conversation.fact_id is not None
        assert conversation.status is ConversationStatus.bot and conversation.welcomed


def test_the_courier_posts_the_rows_as_written_without_reading_them_back(services: Services) -> None:
    recorder = Recorder()
    services.senders[Channel.telegram] = recorder
    services.courier = delivery.Courier(services.worker())
    address = f"p-{uuid.uuid4().hex[:8]}"

    async def webhook() -> Any:
        received = await delivery.process(services, inbound(services, address, QUESTION))
        assert services.courier is not None
        await services.courier.drain()
        return received

    with Statements(services.engine) as recorded:
        received = run_async(webhook)
    assert [row[0] for row in received.outbox_rows] == list(received.outbox_ids)
    assert not [s for s in recorded.seen if s.startswith("SELECT") and "FROM OUTBOX" in s]
    stored = {row.id: row for row in rows_to(services, address)}
    assert [m.text for m in recorder.sent] == [stored[i].text for i in received.outbox_ids]
    assert [m.address for m in recorder.sent] == [address] * len(received.outbox_ids)
    assert all(stored[i].status is OutboxStatus.sent for i in received.outbox_ids)
