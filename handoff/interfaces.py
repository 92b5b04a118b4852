"""The seam between the conversation core and the people who pick conversations up."""

from __future__ import annotations

import abc
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
class HandoffRequest:
    """A conversation that asks for a person."""

    conversation_id: str
    queue: QueueName
    risk: Risk
    reason: str
    language: str
    queued_at: datetime

    @property
    def priority(self) -> int:
        return PRIORITY[self.risk]


@dataclass(frozen=True)
class WaitEstimate:
    """What the parent is told: minutes to wait, or when the next shift starts."""

    minutes: int | None
    next_shift_starts: datetime | None
    people_on_shift: int


class HandoffQueue(abc.ABC):
    """Queues of conversations waiting for a person.

    Implementations keep SQL as the durable record and may index in Redis; every method is safe
    to call twice with the same arguments (a retried webhook must not queue a conversation twice).
    """

    @abc.abstractmethod
    def enqueue(self, request: HandoffRequest) -> None:
        """Put a conversation in its queue, or move it up if it is already waiting."""

    @abc.abstractmethod
    def claim(self, conversation_id: str, user_id: str) -> bool:
        """Claim one conversation; exactly one of many simultaneous callers gets True."""

    @abc.abstractmethod
    def claim_next(self, user_id: str, queues: tuple[QueueName, ...]) -> str | None:
        """Claim the most urgent conversation this person may take; its id, or None."""

    @abc.abstractmethod
    def release(self, conversation_id: str) -> None:
        """Return a claimed conversation to its queue, keeping its place."""

    @abc.abstractmethod
    def remove(self, conversation_id: str) -> None:
        """Take a conversation out of every queue (closed or deleted)."""

    @abc.abstractmethod
    def estimate_wait(self, queue: QueueName, now: datetime) -> WaitEstimate:
        """The honest expected wait for a new conversation in `queue`."""
