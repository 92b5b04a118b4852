"""Two installations on one Redis (issue 12, part B): every key goes under REDIS_KEY_PREFIX, so
neither drops the other's Telegram updates as replays nor wakes the other's worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.channels.base import InboundMessage
from bot.config import Settings, load_settings
from bot.storage.models import Channel, utcnow
from bot.storage.redis import connect, key, prefix_of
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.web.app import Services, build_services
from bot.worker import Worker, wake, wake_key
from handoff.events import channel
from tests.channels.conftest import run_async


def test_key_helper() -> None:
    assert key("ot", "seen", "telegram", "42") == "ot:seen:telegram:42"
    for bad in ("", "a:b"):
        with pytest.raises(ValueError):
            key(bad, "x")
    assert channel("inst-b") == "inst-b:events" and wake_key("inst-b") == "inst-b:outbox:wake"


def installation(var: Path, database_url: str, redis_url: str, prefix: str,
                 model: EmbeddedModel) -> Services:
    var.mkdir()
    settings = load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=var,
                             DATABASE_URL=database_url, REDIS_URL=redis_url,
                             REDIS_KEY_PREFIX=prefix, NLU_BACKEND="embedded",
                             REPLY_INTERVAL_SECONDS=0)
    return build_services(settings, triage=Triage.from_settings(settings, model=model))


@pytest.fixture
def two(settings: Settings, tmp_path: Path, redis_url: str,
        embedded_model: EmbeddedModel) -> Iterator[tuple[Services, Services]]:
    a = build_services(settings, triage=Triage.from_settings(settings, model=embedded_model))
    b = installation(tmp_path / "var-b", f"sqlite:///{tmp_path / 'b.db'}", redis_url,
                     f"b{uuid.uuid4().hex[:12]}", embedded_model)
    yield a, b
    for services in (a, b):
        client = services.redis
        names = list(client.scan_iter(match=f"{services.settings.redis_prefix}:*", count=1000))
        if names:
            client.delete(*names)
        run_async(services.close)


def telegram(services: Services, update_id: str, text: str = "hallo") -> InboundMessage:
    address = "chat-12345"
    return InboundMessage(channel=Channel.telegram,
                          pseudonym=services.vault.pseudonym("telegram", address),
                          address_encrypted=services.vault.encrypt(address),
                          provider_message_id=update_id, text=text, received_at=utcnow())


def test_the_same_update_id_is_processed_by_both_installations(
        two: tuple[Services, Services]) -> None:
    a, b = two
    update_id = f"9{uuid.uuid4().int % 10**9}"
    first = a.pipeline.process(telegram(a, update_id))
    assert first.message_id and not first.duplicate
    # Installation A deletes it ("verwijder mijn gegevens" / "stop en wis"): its replay memory
    # in Redis is what keeps a late redelivery out of A, and only out of A.
    wiped = a.pipeline.process(telegram(a, update_id + "1", "stop en wis"))
    assert wiped.handled
    again = a.pipeline.process(telegram(a, update_id))
    assert again.duplicate and again.message_id is None
    other = b.pipeline.process(telegram(b, update_id))
    assert other.message_id and not other.duplicate and other.handled
    redis = a.redis
    pa, pb = a.settings.redis_prefix, b.settings.redis_prefix
    assert redis.exists(f"{pa}:seen:telegram:{update_id}")
    assert redis.exists(f"{pb}:seen:telegram:{update_id}")
    assert not redis.exists(f"ot:seen:telegram:{update_id}")


def test_wake_ups_stay_in_their_installation(two: tuple[Services, Services]) -> None:
    a, b = two
    pa, pb = a.settings.redis_prefix, b.settings.redis_prefix
    redis = a.redis
    redis.delete(wake_key(pa), wake_key(pb))
    a.pipeline.process(telegram(a, uuid.uuid4().hex))  # a reply to send: A's worker is woken
    assert redis.llen(wake_key(pa)) == 1 and redis.llen(wake_key(pb)) == 0
    # The clients from `connect` carry their prefix: a worker or a wake-up given only the
    # client (as the service and the telephone line do) uses the right key.
    assert prefix_of(a.redis) == pa and prefix_of(b.redis) == pb
    assert a.worker().prefix == pa and b.worker().prefix == pb
    wake(b.redis)
    assert redis.llen(wake_key(pb)) == 1
    assert Worker(b.factory, b.vault, {}, redis_client=None).prefix == "ot"


def test_connect_binds_the_prefix(settings: Settings) -> None:
    client = connect(settings)
    try:
        assert prefix_of(client) == settings.redis_prefix
    finally:
        client.close()
