"""Shifts (handoff.shifts), through the desk with the real pipeline, SQL and Redis: claims of people
who went off shift or idle return to the queue."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    QueueName,
    Shift,
    utcnow,
)
from bot.web.app import Services
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.handoff.support import status
from tests.people import Parent, person


def test_going_off_shift_and_idle_claims_return_to_the_queue(settings: Settings, services: Services) -> None:
    parent_a, parent_b = Parent(services), Parent(services)
    a, b = parent_a.wants_volunteer(), parent_b.wants_volunteer()
    sanne, mark = person(services), person(services)
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    services.desk.claim(a, sanne)
    services.desk.claim(b, mark)
    assert services.desk.stop_shift(sanne.user_id) == 1
    assert status(services, a).status is ConversationStatus.queued
    # Mark's dashboard went away: past CLAIM_IDLE_MINUTES his claim returns too.
    long_ago = utcnow() - timedelta(minutes=settings.claim_idle_minutes + 1)
    with services.factory() as session, session.begin():
        shift = session.scalar(select(Shift).where(Shift.user_id == mark.user_id, Shift.ended_at.is_(None)))
        assert shift is not None
        shift.last_seen_at = shift.started_at = long_ago
        conversation = session.get(Conversation, b)
        assert conversation is not None
        conversation.claimed_at = long_ago
        for message in conversation.messages:
            if message.user_id == mark.user_id:
                message.created_at = long_ago
    assert services.desk.release_idle() == 1
    assert services.desk.index.waiting(QueueName.volunteer) == [a, b]  # places kept
