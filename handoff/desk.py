"""The desk: where a conversation meets a person. A thin composition of the features, for the web
layer, the worker's round and the voice channel:

- handoff.indexing: the Redis queue index kept in line with SQL (handoff.index is the index);
- handoff.claims: claiming (one winner), claim-next, the warm handover, a call taken;
- handoff.actions: reply, return to the queue, transfer, close, referral consent, alerts seen;
- handoff.shifts, handoff.availability and handoff.presence: shifts, the heartbeat, who is
  really there and what that allows;
- handoff.moderation: blocks and standard texts (coordinators);
- handoff.card: the handover card and transcript; handoff.queue_view: the queue page.
- handoff.supervision: the live list, read-only opening, notes, takeover, "vraag hulp".

SQL is the durable truth of every conversation's status and every handoff event (the audit log);
Redis is the fast index that orders the queues and makes a claim atomic. Refusals are domain errors
(handoff.errors) without HTTP codes or Dutch words: the web layer says them (bot.labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.hours import Schedule
from bot.intents.catalogue import Catalogue
from bot.intents.messages import Texts
from bot.rules import QueueName
from bot.storage.blocks import active_block
from bot.storage.models import Block, StandardText, utcnow
from handoff.actions import Actions
from handoff.availability import HEARTBEAT_EVERY, OnShift, Presence
from handoff.card import CardMessage, Cards, Earlier, HandoverCard, Urgency
from handoff.claims import Claims, PhoneConnector
from handoff.context import (
    MAX_NOTE_CHARS,
    MAX_REPLY_CHARS,
    URGENT,
    Actor,
    DeskContext,
    Outcome,
    may_take,
    queues_of,
    ref,
)
from handoff.errors import Conflict, DeskError, Invalid, NotAllowed, NotFound
from handoff.index import QueueIndex
from handoff.indexing import IndexKeeper
from handoff.moderation import Moderation
from handoff.queue_view import QueueItem, QueueSnapshot, QueueView
from handoff.roster import Roster, RosterCache, roster_schedules
from handoff.shifts import Shifts
from handoff.supervision import Supervision

__all__ = [
    "HEARTBEAT_EVERY", "MAX_NOTE_CHARS", "MAX_REPLY_CHARS", "URGENT", "Actor", "CardMessage", "Conflict",
    "Desk", "DeskError", "Earlier", "HandoverCard", "Invalid", "NotAllowed", "NotFound", "OnShift", "Outcome",
    "QueueItem", "QueueSnapshot", "Urgency", "active_block", "may_take", "queues_of", "ref",
]


class Desk:
    """The features of the desk, built once on shared services (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        redis_client: redis.Redis,
        texts: Texts,
        catalogue: Catalogue,
        *,
        clock: Callable[[], datetime] = utcnow,
        prefix: str = "ot",
    ) -> None:
        self.ctx = DeskContext(settings, factory, redis_client, texts, catalogue, clock=clock, prefix=prefix)
        # The roster (handoff.roster): each queue's schedule is its planned shifts, with the opening
        # hours as fallback; the composition root hands the pipeline these same schedules.
        self.roster_cache = RosterCache(factory, redis_client, prefix=prefix)
        self.ctx.hours = roster_schedules(self.roster_cache, settings)
        self.roster = Roster(self.ctx, self.roster_cache)
        self.presence = Presence(self.ctx)
        self.keeper = IndexKeeper(self.ctx, self.presence)
        self.claims = Claims(self.ctx, self.presence, self.keeper)
        self.actions = Actions(self.ctx, self.keeper, self.claims)
        self.shifts = Shifts(self.ctx, self.presence, self.actions)
        self.moderation = Moderation(self.ctx, self.keeper)
        self.cards = Cards(self.ctx, self.presence)
        self.queue_view = QueueView(self.ctx, self.presence, self.keeper)
        self.supervision = Supervision(self.ctx, self.presence, self.keeper, self.claims, self.cards)

    # the shared services ------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def factory(self) -> sessionmaker[Session]:
        return self.ctx.factory

    @property
    def redis(self) -> redis.Redis:
        return self.ctx.redis

    @property
    def texts(self) -> Texts:
        return self.ctx.texts

    @property
    def catalogue(self) -> Catalogue:
        return self.ctx.catalogue

    @property
    def prefix(self) -> str:
        return self.ctx.prefix

    @property
    def index(self) -> QueueIndex:
        return self.ctx.index

    @property
    def zone(self) -> ZoneInfo:
        return self.ctx.zone

    @property
    def hours(self) -> dict[QueueName, Schedule]:
        return self.ctx.hours

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.ctx.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.ctx.clock = clock  # every feature reads it from the context

    @property
    def on_claim_phone(self) -> PhoneConnector | None:
        """Phone: after a person claims a call or a callback request, connect them (the voice
        channel's CallConnector, set when Twilio is on). Called outside the transaction."""
        return self.claims.on_claim_phone

    @on_claim_phone.setter
    def on_claim_phone(self, connector: PhoneConnector | None) -> None:
        self.claims.on_claim_phone = connector

    @property
    def presence_timeout(self) -> timedelta:
        return self.presence.timeout

    @property
    def heartbeat_every(self) -> timedelta:
        return self.presence.heartbeat_every

    # the worker's round and the pipeline ---------------------------------------------------------

    def tick(self) -> None:
        """The worker's periodic round: keep the index whole, end the shifts of people long
        gone, return idle claims, and tell the dashboards when someone came or went."""
        self.keeper.sync()
        self.shifts.end_stale_shifts()
        self.shifts.release_idle()
        self.shifts.watch_presence()

    def rebuild(self) -> int:
        return self.keeper.rebuild()

    def ensure_index(self) -> None:
        self.keeper.ensure()

    def sync(self) -> None:
        self.keeper.sync()

    def index_conversation(self, conversation_id: str) -> None:
        self.keeper.index_conversation(conversation_id)

    def after_pipeline(self, conversation_id: str, change: str) -> None:
        self.keeper.after_pipeline(conversation_id, change)

    # shifts ---------------------------------------------------------------------------------------

    def start_shift(self, actor: Actor, queue: QueueName | None = None) -> None:
        self.shifts.start_shift(actor, queue)

    def stop_shift(self, user_id: str, reason: str = "stopped") -> int:
        return self.shifts.stop_shift(user_id, reason)

    def heartbeat(self, actor: Actor) -> None:
        self.shifts.heartbeat(actor)

    def end_stale_shifts(self) -> int:
        return self.shifts.end_stale_shifts()

    def release_idle(self) -> int:
        return self.shifts.release_idle()

    def watch_presence(self) -> None:
        self.shifts.watch_presence()

    # claims ---------------------------------------------------------------------------------------

    def claim(self, conversation_id: str, actor: Actor) -> None:
        self.claims.claim(conversation_id, actor)

    def claim_next(self, actor: Actor) -> str | None:
        return self.claims.claim_next(actor)

    def take_call(self, conversation_id: str, user_id: str) -> bool:
        return self.claims.take_call(conversation_id, user_id)

    def hand_to_coordinator(self, conversation_id: str, actor: Actor, coordinator_id: str) -> None:
        self.claims.hand_to_coordinator(conversation_id, actor, coordinator_id)

    def greet(self, conversation_id: str, actor: Actor) -> bool:
        return self.claims.greet(conversation_id, actor)

    def open(self, conversation_id: str, actor: Actor) -> HandoverCard:
        """The conversation page is opened: the warm handover (first opening of a claim), then
        the card with the transcript that now shows it."""
        self.claims.greet(conversation_id, actor)
        return self.cards.card(conversation_id, actor)

    def _acute_queues(self, actor: Actor, queues: Sequence[QueueName]) -> tuple[QueueName, ...]:
        return self.claims.acute_queues(actor, queues)

    def _sql_next(self, queues: Sequence[QueueName], exclude: Sequence[str] = (),
                  acute_from: Sequence[QueueName] = ()) -> str | None:
        return self.claims.sql_next(queues, exclude, acute_from)

    # in the conversation --------------------------------------------------------------------------

    def reply(self, conversation_id: str, actor: Actor, text: str) -> None:
        self.actions.reply(conversation_id, actor, text)

    def release(self, conversation_id: str, actor: Actor | None, reason: str = "returned") -> None:
        self.actions.release(conversation_id, actor, reason)

    def transfer(self, conversation_id: str, actor: Actor, note: str) -> None:
        self.actions.transfer(conversation_id, actor, note)

    def close(self, conversation_id: str, actor: Actor, outcome: Outcome, *, referred_to: str | None = None,
              corrected_themes: Sequence[str] = (), closing_note: str = "") -> None:
        self.actions.close(conversation_id, actor, outcome, referred_to=referred_to,
                           corrected_themes=corrected_themes, closing_note=closing_note)

    def ask_referral(self, conversation_id: str, actor: Actor, entry_id: str) -> None:
        self.actions.ask_referral(conversation_id, actor, entry_id)

    def acknowledge_alert(self, conversation_id: str, actor: Actor) -> None:
        self.actions.acknowledge_alert(conversation_id, actor)

    # moderation (coordinators) --------------------------------------------------------------------

    def block(self, conversation_id: str, actor: Actor, reason: str, days: int) -> None:
        self.moderation.block(conversation_id, actor, reason, days)

    def blocks(self, actor: Actor) -> list[Block]:
        return self.moderation.blocks(actor)

    def lift_block(self, block_id: str, actor: Actor) -> None:
        self.moderation.lift_block(block_id, actor)

    def standard_texts(self) -> list[StandardText]:
        return self.moderation.standard_texts()

    def add_standard_text(self, actor: Actor, title: str, body: str) -> None:
        self.moderation.add_standard_text(actor, title, body)

    def remove_standard_text(self, actor: Actor, text_id: str) -> None:
        self.moderation.remove_standard_text(actor, text_id)

    # reading --------------------------------------------------------------------------------------

    def snapshot(self, actor: Actor) -> QueueSnapshot:
        return self.queue_view.snapshot(actor)

    def card(self, conversation_id: str, actor: Actor) -> HandoverCard:
        return self.cards.card(conversation_id, actor)

    def messages_after(self, conversation_id: str, actor: Actor, after: int) -> list[CardMessage]:
        return self.cards.messages_after(conversation_id, actor, after)
