"""The outbox's duplicate window (issue 12, part B). Delivery is at least once: a worker killed
between the provider's answer and our commit sends that reply again. The window is kept small:
at most IN_FLIGHT sends at once, and each accepted reply marked sent at once (with the others
accepted meanwhile, in one transaction). bench/outbox_duplicates measures it under SIGKILL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from bot.channels.base import DeliveryError, OutboundMessage, Sender, SendResult
from bot.config import Settings
from bot.storage import db
from bot.storage.crypto import AddressVault
from bot.storage.models import Channel, Conversation, Outbox, OutboxStatus, utcnow
from bot.worker import BATCH, IN_FLIGHT, LEASE, Worker
from tests.channels.conftest import run_async


class CountingSender(Sender):
    channels = (Channel.sms,)

    def __init__(self, factory: object, fail: set[str] | None = None) -> None:
        self.factory = factory
        self.fail = fail or set()
        self.bodies: Counter[str] = Counter()
        self.in_flight = 0
        self.most = 0
        self.unmarked_seen: list[int] = []
        self.lock = threading.Lock()

    async def send(self, message: OutboundMessage) -> SendResult:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            if message.text in self.fail:
                raise DeliveryError("provider down", retryable=True)
            with self.lock:
                self.bodies[message.text] += 1
            return SendResult(provider_message_id=f"SM-{message.text}")
        finally:
            with self.lock:
                self.in_flight -= 1


def rows(settings: Settings, count: int) -> tuple[object, AddressVault]:
    url = settings.effective_database_url
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    vault = AddressVault(settings.secret)
    now = utcnow()
    with factory() as session, session.begin():
        for n in range(count):
            conversation = Conversation(channel=Channel.sms, pseudonym=f"dup-{n}", themes=[])
            session.add(conversation)
            session.flush()
            session.add(Outbox(conversation_id=conversation.id, reply_to=f"dup-{n}", seq=0,
                               channel=Channel.sms, address_encrypted=vault.encrypt(f"+316{n:08d}"),
                               text=f"antwoord {n}", scheduled_at=now, next_attempt_at=now))
    return factory, vault


def test_sends_in_flight_are_bounded_and_each_reply_is_marked_once(settings: Settings) -> None:
    factory, vault = rows(settings, 150)
    sender = CountingSender(factory)
    worker = Worker(factory, vault, {Channel.sms: sender})  # type: ignore[arg-type]

    async def deliver() -> int:
        total = 0
        while sent := await worker.run_once():
            total += sent
        return total

    assert run_async(deliver) == 150
    assert sender.most <= IN_FLIGHT and BATCH <= 4 * IN_FLIGHT
    assert len(sender.bodies) == 150 and set(sender.bodies.values()) == {1}
    with factory() as session:  # type: ignore[operator]
        stored = list(session.scalars(select(Outbox)))
    assert all(r.status is OutboxStatus.sent and r.attempts == 1 and r.address_encrypted is None
               and r.sent_at is not None and r.provider_message_id == f"SM-{r.text}" for r in stored)


def test_a_reply_is_marked_sent_before_its_conversation_sends_the_next(settings: Settings) -> None:
    """Marked right after the provider's answer, not at the end of the round: when the next
    reply of the same conversation goes out, the one before is already sent in SQL."""
    factory, vault = rows(settings, 1)
    now = utcnow()
    with factory() as session, session.begin():  # type: ignore[operator]
        first = session.scalars(select(Outbox)).one()
        session.add(Outbox(conversation_id=first.conversation_id, reply_to=first.reply_to, seq=1,
                           channel=Channel.sms, address_encrypted=first.address_encrypted,
                           text="tweede", scheduled_at=now, next_attempt_at=now))
    seen: list[str] = []

    class Checking(CountingSender):
        async def send(self, message: OutboundMessage) -> SendResult:
            if message.text == "tweede":
                with factory() as session:  # type: ignore[operator]
                    seen.extend(r.status.value for r in session.scalars(
                        select(Outbox).where(Outbox.seq == 0)))
            return await super().send(message)

    sender = Checking(factory)
    assert run_async(Worker(factory, vault, {Channel.sms: sender}).run_once) == 2  # type: ignore[arg-type]
    assert seen == ["sent"]


def test_a_failed_send_is_not_marked_and_is_retried(settings: Settings) -> None:
    factory, vault = rows(settings, 3)
    sender = CountingSender(factory, fail={"antwoord 1"})
    now = utcnow()
    assert run_async(Worker(factory, vault, {Channel.sms: sender},  # type: ignore[arg-type]
                            clock=lambda: now).run_once) == 2
    with factory() as session:  # type: ignore[operator]
        by_text = {r.text: r for r in session.scalars(select(Outbox))}
    assert by_text["antwoord 1"].status is OutboxStatus.pending
    assert by_text["antwoord 1"].attempts == 1
    assert by_text["antwoord 1"].address_encrypted is not None
    sender.fail.clear()
    later = now + LEASE + timedelta(seconds=1)
    assert run_async(Worker(factory, vault, {Channel.sms: sender},  # type: ignore[arg-type]
                            clock=lambda: later).run_once) == 1
    assert set(sender.bodies.values()) == {1}
