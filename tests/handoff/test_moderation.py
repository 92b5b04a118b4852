"""Moderation (handoff.moderation), through the desk with the real pipeline, SQL and Redis: a
blocked sender gets one neutral message and nothing reaches the queue."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.storage.models import (
    Block,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    QueueName,
    Role,
)
from bot.web.app import Services
from handoff.desk import NotAllowed
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person


def test_a_blocked_sender_gets_one_neutral_message_and_nothing_queues(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    coordinator = person(services, Role.coordinator)
    with pytest.raises(NotAllowed):
        services.desk.block(conversation_id, person(services), "scheldt", 7)
    services.desk.block(conversation_id, coordinator, "Scheldt vrijwilligers uit", 7)
    assert services.desk.index.waiting(QueueName.volunteer) == []
    for text in ("hallo??", "ik wil iemand spreken", "mens"):
        assert parent.says(text) == ""
    with services.factory() as session:
        block = session.scalars(select(Block)).one()
        neutral = session.scalars(select(Outbox).where(Outbox.reply_to == block.id)).all()
        assert len(neutral) == 1 and "112" in neutral[0].text
        assert session.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.queued)) == 0
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.text == "ik wil iemand spreken")) == 0
