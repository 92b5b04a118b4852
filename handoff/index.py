"""The Redis queue index: who waits in which queue, in what order, and who claimed what.

SQL is the truth of every conversation's status; this index makes "who is next" and "exactly one
person gets this conversation" fast and atomic. It can be thrown away and rebuilt from SQL at any
time (`QueueIndex.rebuild`), and it says when it was lost (`is_built` is False after a FLUSHALL
or a Redis restart without persistence).

Keys, all under a configurable prefix (default "ot"):

- `{prefix}:q:volunteer`, `{prefix}:q:professional`: sorted sets of conversation ids, scored by
  priority then waiting time (`score`), so ZRANGE gives the claim order.
- `{prefix}:skills`: one hash with a field per queued conversation holding its skills as JSON
  (queue, priority, queued_at, language, the parent's preferred kind, a continuity offer). One
  hash rather than a key per entry, so every Lua script names all its keys up front and a rebuild
  swaps the whole index with a handful of RENAMEs.
- `{prefix}:claims`: one hash, conversation id -> user id of the person who claimed it.
- `{prefix}:built`: set by `rebuild`; its absence means the index must be rebuilt from SQL.

Every change that touches more than one key is one Lua script (atomic on the server).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis

from bot.rules import QueueName
from bot.storage.models import utcnow
from bot.storage.redis import key as redis_key

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRIORITY_STEP = 10**13  # epoch milliseconds stay below this until the year 2286
CANDIDATES = 200  # claim_next looks at this many entries at the head of each queue
ANY_PRIORITY = 1_000_000  # claim_next's "take any priority from this queue"
_BATCH = 2000  # commands per pipeline round trip in rebuild


@dataclass(frozen=True)
class QueueEntry:
    """A conversation waiting in a queue, with what a claimer needs to know to pick it."""

    conversation_id: str
    queue: QueueName
    priority: int  # 0 acute, 1 high, 2 concern, 3 none (handoff.interfaces.PRIORITY)
    queued_at: datetime  # aware UTC; the place in line, kept on release and transfer
    language: str = "nl"
    preferred: QueueName | None = None  # the parent's own choice, if any
    offer_to: str | None = None  # user id offered first (continuity)
    offer_until: datetime | None = None


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (SQLite gives them back naive)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _epoch_ms(moment: datetime) -> int:
    return (_utc(moment) - EPOCH) // timedelta(milliseconds=1)


def _epoch_us(moment: datetime) -> int:
    return (_utc(moment) - EPOCH) // timedelta(microseconds=1)


def _from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def score(priority: int, queued_at: datetime) -> float:
    """The sort key: priority first (acute before high before concern before none), then the
    time the conversation joined the queue, to the millisecond."""
    if priority < 0:
        raise ValueError("priority must be >= 0")
    ms = _epoch_ms(queued_at)
    if not 0 <= ms < PRIORITY_STEP:
        raise ValueError("queued_at out of range")
    return float(priority * PRIORITY_STEP + ms)


def _skills(entry: QueueEntry) -> str:
    """The skills hash value. Times as epoch microseconds, so `entries` gives back exactly what
    was added; offer_until also in milliseconds for the Lua comparison."""
    data: dict[str, Any] = {
        "q": QueueName(entry.queue).value,
        "p": int(entry.priority),
        "t": _epoch_us(entry.queued_at),
        "l": (entry.language or "nl").lower(),
    }
    if entry.preferred is not None:
        data["pf"] = QueueName(entry.preferred).value
    if entry.offer_to is not None and entry.offer_until is not None:
        data["o"] = entry.offer_to
        data["ou"] = _epoch_us(entry.offer_until)
        data["u"] = _epoch_ms(entry.offer_until)
    return json.dumps(data, separators=(",", ":"))


def _entry(conversation_id: str, raw: bytes | str | None, queue: QueueName,
           member_score: float) -> QueueEntry:
    """A QueueEntry from its skills; a missing or broken skills value gives what the score says."""
    data: dict[str, Any] = {}
    if raw is not None:
        try:
            loaded = json.loads(raw)
            if isinstance(loaded, dict):
                data = loaded
        except ValueError:
            logger.warning("queue index: unreadable skills for an entry; using defaults")
    priority = int(member_score // PRIORITY_STEP)
    queued_at = (_from_us(int(data["t"])) if "t" in data
                 else EPOCH + timedelta(milliseconds=int(member_score % PRIORITY_STEP)))
    return QueueEntry(
        conversation_id=conversation_id,
        queue=queue,
        priority=int(data.get("p", priority)),
        queued_at=queued_at,
        language=str(data.get("l", "nl")),
        preferred=QueueName(data["pf"]) if data.get("pf") else None,
        offer_to=str(data["o"]) if data.get("o") else None,
        offer_until=_from_us(int(data["ou"])) if "ou" in data else None,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The change journal: every script that changes an entry records its id in `touched`, scored by
# a counter (`version`). A rebuild or a sync started at version V keeps, for every id touched
# after V, what the index says (it is newer than what SQL said when the rebuild read it).
# Every script's KEYS end with: ..., skills, claims, version, touched.
_PRELUDE = """
local nq = #KEYS - 4
local skills_key, claims_key = KEYS[nq + 1], KEYS[nq + 2]
local version_key, touched_key = KEYS[nq + 3], KEYS[nq + 4]
local function touch(id)
  local v = redis.call('INCR', version_key)
  redis.call('ZADD', touched_key, v, id)
  if v % 1000 == 0 then redis.call('ZREMRANGEBYRANK', touched_key, 0, -100001) end
