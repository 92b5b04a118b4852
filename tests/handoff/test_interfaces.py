from __future__ import annotations

from bot.storage.models import QueueName
from bot.triage.types import Risk, Route
from handoff.interfaces import PRIORITY, queue_for


def test_emergency_and_professional_cannot_be_moved_down() -> None:
    assert queue_for(Route.emergency, QueueName.volunteer) is QueueName.professional
    assert queue_for(Route.professional, QueueName.volunteer) is QueueName.professional
    assert queue_for(Route.volunteer) is QueueName.volunteer
    assert queue_for(Route.volunteer, QueueName.professional) is QueueName.professional


def test_priority_orders_by_risk() -> None:
    assert sorted(Risk, key=PRIORITY.__getitem__) == [Risk.acute, Risk.high, Risk.concern, Risk.none]
