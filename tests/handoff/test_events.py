"""Live desk events over Redis pub/sub, against a real Redis (embedded by default, REDIS_URL in CI).

Each test publishes on its own channel (a random prefix), so tests never see each other's events.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Self, TypeVar

import pytest
import redis

from bot.config import Settings
from bot.storage.models import QueueName
from bot.storage.redis import _defaults, connect
from handoff.events import CHANNEL, Event, async_client, channel, publish, subscribe

T = TypeVar("T")


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    client = connect(settings)
    yield client
    if settings.redis_url is None:
        client.shutdown(nosave=True)  # the embedded server of this test only
    else:
        client.close()


@pytest.fixture
def prefix() -> str:
    return f"test{uuid.uuid4().hex}"


def own_client(client: redis.Redis) -> redis.Redis:
    pool = client.connection_pool
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs))


async def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Listener:
    """Runs `subscribe` in a task and keeps what it yields."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.got: list[Event] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for event in subscribe(self.client, self.prefix):
            self.got.append(event)

    def subscribers(self) -> int:
        return int(self.client.pubsub_numsub(channel(self.prefix))[0][1])

    def connection_ids(self) -> list[str]:
        name = f"{self.prefix}-events"
        return [c["id"] for c in self.client.client_list() if c.get("name") == name]

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(self._run())
        await eventually(lambda: self.subscribers() >= 1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), timeout=60))  # type: ignore[arg-type]


def test_event_json_round_trip() -> None:
    event = Event("claimed", conversation_id="c1", queue=QueueName.professional, user_id="u1",
                  priority=0)
    assert event.queue == "professional" and type(event.queue) is str
    raw = event.to_json()
    assert raw == ('{"type":"claimed","conversation_id":"c1","queue":"professional",'
                   '"user_id":"u1","priority":0}')
    assert Event.from_json(raw) == event
    assert Event.from_json(raw.encode()) == event
    assert Event("shift").to_json() == '{"type":"shift"}'
    # Unknown fields (a newer publisher) are ignored; nulls are absent values.
    assert Event.from_json('{"type":"queued","extra":1,"queue":null}') == Event("queued")
    assert CHANNEL == channel() == "ot:events"


def test_events_carry_no_text_and_reject_nonsense() -> None:
    with pytest.raises(TypeError):
        Event("message", conversation_id="c1", text="hallo")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Event("gossip")
    for raw in ("not json", "[]", '{"queue":"volunteer"}', '{"type":"gossip"}',
                '{"type":"queued","priority":"high"}', '{"type":"queued","user_id":5}'):
        with pytest.raises(ValueError):
            Event.from_json(raw)


def test_publish_never_raises_when_redis_is_away(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = redis.Redis(host="127.0.0.1", port=port, **_defaults())  # as bot.storage.redis connects
    with caplog.at_level(logging.WARNING, logger="handoff.events"):
        publish(away, Event("queued", conversation_id="c1", queue="volunteer", priority=2))
    assert "could not publish a queued event" in caplog.text
    assert "c1" not in caplog.text


def test_async_client_reaches_the_same_server(client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}:probe"
    client.set(key, "ja", ex=30)

    async def check() -> None:
        aclient = async_client(client)
        try:
            assert await aclient.get(key) == b"ja"
            await aclient.set(key, "nee", ex=30)
        finally:
            await aclient.aclose()

    try:
        run(check)
        assert client.get(key) == b"nee"
    finally:
        client.delete(key)


def test_subscriber_receives_events_in_order(client: redis.Redis, prefix: str) -> None:
    n = 500
    sent = [Event("queued", conversation_id=f"c{i}", queue="volunteer", priority=i % 4)
            for i in range(n)]

    def publisher() -> None:
        own = own_client(client)
        try:
            for event in sent:
                publish(own, event, prefix)
        finally:
            own.close()

    async def scenario() -> None:
        async with Listener(client, prefix) as listener:
            publish(client, Event("shift"), prefix="someone-else")  # another channel: not seen
            thread = threading.Thread(target=publisher)
            thread.start()
            await eventually(lambda: len(listener.got) >= n)
            thread.join()
            await asyncio.sleep(0.05)
            assert listener.got == sent

    run(scenario)


def test_subscriber_skips_messages_that_are_not_events(client: redis.Redis, prefix: str) -> None:
    async def scenario() -> None:
        async with Listener(client, prefix) as listener:
            client.publish(channel(prefix), "{not json")
            client.publish(channel(prefix), '{"type":"gossip"}')
            publish(client, Event("closed", conversation_id="c1", user_id="u1"), prefix)
            await eventually(lambda: listener.got)
            await asyncio.sleep(0.05)
            assert listener.got == [Event("closed", conversation_id="c1", user_id="u1")]

    run(scenario)


def test_subscriber_survives_client_kill(client: redis.Redis, prefix: str) -> None:
    async def scenario() -> None:
        async with Listener(client, prefix) as listener:
            publish(client, Event("queued", conversation_id="before"), prefix)
            await eventually(lambda: listener.got)
            [first] = await eventually(listener.connection_ids)
            assert client.client_kill_filter(_id=first) == 1
            # Pub/sub does not queue: keep publishing until the reconnected subscriber hears one.
            deadline = time.monotonic() + 15
            while not any(e.conversation_id == "after" for e in listener.got):
                assert time.monotonic() < deadline, "the subscriber did not come back"
                publish(client, Event("queued", conversation_id="after"), prefix)
                await asyncio.sleep(0.05)
            [second] = await eventually(listener.connection_ids)
            assert second != first  # a new connection, subscribed again
            assert listener.got[0] == Event("queued", conversation_id="before")
            # And it keeps going, in order.
            marks = [Event("message", conversation_id=f"m{i}") for i in range(20)]
            for event in marks:
                publish(client, event, prefix)
            await eventually(lambda: listener.got[-1] == marks[-1])
            assert listener.got[-20:] == marks

    run(scenario)


def test_subscription_ends_when_cancelled(client: redis.Redis, prefix: str) -> None:
    async def scenario() -> None:
        async with Listener(client, prefix) as listener:
            assert listener.subscribers() == 1
        await eventually(lambda: listener.subscribers() == 0)
        await eventually(lambda: not listener.connection_ids())

    run(scenario)
