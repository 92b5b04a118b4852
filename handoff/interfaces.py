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
    """What the parent is told: minutes to wait, or when someone is there by the rota.

    - `people_on_shift`: the people PRESENT on shift for the queue now (handoff.presence), not
      merely with an open shift.
    - `minutes`: the expected wait; None when nobody is present.
    - `open_now`: whether the queue's opening hours include this moment.
    - `next_shift_starts`: when nobody is present, the next time the rota has someone: the next
      opening after hours, or, while the hours are open but nobody is online, the start of the
      next opening period after this one closes (None for a queue that never closes). None
      when someone is present.
    """

    minutes: int | None
    next_shift_starts: datetime | None
    people_on_shift: int
    open_now: bool = False