end
local function touched_since(id, since)
  if since == '' then return false end
  local t = redis.call('ZSCORE', touched_key, id)
  return t ~= false and tonumber(t) > tonumber(since)
end
"""

# ARGV: id, target queue key, score, skills json, since ('' : always). -1: skipped (touched).
_ADD = _PRELUDE + """
if touched_since(ARGV[1], ARGV[5]) then return -1 end
for i = 1, nq do
  if KEYS[i] ~= ARGV[2] then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
redis.call('ZADD', ARGV[2], ARGV[3], ARGV[1])
redis.call('HSET', skills_key, ARGV[1], ARGV[4])
redis.call('HDEL', claims_key, ARGV[1])
touch(ARGV[1])
return 1
"""

# ARGV: id, since.
_REMOVE = _PRELUDE + """
if touched_since(ARGV[1], ARGV[2]) then return -1 end
for i = 1, nq do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HDEL', skills_key, ARGV[1])
redis.call('HDEL', claims_key, ARGV[1])
touch(ARGV[1])
return 1
"""

# ARGV: id, user id, since. Sets the claim marker whatever the entry was (a sync from SQL).
_SET_CLAIM = _PRELUDE + """
if touched_since(ARGV[1], ARGV[3]) then return -1 end
for i = 1, nq do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HDEL', skills_key, ARGV[1])
redis.call('HSET', claims_key, ARGV[1], ARGV[2])
touch(ARGV[1])
return 1
"""

# ARGV: id, user id.
# Exactly one caller removes the id from its queue; that caller sets the claim marker. The
# holder asking again gets 1 too (safe to retry); anyone else gets 0.
_CLAIM = _PRELUDE + """
local removed = 0
for i = 1, nq do removed = removed + redis.call('ZREM', KEYS[i], ARGV[1]) end
if removed > 0 then
  redis.call('HDEL', skills_key, ARGV[1])
  redis.call('HSET', claims_key, ARGV[1], ARGV[2])
  touch(ARGV[1])
  return 1
