"""The worker against a real HTTP fake of Twilio: retries keep the order and lose nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.channels.base import InboundMessage
from bot.channels.twilio import split_body
from bot.config import Settings
from bot.storage import db
from bot.storage.models import Channel, Outbox, OutboxStatus, utcnow
from bot.triage.engine import Triage
from bot.web.app import Services, build_senders, build_services
from bot.worker import Leader, Worker, backoff
from tests.channels.conftest import outbox_rows, run_async
from tests.channels.fake_twilio import FakeTwilio, twilio_settings

NUMBER = "+31687650000"


@pytest.fixture
def sms(settings: Settings, triage: Triage) -> Iterator[tuple[Services, FakeTwilio]]:
    with FakeTwilio() as fake:
        services = build_services(twilio_settings(settings, fake), triage=triage)
        yield services, fake
        run_async(services.close)


def test_a_failed_reply_holds_back_the_next_one_and_both_go_in_order(sms: tuple[Services, FakeTwilio]) -> None:
    services, fake = sms
    services.pipeline.process(InboundMessage(
        channel=Channel.sms, pseudonym=services.vault.pseudonym("sms", NUMBER),
        address_encrypted=services.vault.encrypt(NUMBER), provider_message_id="SM" + uuid.uuid4().hex,
        text="ik kan de huur niet betalen", received_at=utcnow()))
    assert len(outbox_rows(services)) == 2  # welcome + answer
    fake.fail_next(1)
    now = utcnow()
    assert run_async(Worker(services.factory, services.vault, services.senders, clock=lambda: now).run_once) == 0
    first, second = sorted(outbox_rows(services), key=lambda r: r.seq)
    assert first.attempts == 1 and second.attempts == 0
    # The second is not stuck behind a lease: it follows the first's next attempt.
    assert timedelta(0) < second.next_attempt_at.replace(tzinfo=None) - first.next_attempt_at.replace(tzinfo=None) < timedelta(seconds=1)
    later = now + backoff(1) + timedelta(seconds=1)
    assert run_async(Worker(services.factory, services.vault, services.senders, clock=lambda: later).run_once) == 2
    bodies = [m.body or "" for m in fake.to(NUMBER)]
    assert bodies[0].startswith("Hoi, je praat met de Oudertelefoon") and "Hier kun je terecht" in bodies[1]
    assert all(r.status.value == "sent" and r.address_encrypted is None for r in outbox_rows(services))


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
    assert backoff(30).total_seconds() == 900


# Several workers (issue 13): the order holds across processes, parts sent are in SQL, one leader.

def _inbound(services: Services, text: str) -> None:
    services.pipeline.process(InboundMessage(
        channel=Channel.sms, pseudonym=services.vault.pseudonym("sms", NUMBER),
        address_encrypted=services.vault.encrypt(NUMBER), provider_message_id="SM" + uuid.uuid4().hex,
        text=text, received_at=utcnow()))


def test_a_second_worker_never_takes_a_reply_while_an_earlier_one_is_in_flight(
    sms: tuple[Services, FakeTwilio],
) -> None:
    services, _ = sms
    _inbound(services, "ik kan de huur niet betalen")
    first, second = sorted(outbox_rows(services), key=lambda r: r.seq)
    now = utcnow()
    with services.factory() as session, session.begin():  # the second is due a little later
        session.get(Outbox, second.id).next_attempt_at = now + timedelta(seconds=2)
    one = Worker(services.factory, services.vault, services.senders, clock=lambda: now)
    assert [item[0] for item in one._lease()] == [first.id]  # in flight from here on
    later = now + timedelta(seconds=3)  # the second is due, the first still leased
    other = Worker(services.factory, services.vault, services.senders, clock=lambda: later)
    assert other._lease() == []  # it would pass the first
    one._finish_sent([(first.id, "SM1")])
    assert [item[0] for item in other._lease()] == [second.id]


def test_a_burst_is_leased_by_one_worker_in_order_and_by_nobody_else(
    sms: tuple[Services, FakeTwilio],
) -> None:
    services, _ = sms
    _inbound(services, "ik kan de huur niet betalen")
    rows = sorted(outbox_rows(services), key=lambda r: r.seq)
    now = utcnow() + timedelta(seconds=1)
    one = Worker(services.factory, services.vault, services.senders, clock=lambda: now)
    other = Worker(services.factory, services.vault, services.senders, clock=lambda: now)
    assert [item[0] for item in one._lease()] == [row.id for row in rows]
    assert other._lease() == []


def test_parts_sent_are_in_sql_so_another_worker_sends_only_the_rest(
    sms: tuple[Services, FakeTwilio], settings: Settings,
) -> None:
    services, fake = sms
    text = " ".join(f"zin {i} van een heel lang antwoord." for i in range(300))
    parts = split_body(text)
    assert len(parts) >= 3
    with services.factory() as session, session.begin():
        row = Outbox(channel=Channel.sms, address_encrypted=services.vault.encrypt(NUMBER),
                     text=text, reply_to=str(uuid.uuid4()), seq=0)
        session.add(row)
        session.flush()
        row_id = row.id
    fake.fail_next(1, status=503, after=1)  # the second part fails
    now = utcnow() + timedelta(seconds=1)
    assert run_async(Worker(services.factory, services.vault, services.senders,
                            clock=lambda: now).run_once) == 0
    with services.factory() as session:
        stored = session.get(Outbox, row_id)
        assert stored is not None and stored.parts_sent == 1 and stored.provider_message_id
    # Another process: senders of its own, nothing in their memory.
    others = build_senders(twilio_settings(settings, fake))
    later = now + backoff(1) + timedelta(seconds=61)
    try:
        assert run_async(Worker(services.factory, services.vault, others,
                                clock=lambda: later).run_once) == 1
    finally:
        for sender in set(others.values()):
            run_async(sender.close)
    bodies = [m.body or "" for m in fake.to(NUMBER)]
    assert bodies == parts  # each part once, in order
    with services.factory() as session:
        stored = session.get(Outbox, row_id)
        assert stored is not None and stored.status is OutboxStatus.sent
        assert stored.provider_message_id == fake.to(NUMBER)[-1].sid


def test_exactly_one_leader_and_the_next_takes_over(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engines = [db.make_engine(any_database_url) for _ in range(2)]
    first, second = Leader(engines[0]), Leader(engines[1])
    try:
        assert first.holds() is True
        assert second.holds() is False
        assert first.holds() is True  # asked again: still the leader
        first.release()  # a process that ends (or is killed: its connection closes)
        assert second.holds() is True
        assert first.holds() is False
    finally:
        first.release()
        second.release()
        for engine in engines:
            engine.dispose()
