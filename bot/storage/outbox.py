"""The outbox's one writer: every text for a parent is a row here, written in the same transaction
as the decision to send it, and the wake-up that tells the worker there is something to send.

Who calls it: the pipeline (bot replies), the desk (a person's replies), the voice adapter and the
on-call SMS. Use it like this, inside the caller's transaction::

    at = next_slot(session, conversation.id, now, settings.reply_interval_seconds)
    add_reply(session, channel=..., address_encrypted=..., text=..., reply_to=message.id,
              seq=0, at=at, conversation_id=conversation.id, message_id=reply.id)
    ...                                  # commit
    wake(redis_client, settings.redis_prefix)   # after the commit

The unique (reply_to, seq) makes a replayed decision harmless: the same reply is never written
twice. `lease` (optional) writes the row already leased to the caller for that long: the process
that wrote it posts it right after its commit (bot.delivery), and the worker only sweeps it up
when that process failed (the lease runs out).

Spacing: replies to one conversation are spaced REPLY_INTERVAL_SECONDS apart only inside a burst
(a reply of the conversation still waiting when the next is written; see `next_slot`), so a
parent who writes again after an answer went out is answered at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Channel, Outbox, OutboxStatus, aware, new_id
from bot.storage.redis import key as redis_key
from bot.storage.redis import prefix_of

logger = logging.getLogger(__name__)

WAKE_KEY = "ot:outbox:wake"  # the wake-up list for the default prefix "ot"; see wake_key()
PART_GAP = timedelta(milliseconds=10)  # between the parts of one reply (they go out in order)


def wake_key(prefix: str) -> str:
    """The Redis list the worker blocks on; one entry means "look again"."""
    return redis_key(prefix, "outbox", "wake")


def wake(client: redis.Redis | None, prefix: str | None = None) -> None:
    """Tell the worker there is something to send (it also finds it on its own, later).
    Call after the commit. `prefix`: the installation's REDIS_KEY_PREFIX; by default the one
    bound to the client."""
    if client is None:
        return
    name = wake_key(prefix or prefix_of(client))
    try:
        pipe = client.pipeline(transaction=False)
        pipe.lpush(name, 1)
        pipe.ltrim(name, 0, 0)
        pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: the worker finds the replies on its next round")


def next_slot(session: Session, conversation_id: str | None, now: datetime,
              interval_seconds: float) -> tuple[datetime, bool]:
    """When the next reply to this conversation may go, and whether it may go right now (the
    caller may then post it itself, see `add_reply`'s lease).

    A burst is a parent writing faster than the replies go out: a reply of this conversation is
    still waiting. Only then is the new reply spaced, `interval_seconds` after the last one
    (which goes out when it is due: the spacing counts from the real sends, a parent is never
    made to wait longer than the interval behind a reply that already went). A parent who writes
    again after the last reply went out is answered at once."""
    if conversation_id is None:
        return now, True
    last = session.execute(
        select(Outbox.status, Outbox.scheduled_at)
        .where(Outbox.conversation_id == conversation_id)
        .order_by(Outbox.scheduled_at.desc())
        .limit(1)
    ).first()
    if last is None or last[0] is not OutboxStatus.pending:
        return now, True
    waiting = aware(last[1]) or now
    return max(now, waiting + timedelta(seconds=interval_seconds)), False


# A row as written, with what a sender needs (the worker's Leased): id, channel, address, text,
# conversation, attempts, parts sent, provider id of the parts sent.
Written = tuple[str, Channel, "bytes | None", str, "str | None", int, int, "str | None"]


def written(row: Outbox) -> Written:
    """A row just added by `add_reply`, as the sender takes it (nothing sent or tried yet)."""
    return (row.id, row.channel, row.address_encrypted, row.text, row.conversation_id, 0, 0, None)


def add_reply(
    session: Session,
    *,
    channel: Channel,
    address_encrypted: bytes | None,
    text: str,
    reply_to: str | None,
    seq: int = 0,
    at: datetime,
    conversation_id: str | None = None,
    message_id: str | None = None,
    lease: timedelta | None = None,
) -> Outbox:
    """Add one outbox row (part `seq` of the reply to `reply_to`), due at `at` plus the part gap.
    With `lease`, the row is leased to the caller until `at + lease` (see the module's text).
    Returns the row; its id is set at once."""
    due = at + PART_GAP * seq
    row = Outbox(
        id=new_id(),
        conversation_id=conversation_id,
        message_id=message_id,
        reply_to=reply_to,
        seq=seq,
        channel=channel,
        address_encrypted=address_encrypted,
        text=text,
        status=OutboxStatus.pending,
        attempts=0,
        scheduled_at=due,
        next_attempt_at=due + lease if lease is not None else due,
    )
    session.add(row)
    return row