end
if redis.call('HGET', claims_key, ARGV[1]) == ARGV[2] then return 1 end
return 0
"""

# KEYS: the queue zsets to take from, then skills, claims, version, touched.
# ARGV: user id, now (epoch ms), candidates per queue, the highest priority to take from each
# queue ("3,0": anything from the first, only acute from the second), then the languages.
# Walks the heads of the queues merged by (score, id), a small page at a time, and stops at the
# first entry it may take: the common case reads a handful of entries, not 200 per queue.
_CLAIM_NEXT = _PRELUDE + """
local user, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local step, page = 10000000000000, 16
local most = {}
for p in string.gmatch(ARGV[4], '[^,]+') do most[#most + 1] = tonumber(p) end
local speaks = {nl = true}
for i = 5, #ARGV do speaks[ARGV[i]] = true end
local cursors = {}
for i = 1, nq do
  cursors[i] = {key = KEYS[i], buf = {}, pos = 1, read = 0, done = false, most = most[i] or 1000000}
end
local function head(c)
  if c.pos <= #c.buf and math.floor(c.buf[c.pos].score / step) > c.most then
    c.done, c.buf, c.pos = true, {}, 1  -- sorted: everything after is less urgent still
    return nil
  end
  if c.pos > #c.buf then
    if c.done or c.read >= limit then return nil end
    local stop = math.min(c.read + page, limit) - 1
    local range = redis.call('ZRANGE', c.key, c.read, stop, 'WITHSCORES')
    c.buf, c.pos = {}, 1
    for j = 1, #range, 2 do c.buf[#c.buf + 1] = {id = range[j], score = tonumber(range[j + 1])} end
    c.read = c.read + #c.buf
    if #c.buf < page then c.done = true end
    if #c.buf == 0 then return nil end
    if math.floor(c.buf[1].score / step) > c.most then c.done, c.buf = true, {} return nil end
  end
  return c.buf[c.pos]
end
local first, chosen = nil, nil
while true do
  local best, best_cursor = nil, nil
  for _, c in ipairs(cursors) do
    local h = head(c)
    if h and (not best or h.score < best.score or (h.score == best.score and h.id < best.id)) then
      best, best_cursor = h, c
    end
  end
  if not best then break end
  best_cursor.pos = best_cursor.pos + 1
  best.key = best_cursor.key
  local lang, offer_to, offer_until = 'nl', false, 0
  local raw = redis.call('HGET', skills_key, best.id)
  if raw then
    local ok, s = pcall(cjson.decode, raw)
    if ok and type(s) == 'table' then
      if type(s.l) == 'string' then lang = s.l end
      if type(s.o) == 'string' then offer_to = s.o end
      if type(s.u) == 'number' then offer_until = s.u end
    end
  end
  if not (offer_to and offer_to ~= user and now < offer_until) then
    if not first then first = best end
    if math.floor(best.score / step) <= 1 or speaks[lang] then
      chosen = best
      break
    end
  end
end
chosen = chosen or first
if not chosen then return false end
redis.call('ZREM', chosen.key, chosen.id)
redis.call('HDEL', skills_key, chosen.id)
redis.call('HSET', claims_key, chosen.id, user)
touch(chosen.id)
return chosen.id
"""

# ARGV: id.
_UNCLAIM = _PRELUDE + """
local removed = redis.call('HDEL', claims_key, ARGV[1])
touch(ARGV[1])
return removed
"""

# The swap at the end of a full rebuild. KEYS: the live entry keys (queues..., skills, claims),
# the temporary ones in the same order, then built, version, touched.
# ARGV: since, built stamp. Every id touched since `since` keeps its live state.
_SWAP = """
local n = (#KEYS - 3) / 2
local built_key, touched_key = KEYS[2 * n + 1], KEYS[2 * n + 3]
local kept = redis.call('ZRANGEBYSCORE', touched_key, '(' .. ARGV[1], '+inf')
for _, id in ipairs(kept) do
  for i = 1, n - 2 do
    local s = redis.call('ZSCORE', KEYS[i], id)
    if s then redis.call('ZADD', KEYS[n + i], s, id) else redis.call('ZREM', KEYS[n + i], id) end
  end
  for i = n - 1, n do
    local v = redis.call('HGET', KEYS[i], id)
    if v then redis.call('HSET', KEYS[n + i], id, v) else redis.call('HDEL', KEYS[n + i], id) end
  end
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[n + i]) == 1 then
    redis.call('RENAME', KEYS[n + i], KEYS[i])
    redis.call('PERSIST', KEYS[i])
  else
    redis.call('DEL', KEYS[i])
  end
end
redis.call('SET', built_key, ARGV[2])
return #kept
"""


class QueueIndex:
    """Two sorted sets (ot:q:volunteer, ot:q:professional) ordered by priority then waiting time,
    a hash of skills per entry, and a claim marker per claimed conversation. SQL is the truth.

    Methods raise redis.RedisError when Redis is away; callers fall back to SQL.
    """

    def __init__(self, client: redis.Redis, prefix: str = "ot") -> None:
        self.client = client
        self.prefix = prefix
        self.skills_key = redis_key(prefix, "skills")
        self.claims_key = redis_key(prefix, "claims")
        self.built_key = redis_key(prefix, "built")
        self.version_key = redis_key(prefix, "version")
        self.touched_key = redis_key(prefix, "touched")
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._set_claim = client.register_script(_SET_CLAIM)
        self._claim = client.register_script(_CLAIM)
        self._claim_next = client.register_script(_CLAIM_NEXT)
        self._unclaim = client.register_script(_UNCLAIM)
        self._swap = client.register_script(_SWAP)

    # keys ---------------------------------------------------------------------------------------

    def queue_key(self, queue: QueueName) -> str:
        return redis_key(self.prefix, "q", QueueName(queue).value)

    @property
    def keys(self) -> list[str]:
        """Every key of the index (for tests and for a flush of just this index)."""
        return [*self._entry_keys(), self.built_key]

    def _entry_keys(self) -> list[str]:
        return [*(self.queue_key(q) for q in QueueName), self.skills_key, self.claims_key]

    def _script_keys(self) -> list[str]:
        return [*self._entry_keys(), self.version_key, self.touched_key]

    def mark(self) -> int:
        """The index's change counter now. Take it before reading SQL for `rebuild(since=...)`:
        every change made after it is newer than what that read saw."""
        return int(self.client.get(self.version_key) or 0)

    # changing one entry -------------------------------------------------------------------------

    def add(self, entry: QueueEntry) -> None:
        """Put a conversation in its queue (or move it there from the other one, or change its
        priority or skills); clears its claim marker. Idempotent."""
        self._add(keys=self._script_keys(),
                  args=[entry.conversation_id, self.queue_key(entry.queue),
                        repr(score(entry.priority, entry.queued_at)), _skills(entry), ""])

    def remove(self, conversation_id: str) -> None:
        """Take a conversation out of every queue, with its skills and claim marker."""
        self._remove(keys=self._script_keys(), args=[conversation_id, ""])

    def claim(self, conversation_id: str, user_id: str) -> bool:
        """Take a waiting conversation out of its queue for `user_id`. Of many simultaneous
        callers exactly one gets True; a caller that already holds it gets True again."""
        return bool(self._claim(keys=self._script_keys(), args=[conversation_id, user_id]))

    def set_claim(self, conversation_id: str, user_id: str) -> None:
        """Move a claimed conversation's marker to `user_id` (a supervisor's takeover, already
        decided in SQL)."""
        self._set_claim(keys=self._script_keys(), args=[conversation_id, user_id, ""])

    def claim_next(self, user_id: str, queues: Sequence[QueueName], languages: Sequence[str],
                   now: datetime | None = None, *, acute_from: Sequence[QueueName] = ()) -> str | None:
        """Claim the most urgent conversation `user_id` may take from `queues` (and the acute
        entries, priority 0, of `acute_from`), or None.

        Looks at the first 200 of each queue, merged by priority and waiting time. An entry
        offered to someone else is skipped while `now` < its offer_until. The first entry in a
        language the person speaks (Dutch counts for everyone) is taken; acute and high entries
        (priority <= 1) are never skipped for language; with no match, the first eligible one.
        """
        names = list(dict.fromkeys(QueueName(q) for q in queues))
        most = {q: ANY_PRIORITY for q in names}
        for queue in acute_from:
            most.setdefault(QueueName(queue), 0)  # acute only
        if not most:
            return None
        now = now or utcnow()
        keys = [self.queue_key(q) for q in most]
        langs = [lang.lower() for lang in languages if lang]
        limits = ",".join(str(value) for value in most.values())
        result = self._claim_next(keys=[*keys, self.skills_key, self.claims_key,
                                        self.version_key, self.touched_key],
                                  args=[user_id, _epoch_ms(now), CANDIDATES, limits, *langs])
        return _text(result) if result else None

    def unclaim(self, conversation_id: str) -> None:
        """Drop the claim marker only (SQL refused the claim); the entry is not re-queued."""
        self._unclaim(keys=[self.skills_key, self.claims_key, self.version_key, self.touched_key],
                      args=[conversation_id])

    # reading ------------------------------------------------------------------------------------

    def claimed_by(self, conversation_id: str) -> str | None:
        value = self.client.hget(self.claims_key, conversation_id)
        return _text(value) if value is not None else None

    def waiting(self, queue: QueueName) -> list[str]:
        """The ids in `queue`, in claim order."""
        members = cast(list[bytes | str], self.client.zrange(self.queue_key(queue), 0, -1))
        return [_text(member) for member in members]

    def entries(self, queues: Sequence[QueueName]) -> list[QueueEntry]:
        """The entries of `queues`, merged in claim order."""
        pipe = self.client.pipeline(transaction=True)
        names = list(dict.fromkeys(QueueName(q) for q in queues))
        for queue in names:
            pipe.zrange(self.queue_key(queue), 0, -1, withscores=True)
        pipe.hgetall(self.skills_key)
        *ranges, skills = pipe.execute()
        skills = {_text(k): v for k, v in skills.items()}
        rows: list[tuple[float, str, QueueName]] = []
        for queue, members in zip(names, ranges):
            rows.extend((float(s), _text(m), queue) for m, s in members)
        rows.sort(key=lambda row: (row[0], row[1]))
        return [_entry(cid, skills.get(cid), queue, s) for s, cid, queue in rows]

    def is_built(self) -> bool:
        """False when the index was never built or was lost (FLUSHALL, a restart without
        persistence, or its keys deleted): then rebuild it from SQL."""
        return bool(self.client.exists(self.built_key))

    # rebuilding ---------------------------------------------------------------------------------

    def rebuild(self, entries: Iterable[QueueEntry], claims: Iterable[tuple[str, str]], *,
                since: int | None = None) -> int:
        """Bring the index in line with `entries` (waiting) and `claims` ((conversation id, user
        id) pairs), as SQL gave them. A conversation both in `entries` and in `claims` counts as
        claimed. Returns the number of queued entries.

        Safe against changes made meanwhile: `since` is `mark()` taken before SQL was read (by
        default: now). A conversation the index changed after it (added, claimed, removed by
        another process while SQL was read) keeps what the index says: newer than the read.

        A built index is changed incrementally: only the entries that differ, one atomic script
        each. A lost index is built into temporary keys and swapped in by one script: readers
        see no index or the whole one, never a half; the built marker is set with it."""
        since = self.mark() if since is None else since
        claimed = {cid: user for cid, user in claims}
        queued: dict[str, QueueEntry] = {}
        for entry in entries:
            if entry.conversation_id not in claimed:
                queued[entry.conversation_id] = entry  # a repeated id: the last one counts
        if self.is_built():
            changed = self._apply(queued, claimed, since)
            logger.debug("queue index synced: %d changed", changed)
            return len(queued)

        token = secrets.token_hex(8)
        live = self._entry_keys()
        temp = {name: redis_key(self.prefix, "rebuild", token, name[len(self.prefix) + 1:])
                for name in live}
        try:
            pipe = self.client.pipeline(transaction=False)
            by_queue: dict[str, dict[str, float]] = {}
            skills: dict[str, str] = {}
            for entry in queued.values():
                key = self.queue_key(entry.queue)
                by_queue.setdefault(key, {})[entry.conversation_id] = score(
                    entry.priority, entry.queued_at)
                skills[entry.conversation_id] = _skills(entry)
            for key, members in by_queue.items():
                self._write_batches(pipe, "zadd", temp[key], members)
            if skills:
                self._write_batches(pipe, "hset", temp[self.skills_key], skills)
            if claimed:
                self._write_batches(pipe, "hset", temp[self.claims_key], claimed)
            pipe.execute()
            kept = self._swap(keys=[*live, *(temp[key] for key in live), self.built_key,
                                    self.version_key, self.touched_key],
                              args=[since, utcnow().isoformat()])
        except BaseException:
            try:
                self.client.delete(*temp.values())
            except redis.RedisError:
                logger.warning("queue index: temporary rebuild keys left to expire")
            raise
        logger.debug("queue index rebuilt: %d waiting, %d claimed, %s kept as changed meanwhile",
                     len(queued), len(claimed), kept)
        return len(queued)

    def _apply(self, queued: dict[str, QueueEntry], claimed: dict[str, str], since: int) -> int:
        """Change only what differs from SQL, each entry atomically, skipping the entries
        changed since `since`. Returns how many were changed."""
        pipe = self.client.pipeline(transaction=True)
        names = list(QueueName)
        for queue in names:
            pipe.zrange(self.queue_key(queue), 0, -1, withscores=True)
        pipe.hgetall(self.skills_key)
        pipe.hgetall(self.claims_key)
        *ranges, raw_skills, raw_claims = pipe.execute()
        live_place: dict[str, tuple[str, float]] = {}
        for queue, members in zip(names, ranges):
            for member, member_score in members:
                live_place[_text(member)] = (self.queue_key(queue), float(member_score))
        live_skills = {_text(k): _text(v) for k, v in raw_skills.items()}
        live_claims = {_text(k): _text(v) for k, v in raw_claims.items()}
        keys = self._script_keys()
        changed = 0
        for cid, entry in queued.items():
            place = (self.queue_key(entry.queue), score(entry.priority, entry.queued_at))
            skills = _skills(entry)
            if live_place.get(cid) == place and live_skills.get(cid) == skills \
                    and cid not in live_claims:
                continue
            changed += self._add(keys=keys,
                                 args=[cid, place[0], repr(place[1]), skills, since]) == 1
        for cid, user in claimed.items():
            if live_claims.get(cid) == user and cid not in live_place:
                continue
            changed += self._set_claim(keys=keys, args=[cid, user, since]) == 1
        gone = (set(live_place) | set(live_skills) | set(live_claims)) - set(queued) - set(claimed)
        for cid in gone:
            changed += self._remove(keys=keys, args=[cid, since]) == 1
        self.client.set(self.built_key, utcnow().isoformat())
        return changed

    @staticmethod
    def _write_batches(pipe: Any, command: str, key: str, values: dict[str, Any]) -> None:
        """Queue `values` into `key` in pipeline-sized batches, executing full batches."""
        items = list(values.items())
        for start in range(0, len(items), _BATCH):
            chunk = dict(items[start:start + _BATCH])
            if command == "zadd":
                pipe.zadd(key, chunk)
            else:
                pipe.hset(key, mapping=chunk)
            pipe.expire(key, 3600)  # a crash before the swap leaves nothing behind for long
            if len(pipe) >= 16:
                pipe.execute()
