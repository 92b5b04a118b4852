"""The shared vocabulary of the line, in one place: which queue a conversation waits in and its
priority there. Chat, phone, the pipeline's fallback and the desk all ask here; nothing here
imports anything above the triage types (architecture.md, level 1).

Danger kinds and when guidance comes first are bot.triage.types (`Danger`, `DANGER_KINDS`) and
bot.intents.guidance (`guidance_kind`); the texts are data/messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.triage.types import Risk, Route

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.hours import Schedule


class QueueName(str, enum.Enum):
    volunteer = "volunteer"
    professional = "professional"


# Priority within a queue: acute first, then high, concern, none; then waiting time.
PRIORITY: dict[Risk, int] = {Risk.acute: 0, Risk.high: 1, Risk.concern: 2, Risk.none: 3}


def queue_for(route: Route, preferred: QueueName | None = None) -> QueueName:
    """The queue a routed conversation waits in. Emergency and professional routes go to the
    professional queue and cannot be moved down; otherwise the parent's own choice counts."""
    if route in (Route.emergency, Route.professional):
        return QueueName.professional
    return preferred or QueueName.volunteer


def queue_for_risk(risk: Risk) -> QueueName:
    """The queue when only the risk is known (the bot failed before it could decide): high and
    acute wait for a professional, the rest for a volunteer."""
    return QueueName.professional if risk.rank >= Risk.high.rank else QueueName.volunteer


def priority_of(risk: Risk) -> int:
    return PRIORITY[risk]


@dataclass(frozen=True)
class WaitEstimate:
    """What the parent is told: minutes to wait, or when someone is there by the rota.

    - `people_on_shift`: the people PRESENT on shift for the queue now (handoff.presence), not
      merely with an open shift.
    - `minutes`: the expected wait; None when nobody is present.
    - `open_now`: whether the queue's opening hours include this moment.
    - `next_shift_starts`: when nobody is present, the next time the rota has someone (the
      queue's bot.hours.Schedule: the roster, or the opening hours without one): the next
      opening after hours, or, while the hours are open but nobody is online, the start of the
      next opening period after this one closes (None for a queue that never closes). None
      when someone is present, unless `closes_at` is set.
    - `closes_at`: set when someone is present but the expected wait runs past the end of the
      schedule's current period (the people there are expected only until then): that end;
      `next_shift_starts` is then when the schedule has someone again after it (None: nothing
      planned after it). None otherwise.
    """

    minutes: int | None
    next_shift_starts: datetime | None
    people_on_shift: int
    open_now: bool = False
    closes_at: datetime | None = None


class WaitEstimator(Protocol):
    """What the pipeline asks for the wait it tells a parent; handoff.estimate answers it (from
    who is present and how long conversations take), handed in by the composition root, so the
    pipeline does not import the handoff layer above it."""

    def __call__(self, session: Session, queue: QueueName, priority: int, now: datetime,
                 hours: Schedule) -> WaitEstimate:
        ...
