"""The worker: delivers the outbox with retries and backoff, recovers unhandled messages, and
purges old transcripts. A provider that is down delays replies; it never drops them.

Rows are leased (their next attempt moved a minute ahead) in a short transaction, with
SKIP LOCKED on PostgreSQL, so several workers never send the same reply. Replies to one
conversation go out in order; different conversations go out concurrently.

Delivery is at least once, not exactly once: a worker killed after the provider accepted a reply
and before the row is marked sent sends it again once the lease runs out. That window is kept
short: each accepted reply is marked sent at once, together with the others accepted meanwhile,
in one transaction on a thread of its own (not queued behind other database work), and at most
IN_FLIGHT replies are in flight at once. Measured with bench/outbox_duplicates (the worker
SIGKILLed at random moments while it delivers).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import cast

import redis
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.channels.base import DeliveryError, OutboundMessage, PartsLog, Sender, SendResult
from bot.storage.crypto import AddressDecryptError, AddressVault
from bot.storage.models import Channel, Conversation, Outbox, OutboxStatus, aware, utcnow

# The outbox's wake-up lives with its one writer (bot.storage.outbox); re-exported for older imports.
from bot.storage.outbox import WAKE_KEY as WAKE_KEY  # noqa: PLC0414
from bot.storage.outbox import wake as wake  # noqa: PLC0414
from bot.storage.outbox import wake_key
from bot.storage.redis import key as redis_key
from bot.storage.redis import prefix_of

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MIN_WAIT = 0.01  # seconds: the shortest sleep between rounds (a row due in a moment)
MAX_ATTEMPTS = 20
MAX_BACKOFF_SECONDS = 900
# Sends in flight at once. More only queue up inside this process (the providers take a few
# per second per number anyway), and every reply in flight is one a crash may send twice.
IN_FLIGHT = 16
# Rows leased per round: at most four waves of sends, so even sends that each take the senders'
# 10-second timeout end within the lease (a lease running out under a send in flight would let a
# second worker send that reply too).
BATCH = 4 * IN_FLIGHT
WHATSAPP_WINDOW = timedelta(hours=24)


# The heartbeat: each round the worker writes the time into Redis under its own name (the host
# name: in a container, the container's id), and `oudertelefoon worker --check`, run in the same
# container as its healthcheck, reads it back. A worker stuck in a round, or one whose rounds keep
# failing (database away), stops beating and shows as unhealthy.
HEARTBEAT_MAX_AGE = 120.0  # seconds; a round with a long backlog still beats after every batch
HEARTBEAT_TTL = 3600  # seconds; a scaled-down worker's key goes away by itself


def worker_name() -> str:
    """This worker's name in its heartbeat key: the host name (a container's id in compose)."""
    return socket.gethostname() or "worker"


def heartbeat_key(prefix: str, name: str) -> str:
    return redis_key(prefix, "worker", "heartbeat", name)


def heartbeat_age(client: redis.Redis, prefix: str, name: str | None = None,
                  now: float | None = None) -> float | None:
    """Seconds since worker `name` (default: this host's) last beat, or None when it never did
    (or its key expired). Raises redis.RedisError when Redis cannot be asked."""
    raw = client.get(heartbeat_key(prefix, name or worker_name()))
    if raw is None:
        return None
    try:
        beat = float(raw.decode("ascii") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not math.isfinite(beat):  # NaN or infinite: not a time
        return None
    return max(0.0, (time.time() if now is None else now) - beat)


# The sweeper's lock (PostgreSQL advisory locks are per database): "ot" "sw".
LEADER_LOCK = 0x6F74_7377


class Leader:
    """Exactly one sweeper among all processes. PostgreSQL: a session advisory lock on a
    connection of its own, held while the process lives (a killed process's connection closes
    and another worker takes over on its next round). SQLite: one process on one machine, by
    a lock on a file beside the database (an in-memory database: this process)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._file: int | None = None

    def holds(self) -> bool:
        """Whether this process leads now; takes the lead when nobody holds it."""
        if self.engine.dialect.name != "postgresql":
            return self._holds_file()
        if self._connection is not None:
            try:
                self._connection.execute(sql_text("SELECT 1"))
                return True
            except SQLAlchemyError:  # the connection (and with it the lock) is gone
                logger.warning("worker: lost the sweeper lock's connection")
                self._drop()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(connection.execute(sql_text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": LEADER_LOCK}).scalar())
        except Exception:
            connection.invalidate()
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        logger.info("worker: this process sweeps (recovery, the desk's tick, purge)")
        self._connection = connection
        return True

    def _holds_file(self) -> bool:
        if self._file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return True
        descriptor = os.open(f"{database}.leader", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            return False
        self._file = descriptor
        return True

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # closed, not back to the pool with the lock on it
                connection.close()
            except Exception as error:  # noqa: BLE001 - cleanup of a dead connection never raises
                logger.debug("worker: closing the sweeper connection failed (%s)",
                             type(error).__name__)

    def release(self) -> None:
        """Give the lead up now (a process that stops; a killed one gives it up as its
        connection closes)."""
        if self._connection is not None:
            try:
                self._connection.execute(sql_text("SELECT pg_advisory_unlock(:key)"),
                                         {"key": LEADER_LOCK})
            except SQLAlchemyError as error:  # closing the connection frees it anyway
                logger.debug("worker: unlocking the sweeper lock failed (%s)", type(error).__name__)
        self._drop()
        descriptor, self._file = self._file, None
        if descriptor is not None:
            os.close(descriptor)


# A leased row: id, channel, encrypted address, text, conversation id, attempts, parts already
# sent, the provider id recorded with them.
Leased = tuple[str, Channel, "bytes | None", str, "str | None", int, int, "str | None"]


class SqlPartsLog(PartsLog):
    """The parts of a split reply the provider accepted, recorded on the outbox row at once: a
    retry by any worker (this one crashed) sends only the rest."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        super().__init__()
        self.factory = factory

    async def record(self, outbox_id: str, done: int, provider_id: str | None) -> None:
        await super().record(outbox_id, done, provider_id)
        try:
            await asyncio.to_thread(self._write, outbox_id, done, provider_id)
        # The memory still has it; only another worker would resend.
        except Exception as error:  # noqa: BLE001 - a failed record never fails the send
            logger.warning("could not record the parts sent of %s (%s)", outbox_id,
                           type(error).__name__)

    def _write(self, outbox_id: str, done: int, provider_id: str | None) -> None:
        with self.factory.kw["bind"].begin() as connection:
            connection.execute(update(Outbox).where(Outbox.id == outbox_id)
                               .values(parts_sent=done, provider_message_id=provider_id))


_MARKER: list[ThreadPoolExecutor] = []


def _marker() -> ThreadPoolExecutor:
    """The one thread that marks accepted replies sent (shared by the workers of a process)."""
    if not _MARKER:
        _MARKER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sent"))
    return _MARKER[0]


def backoff(attempts: int) -> timedelta:
    """2, 4, 8 ... seconds, at most 15 minutes: 20 attempts span about four hours."""
    return timedelta(seconds=min(2 ** max(attempts, 1), MAX_BACKOFF_SECONDS))


class WebSender(Sender):
    """The web chat reads its replies from the conversation; delivery is storing them."""

    channels = (Channel.web,)

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=None)


class Worker:
    def __init__(
        self,
        factory: sessionmaker[Session],
        vault: AddressVault,
        senders: dict[Channel, Sender],
        *,
        redis_client: redis.Redis | None = None,
        clock: Callable[[], datetime] = utcnow,
        whatsapp_template: bool = False,
        prefix: str | None = None,
        name: str | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.factory = factory
        self.lease = lease
        self.vault = vault
        self.senders = senders
        self.redis = redis_client
        self.prefix = prefix or prefix_of(redis_client)
        self.name = name or worker_name()
        self.clock = clock
        self.whatsapp_template = whatsapp_template
        self._postgres = factory.kw["bind"].dialect.name == "postgresql"
        parts = SqlPartsLog(factory)
        for sender in senders.values():
            if isinstance(getattr(sender, "parts", None), PartsLog):
                sender.parts = parts  # parts sent recorded in SQL, not only in this process
        # Replies the provider accepted, waiting to be marked sent (see _mark_sent).
        self._accepted: list[tuple[str, str | None, asyncio.Future[None]]] = []
        self._marking: asyncio.Task[None] | None = None

    def _lease(self) -> list[Leased]:
        """Lease what is due, keeping each conversation's order across workers: a row is leased
        only when it is the oldest pending row of its conversation (a row in flight, leased by
        any worker, or waiting for its retry, holds back everything after it). The head rows are
        locked (SKIP LOCKED on PostgreSQL: two workers never take the same head) and leased
        together with the due rows right behind them, so a conversation's burst goes out in one
        round, in order, by one worker."""
        now = self.clock()
        earlier = aliased(Outbox)
        before = exists().where(
            earlier.conversation_id == Outbox.conversation_id,
            earlier.status == OutboxStatus.pending,
            or_(earlier.scheduled_at < Outbox.scheduled_at,
                and_(earlier.scheduled_at == Outbox.scheduled_at, earlier.seq < Outbox.seq),
                and_(earlier.scheduled_at == Outbox.scheduled_at, earlier.seq == Outbox.seq,
                     earlier.id < Outbox.id)),
        )
        with self.factory() as session, session.begin():
            query = (
                select(Outbox)
                .where(Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at <= now,
                       or_(Outbox.conversation_id.is_(None), ~before))
                .order_by(Outbox.next_attempt_at, Outbox.seq)
                .limit(BATCH)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True, of=Outbox)
            heads = list(session.scalars(query).all())
            rows = list(heads)
            conversations = [row.conversation_id for row in heads if row.conversation_id]
            if conversations and len(rows) < BATCH:
                # The rows right behind each head: ours while the head is leased (no other
                # worker takes a row that is not the oldest of its conversation).
                behind = session.scalars(
                    select(Outbox)
                    .where(Outbox.conversation_id.in_(conversations),
                           Outbox.status == OutboxStatus.pending)
                    .order_by(Outbox.conversation_id, Outbox.scheduled_at, Outbox.seq, Outbox.id)
                ).all()
                head_ids = {row.id for row in heads}
                blocked: set[str | None] = set()
                for row in behind:
                    if len(rows) >= BATCH:
                        break
                    if row.id in head_ids or row.conversation_id in blocked:
                        continue
                    if (aware(row.next_attempt_at) or now) > now:  # not due: it and what follows wait
                        blocked.add(row.conversation_id)
                        continue
                    rows.append(row)
            leased: list[Leased] = []
            for row in rows:
                row.next_attempt_at = now + self.lease
                leased.append((row.id, row.channel, row.address_encrypted, row.text,
                               row.conversation_id, row.attempts, row.parts_sent,
                               row.provider_message_id))
            # In each conversation's order (the heads first, then the rows behind them).
            order = {row.id: (row.scheduled_at, row.seq, row.id) for row in rows}
            leased.sort(key=lambda item: order[item[0]])
            return leased

    async def run_once(self) -> int:
        """Deliver everything that is due; returns how many were sent."""
        leased = await asyncio.to_thread(self._lease)
        if not leased:
            return 0
        groups: dict[str, list[Leased]] = defaultdict(list)
        for item in leased:
            groups[item[4] or item[0]].append(item)
        slots = asyncio.Semaphore(IN_FLIGHT)
        results = await asyncio.gather(*(self._deliver_group(g, slots) for g in groups.values()))
        return sum(results)

    async def _deliver_group(self, items: list[Leased], slots: asyncio.Semaphore) -> int:
        sent = 0
        for index, (outbox_id, channel, address_token, text, conversation_id, attempts,
                    parts_sent, part_id) in enumerate(items):
            async with slots:
                ok = await self._deliver(outbox_id, channel, address_token, text, conversation_id,
                                         attempts, parts_sent=parts_sent, part_id=part_id)
            if not ok:
                # Keep the order: the later replies of this conversation wait for this one, and
                # are released from their lease to go right after its next attempt.
                rest = [item[0] for item in items[index + 1:]]
                if rest:
                    await asyncio.to_thread(self._follow, outbox_id, rest)
                break
            sent += 1
        return sent

    def _follow(self, first_id: str, later_ids: list[str]) -> None:
        with self.factory() as session, session.begin():
            first = session.get(Outbox, first_id)
            at = first.next_attempt_at if first is not None else self.clock()
            for offset, outbox_id in enumerate(later_ids, start=1):
                row = session.get(Outbox, outbox_id)
                if row is not None and row.status is OutboxStatus.pending:
                    row.next_attempt_at = at + timedelta(milliseconds=offset)

    async def _deliver(self, outbox_id: str, channel: Channel, address_token: bytes | None,
                       text: str, conversation_id: str | None, attempts: int, *,
                       parts_sent: int = 0, part_id: str | None = None) -> bool:
        """Try one row. False: it will be retried, so the conversation's later replies wait."""
        sender = self.senders.get(channel)
        if sender is None:
            await asyncio.to_thread(self._retry, outbox_id, attempts, f"channel {channel.value} is off")
            return False
        try:
            address = self.vault.decrypt(address_token) if address_token else ""
        except AddressDecryptError:
            await asyncio.to_thread(self._finish, outbox_id, OutboxStatus.failed, None, "address unreadable")
            return True
        template = False
        if channel is Channel.whatsapp and conversation_id:
            outside = await asyncio.to_thread(self._outside_whatsapp_window, conversation_id)
            if outside and not self.whatsapp_template:
                await asyncio.to_thread(self._finish, outbox_id, OutboxStatus.undeliverable, None,
                                        "whatsapp 24-hour window closed; no template configured")
                return True
            template = outside
        message = OutboundMessage(outbox_id=outbox_id, channel=channel, address=address, text=text,
                                  conversation_id=conversation_id, template=template,
                                  parts_sent=parts_sent, part_id=part_id)
        try:
            result = await sender.send(message)
        except DeliveryError as error:
            logger.warning("delivery of %s on %s failed (%s)", outbox_id, channel.value,
                           "will retry" if error.retryable else "giving up")
            if error.retryable:
                await asyncio.to_thread(self._retry, outbox_id, attempts, str(error)[:200])
                return False
            # Refused for good: this row is done, the conversation's next replies need not wait.
            await asyncio.to_thread(self._finish, outbox_id, OutboxStatus.failed, None, str(error)[:200])
            return True
        except Exception as error:  # noqa: BLE001 - an unexpected sender bug: retry, never drop
            logger.error("sender for %s crashed (%s)", channel.value, type(error).__name__)
            await asyncio.to_thread(self._retry, outbox_id, attempts, type(error).__name__)
            return False
        provider_id = getattr(result, "provider_message_id", None)
        await self._mark_sent(outbox_id, provider_id)
        return True

    async def _mark_sent(self, outbox_id: str, provider_id: str | None) -> None:
        """Mark an accepted reply sent, right away. Every reply accepted while a commit is under
        way goes into the next one: one transaction for many, on a thread of its own, so the
        time between the provider's answer and our commit (when a crash means a second send)
        does not grow with the replies in flight."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._accepted.append((outbox_id, provider_id, done))
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_accepted())
        await done

    async def _mark_accepted(self) -> None:
        loop = asyncio.get_running_loop()
        while self._accepted:
            batch, self._accepted = self._accepted, []
            try:
                await loop.run_in_executor(_marker(), self._finish_sent,
                                           [(row_id, provider_id) for row_id, provider_id, _ in batch])
            # The rows stay pending: sent again after the lease.
            except Exception as error:  # noqa: BLE001 - handed on to every waiter, not swallowed
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _finish_sent(self, rows: list[tuple[str, str | None]]) -> None:
        """Mark these rows sent, in one transaction of one statement (executed for each row)."""
        table = cast(Table, Outbox.__table__)  # a mapped class's table is a Table
        statement = (
            table.update()
            .where(table.c.id == bindparam("row_id"))
            .values(status=OutboxStatus.sent, provider_message_id=bindparam("provider_id"),
                    last_error=None, attempts=table.c.attempts + 1, address_encrypted=None,
                    sent_at=self.clock())
        )
        with self.factory.kw["bind"].begin() as connection:
            connection.execute(statement, [{"row_id": row_id, "provider_id": provider_id}
                                           for row_id, provider_id in rows])

    def _outside_whatsapp_window(self, conversation_id: str) -> bool:
        with self.factory() as session:
            last = session.scalar(select(Conversation.last_inbound_at).where(Conversation.id == conversation_id))
        last = aware(last)
        if last is None:
            return False
        return self.clock() - last > WHATSAPP_WINDOW

    def _retry(self, outbox_id: str, attempts: int, error: str) -> None:
        with self.factory() as session, session.begin():
            row = session.get(Outbox, outbox_id)
            if row is None:
                return
            row.attempts = attempts + 1
            row.last_error = error
            if row.attempts >= MAX_ATTEMPTS:
                row.status = OutboxStatus.failed
                row.address_encrypted = None
                logger.error("gave up on %s after %d attempts", outbox_id, row.attempts)
            else:
                row.next_attempt_at = self.clock() + backoff(row.attempts)

    def _finish(self, outbox_id: str, status: OutboxStatus, provider_id: str | None, error: str | None) -> None:
        with self.factory() as session, session.begin():
            row = session.get(Outbox, outbox_id)
            if row is None:
                return
            row.status = status
            row.provider_message_id = provider_id
            row.last_error = error
            row.attempts += 1
            row.address_encrypted = None  # the address is kept no longer than needed
            if status is OutboxStatus.sent:
                row.sent_at = self.clock()

    async def run_forever(
        self,
        stop: asyncio.Event,
        *,
        recover: Callable[[], int] | None = None,
        housekeeping: Callable[[], None] | None = None,
        handoff: Callable[[], None] | None = None,
        poll_seconds: float = 1.0,
        housekeeping_seconds: float = 3600.0,
        handoff_seconds: float = 30.0,
        on_call: Callable[[], object] | None = None,
        on_call_seconds: float = 15.0,
    ) -> None:
        """Deliver until `stop` is set. Wakes at once when the pipeline pushes to Redis.
        `handoff` (the desk's tick: keep the queue index whole, return idle claims) runs every
        `handoff_seconds`; `housekeeping` (the retention purge) every `housekeeping_seconds`;
        `on_call` (handoff.oncall: the SMS for acute conversations waiting while nobody is
        present) every `on_call_seconds`."""
        last_housekeeping = 0.0
        last_handoff = 0.0
        last_on_call = 0.0
        loop = asyncio.get_running_loop()
        # Every worker delivers; only the leader (one among all processes) sweeps: recovers
        # unhandled messages (so no message is recovered by two workers at once), runs the
        # desk's tick, the on-call check and the purge.
        leader = Leader(self.factory.kw["bind"])
        try:
            while not stop.is_set():
                try:
                    lead = await asyncio.to_thread(leader.holds)
                    if lead and recover is not None:
                        await asyncio.to_thread(recover)
                    await asyncio.to_thread(self.beat)
                    while await self.run_once():
                        await asyncio.to_thread(self.beat)
                    if lead and on_call is not None and loop.time() - last_on_call >= on_call_seconds:
                        last_on_call = loop.time()
                        await asyncio.to_thread(on_call)
                    if lead and handoff is not None and loop.time() - last_handoff >= handoff_seconds:
                        last_handoff = loop.time()
                        await asyncio.to_thread(handoff)
                    if (lead and housekeeping is not None
                            and loop.time() - last_housekeeping >= housekeeping_seconds):
                        last_housekeeping = loop.time()
                        await asyncio.to_thread(housekeeping)
                    await asyncio.to_thread(self.beat)
                except Exception as error:  # noqa: BLE001 - keep delivering; the next round retries
                    logger.error("worker round failed (%s)", type(error).__name__)
                try:
                    await self._wait(stop, poll_seconds, wake_key(self.prefix))
                except Exception as error:  # noqa: BLE001 - the loop outlives a failed wait
                    logger.error("worker wait failed (%s)", type(error).__name__)
                    await asyncio.sleep(poll_seconds)
        finally:
            await asyncio.to_thread(leader.release)

    def beat(self) -> None:
        """Write the heartbeat (see HEARTBEAT_MAX_AGE). Without Redis there is nothing to write:
        the missing heartbeat is then the signal."""
        if self.redis is None:
            return
        try:
            self.redis.set(heartbeat_key(self.prefix, self.name), f"{time.time():.3f}",
                           ex=HEARTBEAT_TTL)
        except redis.RedisError:
            logger.debug("redis unavailable: no heartbeat this round")

    async def _wait(self, stop: asyncio.Event, seconds: float, key: str) -> None:
        """Sleep until the next row is due (a reply spaced in a burst, a retry), at most
        `seconds`, or until the pipeline wakes the worker; not a fixed poll."""
        seconds = await asyncio.to_thread(self._until_due, seconds)
        if self.redis is not None:
            try:
                await asyncio.to_thread(self.redis.blpop, [key], max(MIN_WAIT, seconds))
                return
            except redis.RedisError:
                pass  # Redis down or restarting: poll SQL instead
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _until_due(self, limit: float) -> float:
        """Seconds until the next pending row that is not due yet becomes due (at most `limit`).
        Rows already due and still pending are held back (their conversation's earlier reply
        goes first): they do not shorten the sleep."""
        now = self.clock()
        with self.factory() as session:
            due = aware(session.scalar(
                select(func.min(Outbox.next_attempt_at))
                .where(Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at > now)))
        if due is None:
            return limit
        return min(limit, max(MIN_WAIT, (due - now).total_seconds()))

    async def deliver_now(self, ids: Sequence[str]) -> int:
        """Post these outbox rows now, in this order (one conversation's reply, its parts in
        order): what the process that wrote them leased to itself does right after its commit
        (bot.delivery). A failure is left to the sweep as for any row: a retry is scheduled and
        the rows after it wait for it. Returns how many were sent."""
        items = await asyncio.to_thread(self._read, list(ids))
        if not items:
            return 0
        return await self._deliver_group(items, asyncio.Semaphore(IN_FLIGHT))

    async def deliver_rows(self, items: Sequence[Leased]) -> int:
        """`deliver_now` for rows the caller has just written, leased to itself, their data in
        hand (bot.delivery): nothing to read back first."""
        if not items:
            return 0
        return await self._deliver_group(list(items), asyncio.Semaphore(IN_FLIGHT))

    def _read(self, ids: list[str]) -> list[Leased]:
        with self.factory() as session:
            rows = {row.id: row for row in session.scalars(
                select(Outbox).where(Outbox.id.in_(ids), Outbox.status == OutboxStatus.pending))}
        return [(row.id, row.channel, row.address_encrypted, row.text, row.conversation_id,
                 row.attempts, row.parts_sent, row.provider_message_id)
                for row in (rows.get(outbox_id) for outbox_id in ids) if row is not None]
