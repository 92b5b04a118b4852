"""Shared handoff vocabulary: queue priorities, which queue a route waits in, and the expected-wait
value the parent is told. The queues themselves are handoff.desk (SQL truth) and handoff.index
(the Redis index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.storage.models import QueueName
from bot.triage.types import Risk, Route

# Priority within a queue: acute first, then high, concern, none; then waiting time.
PRIORITY: dict[Risk, int] = {Risk.acute: 0, Risk.high: 1, Risk.concern: 2, Risk.none: 3}


def queue_for(route: Route, preferred: QueueName | None = None) -> QueueName:
    """The queue a routed conversation waits in. Emergency and professional routes go to the
    professional queue and cannot be moved down; otherwise the parent's own choice counts."""
    if route in (Route.emergency, Route.professional):
        return QueueName.professional
    return preferred or QueueName.volunteer


@dataclass(frozen=True)
class WaitEstimate:
    """What the parent is told: minutes to wait, or when the next shift starts."""

    minutes: int | None
    next_shift_starts: datetime | None
    people_on_shift: int
