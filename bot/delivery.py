"""Replies posted right after the commit, by the process that stored them.

A webhook hands its message to the pipeline (`process`, below). With a courier, the pipeline
writes the replies that may go at once (no burst: nothing of the conversation still waiting)
leased to this process, and the courier posts them as soon as the transaction has committed,
without waiting for the worker. The outbox row stays the durable record: a send that fails is
retried by the worker (bot.worker), and when this process dies before sending, the lease runs
out (bot.pipeline.SEND_LEASE) and the worker sends the reply. Replies inside a burst are spaced
and sent by the worker.

Without a courier (the tests' app, `telegram poll`), every reply goes through the worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from anyio import to_thread

from bot.channels.base import InboundMessage
from bot.pipeline import Pipeline, Received
from bot.storage.outbox import Written

logger = logging.getLogger(__name__)


class Deliverer(Protocol):
    async def deliver_rows(self, items: Sequence[Written]) -> int: ...


class Courier:
    """Posts given outbox rows now, in the background of this process's event loop."""

    def __init__(self, worker: Deliverer) -> None:
        self.worker = worker
        self._tasks: set[asyncio.Task[None]] = set()

    def send_soon(self, rows: Sequence[Written]) -> None:
        """Start posting these rows, as the pipeline wrote them (in this order); returns at once.
        They are not read back: this process wrote them a moment ago, leased to itself."""
        if not rows:
            return
        task = asyncio.get_running_loop().create_task(self._send(tuple(rows)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, rows: tuple[Written, ...]) -> None:
        try:
            await self.worker.deliver_rows(rows)
        except Exception as error:  # noqa: BLE001 - the rows stay pending: the worker sends them
            logger.warning("posting a reply at once failed (%s); the worker sends it",
                           type(error).__name__)

    async def drain(self) -> None:
        """Wait for the posts under way (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def process(services: Any, inbound: InboundMessage) -> Received:
    """What a webhook calls: the pipeline on a thread (it is synchronous), then, when this process
    has a courier (`services.courier`), the replies posted at once."""
    pipeline: Pipeline = services.pipeline
    courier: Courier | None = getattr(services, "courier", None)
    received = await to_thread.run_sync(
        functools.partial(pipeline.process, inbound, send_now=courier is not None))
    if courier is not None:
        courier.send_soon(received.outbox_rows)
    return received
