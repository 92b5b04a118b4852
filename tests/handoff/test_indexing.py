"""The Redis queue index kept in line with SQL (handoff.indexing), through the desk with the real
pipeline, SQL and Redis: queueing and indexing, continuity (offered to the last helper first),
the index rebuilt after Redis lost it, and the place in the queue."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.storage.models import (
    ConversationStatus,
    QueueName,
)
from bot.triage.types import Risk
from bot.web.app import Services
from handoff.desk import Outcome
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.handoff.support import status
from tests.people import Parent, person


def test_asking_for_a_person_queues_and_indexes(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    assert status(services, conversation_id).status is ConversationStatus.queued
    assert status(services, conversation_id).preferred_kind is QueueName.volunteer
    assert services.desk.index.waiting(QueueName.volunteer) == [conversation_id]


def test_returning_parent_is_offered_to_last_helper_first(services: Services) -> None:
    parent = Parent(services)
    first = parent.wants_volunteer()
    sanne, mark = person(services, name="Sanne"), person(services, name="Mark")
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    services.desk.claim(first, sanne)
    services.desk.close(first, sanne, Outcome.helped, closing_note="Afgesproken dat ze terugkomt.")
    second = parent.wants_volunteer()
    assert second != first
    assert services.desk.claim_next(mark) is None  # offered to Sanne first for a while
    assert services.desk.snapshot(sanne).waiting[0].offered_to_me
    card = services.desk.card(second, sanne)
    assert card.earlier and card.earlier[0].outcome is Outcome.helped
    assert card.earlier[0].closing_note == "Afgesproken dat ze terugkomt."
    assert services.desk.claim_next(sanne) == second


def test_redis_flush_loses_nothing(services: Services) -> None:
    parents = [Parent(services) for _ in range(4)]
    ids = [p.wants_volunteer() for p in parents]
    assert services.desk.index.waiting(QueueName.volunteer) == ids
    # What a Redis restart without persistence does to the index: every key of it is gone.
    keys = list(services.redis.scan_iter(match=f"{services.desk.prefix}:*"))
    services.redis.delete(*keys)
    assert not services.desk.index.is_built()
    sanne = person(services)
    assert services.desk.snapshot(sanne).waiting[0].conversation_id == ids[0]  # rebuilt on use
    assert services.desk.index.waiting(QueueName.volunteer) == ids
    assert services.desk.claim_next(sanne) == ids[0]


def test_handoff_rebuild_command_restores_the_queue(settings: Settings, services: Services,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main

    ids = [Parent(services).wants_volunteer() for _ in range(3)]
    keys = list(services.redis.scan_iter(match=f"{services.desk.prefix}:*"))
    services.redis.delete(*keys)
    for name, value in {"OUDERTELEFOON_ENV": "test", "OUDERTELEFOON_VAR_DIR": str(settings.var_dir),
                        "DATABASE_URL": settings.effective_database_url,
                        "REDIS_URL": settings.redis_url or "",
                        "REDIS_KEY_PREFIX": settings.redis_prefix}.items():
        monkeypatch.setenv(name, value)
    assert main(["handoff", "rebuild"]) == 0
    assert services.desk.index.is_built()
    assert services.desk.index.waiting(QueueName.volunteer) == ids


def test_place_in_queue_follows_the_conversations_highest_risk(services: Services) -> None:
    from handoff.interfaces import PRIORITY

    parent = Parent(services)
    parent.says("ik kan het echt niet meer aan, ik huil de hele dag")
    parent.says("mens")
    conversation_id = parent.says("1")  # this message alone carries no risk
    conversation = status(services, conversation_id)
    assert conversation.status is ConversationStatus.queued
    assert conversation.highest_risk is not Risk.none
    assert conversation.priority == PRIORITY[conversation.highest_risk]
