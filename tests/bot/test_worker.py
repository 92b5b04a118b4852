"""The worker against a real HTTP fake of Twilio: retries keep the order and lose nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Iterator

import pytest

from bot.channels.base import InboundMessage
from bot.config import Settings
from bot.storage.models import Channel, utcnow
from bot.triage.engine import Triage
from bot.web.app import Services, build_services
from bot.worker import Worker, backoff
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
