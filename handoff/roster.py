"""Rosters (issue 15): who is planned for which queue, and when.

Planned is not present. The roster says when someone is EXPECTED; who is really there is still
handoff.presence (an open `Shift` whose dashboard is alive). Two users of the roster:

- coordinators plan it (`Roster`: plan, repeat weekly, swap to another person, delete; the week
  and its hours where nobody is planned); everyone sees their own upcoming shifts. Every change
  is in the audit log. Refusals are domain errors with a reason key (handoff.errors).
- the parent's side asks when someone is expected (`RosterSchedule`, a bot.hours.Schedule): the
  after-hours text and the wait estimate's `next_shift_starts`. A queue without any planned shift
  at all falls back to its opening hours (VOLUNTEER_HOURS / PROFESSIONAL_HOURS).

Cheap per message: `RosterCache` keeps the planned blocks of the coming weeks in memory. A change
made here refreshes this process's cache at once and writes a new random version to Redis; other
processes compare that version at most every `check_every` seconds (one GET) and reload from
SQL when it differs, and reload anyway after `max_age` (so a lost Redis key or a Redis outage
costs at most that long).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.hours import Hours, Schedule, parse_hours
from bot.rules import QueueName
from bot.storage.models import PlannedShift, Role, User, aware, role_may_take, utcnow
from bot.storage.redis import key as redis_key
from handoff.context import Actor, DeskContext
from handoff.errors import Conflict, Invalid, NotAllowed, NotFound

logger = logging.getLogger(__name__)

#: How far ahead the cache holds planned shifts (and so how far ahead a parent can be told).
LOOKAHEAD = timedelta(weeks=8)
#: The cache is reloaded before less than this is left ahead of the moment asked about.
MIN_AHEAD = timedelta(weeks=4)
#: "herhaal wekelijks": at most this many weeks in one go.
MAX_WEEKS = 26
#: The longest one planned shift may be.
MAX_SHIFT_HOURS = 24
VERSION_KEY = ("roster", "version")

Block = tuple[datetime, datetime]


def coordinator_only(actor: Actor) -> None:
    if actor.role is not Role.coordinator:
        raise NotAllowed("coordinators_only")


def merge(spans: Sequence[Block]) -> tuple[Block, ...]:
    """Spans merged where they overlap or touch, sorted by start."""
    merged: list[Block] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


# The cache ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Loaded:
    version: bytes | None
    at: float  # time.monotonic() of the load
    low: datetime
    high: datetime
    blocks: Mapping[QueueName, tuple[Block, ...]]
    exists: frozenset[QueueName]  # queues with any planned shift at all (past ones too)


_FAILED = object()


class RosterCache:
    """The planned blocks per queue (active people only, merged) from a day before to LOOKAHEAD
    after the moment asked about, and which queues have a roster at all. Thread-safe."""

    def __init__(self, factory: sessionmaker[Session], redis_client: redis.Redis | None, *,
                 prefix: str = "ot", max_age: timedelta = timedelta(seconds=60),
                 check_every: float = 1.0) -> None:
        self.factory = factory
        self.redis = redis_client
        self.prefix = prefix
        self.max_age = max_age.total_seconds()
        self.check_every = check_every
        self.loads = 0  # how often SQL was read (tests and the curious)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._checked = 0.0

    def _read_version(self) -> bytes | None | object:
        if self.redis is None:
            return None
        try:
            value = self.redis.get(redis_key(self.prefix, *VERSION_KEY))
        except redis.RedisError:
            return _FAILED
        return value if isinstance(value, bytes) else (value.encode() if isinstance(value, str) else None)

    def current(self, moment: datetime) -> _Loaded:
        with self._lock:
            clock = time.monotonic()
            loaded = self._loaded
            if loaded is not None and clock - self._checked >= self.check_every:
                self._checked = clock
                version = self._read_version()
                if version is not _FAILED and version != loaded.version:
                    loaded = None  # changed by another process
            if (loaded is None or clock - loaded.at > self.max_age
                    or moment < loaded.low or moment + MIN_AHEAD > loaded.high):
                version = self._read_version()  # before SQL: a change during the load shows next time
                loaded = self._load(moment, None if version is _FAILED else version, clock)  # type: ignore[arg-type]
                self._loaded = loaded
                self._checked = clock
            return loaded

    def _load(self, moment: datetime, version: bytes | None, clock: float) -> _Loaded:
        moment = moment.astimezone(UTC)  # stored as UTC (SQLite compares the text)
        low, high = moment - timedelta(days=1), moment + LOOKAHEAD
        with self.factory() as session:
            rows = session.execute(
                select(PlannedShift.queue, PlannedShift.starts_at, PlannedShift.ends_at)
                .join(User, User.id == PlannedShift.user_id)
                .where(User.active.is_(True), PlannedShift.ends_at > low, PlannedShift.starts_at < high)
            ).all()
            exists = frozenset(session.scalars(select(PlannedShift.queue).distinct()))
        spans: dict[QueueName, list[Block]] = {q: [] for q in QueueName}
        for queue, start, end in rows:
            spans[queue].append((_utc(start), _utc(end)))
        self.loads += 1
        return _Loaded(version=version, at=clock, low=low, high=high,
                       blocks={q: merge(s) for q, s in spans.items()}, exists=exists)

    def changed(self) -> None:
        """After a committed change: this process reloads at once, the others at their next
        version check (a new random version in Redis)."""
        with self._lock:
            self._loaded = None
        if self.redis is None:
            return
        try:
            self.redis.set(redis_key(self.prefix, *VERSION_KEY), uuid.uuid4().hex)
        except redis.RedisError as error:
            logger.warning("roster: version not written (%s); other processes reload within %ds",
                           type(error).__name__, int(self.max_age))


class RosterSchedule:
    """A queue's bot.hours.Schedule from the roster; its opening hours while the queue has no
    planned shift at all (`fallback`)."""

    def __init__(self, cache: RosterCache, queue: QueueName, fallback: Hours) -> None:
        self.cache = cache
        self.queue = queue
        self.fallback = fallback

    def _blocks(self, moment: datetime) -> tuple[Block, ...] | None:
        loaded = self.cache.current(moment)
        if self.queue not in loaded.exists:
            return None
        return loaded.blocks.get(self.queue, ())

    @staticmethod
    def _covering(blocks: tuple[Block, ...], moment: datetime) -> Block | None:
        return next((b for b in blocks if b[0] <= moment < b[1]), None)

    @staticmethod
    def _next_start(blocks: tuple[Block, ...], moment: datetime) -> datetime | None:
        return next((start for start, _ in blocks if start > moment), None)

    def is_open(self, moment: datetime, zone: ZoneInfo) -> bool:
        blocks = self._blocks(moment)
        if blocks is None:
            return self.fallback.is_open(moment, zone)
        return self._covering(blocks, moment) is not None

    def next_opening(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        blocks = self._blocks(moment)
        if blocks is None:
            return self.fallback.next_opening(moment, zone)
        if self._covering(blocks, moment) is not None:
            return moment
        return self._next_start(blocks, moment)

    def closes_at(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        blocks = self._blocks(moment)
        if blocks is None:
            return self.fallback.closes_at(moment, zone)
        covering = self._covering(blocks, moment)
        return covering[1] if covering is not None else None

    def next_opening_after_close(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        blocks = self._blocks(moment)
        if blocks is None:
            return self.fallback.next_opening_after_close(moment, zone)
        covering = self._covering(blocks, moment)
        return self._next_start(blocks, covering[1] if covering is not None else moment)

    def text(self) -> str | None:
        return self.fallback.text() if self._blocks(utcnow()) is None else None


def roster_schedules(cache: RosterCache, settings: Settings) -> dict[QueueName, Schedule]:
    """Each queue's schedule: the roster, with the queue's opening hours as its fallback."""
    return {
        QueueName.volunteer: RosterSchedule(cache, QueueName.volunteer, parse_hours(settings.volunteer_hours)),
        QueueName.professional: RosterSchedule(cache, QueueName.professional,
                                               parse_hours(settings.professional_hours)),
    }


# Planning -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Planned:
    """One planned shift, as pages show it."""

    id: str
    user_id: str
    display_name: str
    queue: QueueName
    starts_at: datetime
    ends_at: datetime
    series_id: str | None
    #: False for a deactivated person: still on the roster, but not expected (swap or delete it).
    active: bool = True


@dataclass(frozen=True)
class Person:
    """Someone who can be planned: an active account."""

    id: str
    display_name: str
    role: Role


@dataclass
class Week:
    """A week of the roster: the planned shifts per local day, and per queue the local hours of
    each day that no planned shift covers whole (`uncovered`); `has_roster` per queue (without
    one, the opening hours still count for parents)."""

    monday: date
    days: list[date]
    shifts: dict[date, list[Planned]]
    uncovered: dict[QueueName, dict[date, list[int]]]
    has_roster: dict[QueueName, bool]
    people: list[Person] = field(default_factory=list)


class Roster:
    """Planning the roster (coordinators) and reading it (everyone their own). `ctx` gives SQL,
    the clock, the time zone and the audit log; `cache` is told after every change."""

    def __init__(self, ctx: DeskContext, cache: RosterCache) -> None:
        self.ctx = ctx
        self.cache = cache

    # changes ------------------------------------------------------------------------------------

    def plan(self, actor: Actor, user_id: str, queue: QueueName, starts_at: datetime,
             ends_at: datetime, *, weeks: int = 1) -> list[str]:
        """Plan a shift, and with `weeks` > 1 the same local times in each following week (one
        series). All or nothing: one refusal refuses the whole series."""
        coordinator_only(actor)
        if not 1 <= weeks <= MAX_WEEKS:
            raise Invalid("roster_weeks", most=MAX_WEEKS)
        self._check_times(starts_at, ends_at)
        series = [(self._weeks_later(starts_at, n), self._weeks_later(ends_at, n)) for n in range(weeks)]
        series = [(start.astimezone(UTC), end.astimezone(UTC)) for start, end in series]
        series_id = str(uuid.uuid4()) if weeks > 1 else None
        ids: list[str] = []
        with self.ctx.factory() as session, session.begin():
            person = self._person(session, user_id, queue)
            for start, end in series:
                self._refuse_overlap(session, person, start, end)
                shift = PlannedShift(user_id=person.id, queue=queue, starts_at=start, ends_at=end,
                                     series_id=series_id, created_by=actor.user_id,
                                     created_at=self._now())
                session.add(shift)
                session.flush()
                ids.append(shift.id)
            self.ctx.audit(session, actor, "roster_planned", None, shifts=ids, user=person.id,
                           queue=queue.value, starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat(),
                           weeks=weeks, series=series_id)
        self.cache.changed()
        return ids

    def swap(self, actor: Actor, shift_id: str, user_id: str, *, following: bool = False) -> int:
        """Give a planned shift (with `following`: also the later shifts of its series) to another
        person, who may take its queue and is free then. Returns how many shifts moved."""
        coordinator_only(actor)
        with self.ctx.factory() as session, session.begin():
            shifts = self._shifts(session, shift_id, following)
            first = shifts[0]
            person = self._person(session, user_id, first.queue)
            before = first.user_id
            for shift in shifts:
                self._refuse_overlap(session, person, _utc(shift.starts_at), _utc(shift.ends_at),
                                     ignore=shift.id)
                shift.user_id = person.id
            self.ctx.audit(session, actor, "roster_swapped", None, shifts=[s.id for s in shifts],
                           user_before=before, user_after=person.id, queue=first.queue.value)
        self.cache.changed()
        return len(shifts)

    def delete(self, actor: Actor, shift_id: str, *, following: bool = False) -> int:
        """Take a planned shift off the roster (with `following`: the later ones of its series
        too). Returns how many."""
        coordinator_only(actor)
        with self.ctx.factory() as session, session.begin():
            shifts = self._shifts(session, shift_id, following)
            detail = [{"id": s.id, "user": s.user_id, "queue": s.queue.value,
                       "starts_at": (_utc(s.starts_at)).isoformat(),
                       "ends_at": (_utc(s.ends_at)).isoformat()} for s in shifts]
            for shift in shifts:
                session.delete(shift)
            self.ctx.audit(session, actor, "roster_deleted", None, shifts=detail)
        self.cache.changed()
        return len(shifts)

    # reading ------------------------------------------------------------------------------------

    def upcoming(self, user_id: str, *, limit: int = 50) -> list[Planned]:
        """A person's own shifts that have not ended yet, soonest first."""
        now = self._now()
        with self.ctx.factory() as session:
            rows = session.execute(
                select(PlannedShift, User.display_name, User.active).join(User, User.id == PlannedShift.user_id)
                .where(PlannedShift.user_id == user_id, PlannedShift.ends_at > now)
                .order_by(PlannedShift.starts_at).limit(limit)).all()
            return [_planned(shift, name, active) for shift, name, active in rows]

    def people(self, actor: Actor) -> list[Person]:
        """The active people a coordinator can plan, by name."""
        coordinator_only(actor)
        with self.ctx.factory() as session:
            rows = session.execute(select(User.id, User.display_name, User.role)
                                   .where(User.active.is_(True)).order_by(User.display_name)).all()
            return [Person(uid, name, role) for uid, name, role in rows]

    def week(self, actor: Actor, monday: date) -> Week:
        """The week from local `monday` (any day: its week's Monday): shifts per day, the hours
        nobody is planned per queue, whether each queue has a roster at all."""
        coordinator_only(actor)
        monday = monday - timedelta(days=monday.weekday())
        days = [monday + timedelta(days=n) for n in range(7)]
        start, end = self._local_midnight(days[0]), self._local_midnight(days[-1] + timedelta(days=1))
        with self.ctx.factory() as session:
            rows = session.execute(
                select(PlannedShift, User.display_name, User.active).join(User, User.id == PlannedShift.user_id)
                .where(PlannedShift.ends_at > start, PlannedShift.starts_at < end)
                .order_by(PlannedShift.starts_at, User.display_name)).all()
            exists = set(session.scalars(select(PlannedShift.queue).distinct()))
        shifts: dict[date, list[Planned]] = {d: [] for d in days}
        for shift, name, active in rows:
            planned = _planned(shift, name, active)
            day = planned.starts_at.astimezone(self.ctx.zone).date()
            shifts.setdefault(day if day in shifts else days[0], []).append(planned)
        return Week(monday=monday, days=days, shifts=shifts,
                    uncovered=self.uncovered(days[0], 7),
                    has_roster={q: q in exists for q in QueueName},
                    people=self.people(actor))

    def uncovered(self, first: date, days: int = 7) -> dict[QueueName, dict[date, list[int]]]:
        """Per queue, per local day from `first`, the local hours (0-23) that no planned shift of
        an active person covers whole."""
        zone = self.ctx.zone
        start = self._local_midnight(first)
        end = self._local_midnight(first + timedelta(days=days))
        with self.ctx.factory() as session:
            rows = session.execute(
                select(PlannedShift.queue, PlannedShift.starts_at, PlannedShift.ends_at)
                .join(User, User.id == PlannedShift.user_id)
                .where(User.active.is_(True), PlannedShift.ends_at > start, PlannedShift.starts_at < end)
            ).all()
        spans: dict[QueueName, list[Block]] = {q: [] for q in QueueName}
        for queue, s, e in rows:
            spans[queue].append((_utc(s), _utc(e)))
        result: dict[QueueName, dict[date, list[int]]] = {}
        for queue in QueueName:
            blocks = merge(spans[queue])
            per_day: dict[date, list[int]] = {}
            for n in range(days):
                day = first + timedelta(days=n)
                gaps = []
                for hour in range(24):
                    slot = datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)
                    slot_end = slot + timedelta(hours=1)
                    if not any(b0 <= slot and slot_end <= b1 for b0, b1 in blocks):
                        gaps.append(hour)
                per_day[day] = gaps
            result[queue] = per_day
        return result

    # helpers ------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.ctx.clock().astimezone(UTC)

    def _local_midnight(self, day: date) -> datetime:
        """The start of a local day, in UTC (how every time is stored)."""
        return datetime(day.year, day.month, day.day, tzinfo=self.ctx.zone).astimezone(UTC)

    def _weeks_later(self, moment: datetime, weeks: int) -> datetime:
        """The same local wall-clock time `weeks` weeks later (a repeat keeps 19:00 across DST)."""
        local = moment.astimezone(self.ctx.zone)
        return (local.replace(tzinfo=None) + timedelta(weeks=weeks)).replace(tzinfo=self.ctx.zone)

    def _check_times(self, starts_at: datetime, ends_at: datetime) -> None:
        if ends_at <= starts_at:
            raise Invalid("roster_end_before_start")
        if ends_at - starts_at > timedelta(hours=MAX_SHIFT_HOURS):
            raise Invalid("roster_too_long", hours=MAX_SHIFT_HOURS)
        if ends_at <= self._now():
            raise Invalid("roster_in_past")

    @staticmethod
    def _person(session: Session, user_id: str, queue: QueueName) -> User:
        """The person to plan, locked (FOR UPDATE on PostgreSQL) until the change commits: two
        plans or swaps for one person at once take turns, so the overlap check of the second
        sees the first (READ COMMITTED would otherwise let both pass)."""
        user = session.get(User, user_id, with_for_update=True)
        if user is None or not user.active:
            raise NotFound("roster_person_gone")
        if not role_may_take(user.role, queue):
            raise NotAllowed("roster_queue_not_allowed", person=user.display_name)
        return user

    def _refuse_overlap(self, session: Session, person: User, start: datetime, end: datetime,
                        ignore: str | None = None) -> None:
        """One person is on one shift at a time, whatever the queue."""
        query = select(PlannedShift).where(PlannedShift.user_id == person.id,
                                           PlannedShift.starts_at < end, PlannedShift.ends_at > start)
        if ignore is not None:
            query = query.where(PlannedShift.id != ignore)
        clash = session.scalars(query.limit(1)).first()
        if clash is not None:
            zone = self.ctx.zone
            s = _utc(clash.starts_at).astimezone(zone)
            e = _utc(clash.ends_at).astimezone(zone)
            raise Conflict("roster_overlap", person=person.display_name,
                           when=f"{s:%Y-%m-%d %H:%M}-{e:%H:%M}")

    @staticmethod
    def _shifts(session: Session, shift_id: str, following: bool) -> list[PlannedShift]:
        shift = session.get(PlannedShift, shift_id, with_for_update=True)
        if shift is None:
            raise NotFound("roster_shift_gone")
        if not following or shift.series_id is None:
            return [shift]
        return list(session.scalars(
            select(PlannedShift).where(PlannedShift.series_id == shift.series_id,
                                       PlannedShift.starts_at >= shift.starts_at)
            .order_by(PlannedShift.starts_at).with_for_update()))


def _utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives naive ones back)."""
    return (aware(moment) or moment).astimezone(UTC)


def _planned(shift: PlannedShift, name: str, active: bool = True) -> Planned:
    return Planned(id=shift.id, user_id=shift.user_id, display_name=name, queue=shift.queue,
                   starts_at=_utc(shift.starts_at),
                   ends_at=_utc(shift.ends_at), series_id=shift.series_id,
                   active=active)


__all__ = ["LOOKAHEAD", "MAX_SHIFT_HOURS", "MAX_WEEKS", "Person", "Planned", "Roster", "RosterCache",
           "RosterSchedule", "Week", "merge", "roster_schedules"]
