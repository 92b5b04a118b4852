"""Rosters (handoff.roster) through the desk, with the real pipeline, SQL and Redis: planning,
weekly repeats, swaps and refusals (all audited); the hours nobody is planned; and what a parent
hears after hours, from the roster, with the opening hours as fallback when a queue has none."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.accounts.sessions import Person
from bot.config import Settings
from bot.hours import parse_hours
from bot.rules import PRIORITY, QueueName
from bot.storage.models import AuditLog, Author, PlannedShift, Role, User, utcnow
from bot.triage.types import Risk
from bot.web.app import Services
from handoff.errors import Conflict, Invalid, NotAllowed, NotFound
from handoff.estimate import estimate_wait
from handoff.roster import Roster, RosterCache, RosterSchedule, merge
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person

ZONE = ZoneInfo("Europe/Amsterdam")


def a_monday() -> date:
    """A Monday at least a week ahead (planning in the past is refused)."""
    today = datetime.now(ZONE).date() + timedelta(days=7)
    return today + timedelta(days=(7 - today.weekday()) % 7)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def set_clock(services: Services, moment: datetime) -> Callable[[], datetime]:
    """The desk and the pipeline both at `moment` (in UTC, as their clocks give it)."""
    moment = moment.astimezone(UTC)

    def clock() -> datetime:
        return moment

    services.desk.ctx.clock = clock
    services.pipeline.clock = clock
    return clock


def audit_actions(services: Services) -> list[str]:
    with services.factory() as session:
        return list(session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def bot_texts(parent: Parent) -> str:
    return " ".join(text for author, text in parent.replies() if author is Author.bot)


@pytest.fixture
def coordinator(services: Services) -> Person:
    return person(services, Role.coordinator, "Coco")


# What a parent hears --------------------------------------------------------------------------

def test_after_hours_the_parent_hears_the_start_of_the_next_planned_shift(
    services: Services, coordinator: Person
) -> None:
    monday = a_monday()
    sanne = person(services, Role.volunteer, "Sanne")
    services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 19), at(monday, 23))
    # 16:00: the opening hours (09:00-23:00) would say "open, but nobody online: tomorrow 09:00".
    set_clock(services, at(monday, 16))
    parent = Parent(services)
    parent.wants_volunteer()
    said = bot_texts(parent)
    assert "Vandaag vanaf 19:00 is er volgens het rooster weer iemand" in said, said
    assert "09:00" not in said


def test_without_any_roster_for_the_queue_the_opening_hours_count(
    services: Services, settings: Settings, coordinator: Person
) -> None:
    assert settings.volunteer_hours == "09:00-23:00"
    monday = a_monday()
    # A roster for the professionals only: the volunteers keep their opening hours.
    mark = person(services, Role.professional, "Mark")
    services.desk.roster.plan(coordinator, mark.user_id, QueueName.professional, at(monday, 19), at(monday, 23))
    set_clock(services, at(monday, 6))
    parent = Parent(services)
    parent.wants_volunteer()
    assert "Vandaag vanaf 09:00 is er volgens het rooster weer iemand" in bot_texts(parent)


def test_the_call_line_names_the_planned_shift_too(services: Services, coordinator: Person) -> None:
    monday = a_monday()
    sanne = person(services, Role.volunteer, "Sanne")
    services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 19), at(monday, 23))
    schedule = services.pipeline.hours[QueueName.volunteer]
    assert not schedule.is_open(at(monday, 16), ZONE)  # "after hours" by the roster at 16:00
    assert schedule.next_opening(at(monday, 16), ZONE) == at(monday, 19)
    assert schedule.is_open(at(monday, 20), ZONE)
    assert schedule.closes_at(at(monday, 20), ZONE) == at(monday, 23)
    assert schedule.next_opening_after_close(at(monday, 20), ZONE) is None  # nothing after it
    assert schedule.text() is None  # no fixed daily hours to quote


def test_the_estimate_looks_ahead_by_the_roster_and_presence_still_decides(
    services: Services, settings: Settings, coordinator: Person
) -> None:
    monday = a_monday()
    sanne, lisa = person(services, Role.volunteer, "Sanne"), person(services, Role.volunteer, "Lisa")
    roster = services.desk.roster
    roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 9), at(monday, 13))
    roster.plan(coordinator, lisa.user_id, QueueName.volunteer, at(monday, 13), at(monday, 17))
    roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday + timedelta(days=1), 10),
                at(monday + timedelta(days=1), 12))
    hours = services.desk.hours[QueueName.volunteer]

    def estimate(now: datetime) -> tuple[int | None, datetime | None, bool]:
        with services.factory() as session:
            result = estimate_wait(session, QueueName.volunteer, PRIORITY[Risk.none], now=now.astimezone(UTC),
                                   hours=hours,
                                   zone=ZONE, handling_minutes=settings.handling_minutes,
                                   presence_timeout=timedelta(seconds=settings.presence_timeout_seconds))
        return result.minutes, result.next_shift_starts, result.open_now

    # Before the day: the first planned start (not the opening hours' 09:00 of some other day).
    assert estimate(at(monday, 7)) == (None, at(monday, 9), False)
    # Planned (09:00-17:00 without a gap: two people) but nobody online: the next planned start
    # after this stretch, tomorrow 10:00.
    assert estimate(at(monday, 14)) == (None, at(monday + timedelta(days=1), 10), True)
    # Someone really there, though not planned: minutes (live presence decides who is there).
    set_clock(services, at(monday, 7))
    services.desk.start_shift(lisa)
    minutes, starts, _ = estimate(at(monday, 7))
    assert minutes is not None and starts is None


def test_a_wait_that_runs_past_the_end_of_the_shift_is_not_promised(
    services: Services, settings: Settings, coordinator: Person
) -> None:
    """Sanne is there and busy at 22:50; her shift (the queue's only one tonight) ends at 23:00.
    "Within 12 minutes" would be a promise nobody planned: the estimate says when the planned
    stretch ends and when the roster has someone again."""
    monday, tuesday = a_monday(), a_monday() + timedelta(days=1)
    sanne = person(services, Role.volunteer, "Sanne")
    services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 19), at(monday, 23))
    services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(tuesday, 19), at(tuesday, 23))
    set_clock(services, at(monday, 22, 50))
    services.desk.start_shift(sanne)
    busy_with = Parent(services).wants_volunteer()
    services.desk.claim(busy_with, sanne)
    hours = services.desk.hours[QueueName.volunteer]

    def estimate(now: datetime) -> tuple[int | None, datetime | None, datetime | None]:
        with services.factory() as session:
            result = estimate_wait(session, QueueName.volunteer, PRIORITY[Risk.none], now=now.astimezone(UTC),
                                   hours=hours, zone=ZONE, handling_minutes=settings.handling_minutes,
                                   presence_timeout=timedelta(seconds=settings.presence_timeout_seconds))
        return result.minutes, result.next_shift_starts, result.closes_at

    assert settings.handling_minutes == 12
    assert estimate(at(monday, 22, 47)) == (12, None, None)  # 22:59: before the end, as it was
    assert estimate(at(monday, 22, 50)) == (12, at(tuesday, 19), at(monday, 23))
    # What the parent reads at 22:50.
    parent = Parent(services)
    waiting = parent.wants_volunteer()
    said = bot_texts(parent)
    assert "23:00" in said and "Morgen vanaf 19:00 is er volgens het rooster weer iemand" in said, said
    assert "binnen 12 minuten" not in said
    # A caller on hold in that queue hears no minutes either (the hold text makes no promise).
    from bot.channels.voice import Line

    held = str(Line(services).wait(waiting, "nl"))
    assert "minuten" not in held and "zodra er iemand vrij is" in held, held


# Planning and its refusals -----------------------------------------------------------------------

def test_refusals_have_their_reasons(services: Services, coordinator: Person) -> None:
    monday = a_monday()
    roster = services.desk.roster
    sanne = person(services, Role.volunteer, "Sanne")
    with pytest.raises(Invalid) as error:
        roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 13), at(monday, 9))
    assert error.value.reason == "roster_end_before_start"
    with pytest.raises(NotAllowed) as refused:
        roster.plan(coordinator, sanne.user_id, QueueName.professional, at(monday, 9), at(monday, 13))
    assert refused.value.reason == "roster_queue_not_allowed" and refused.value.detail["person"] == "Sanne"
    roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 9), at(monday, 13))
    with pytest.raises(Conflict) as overlap:  # the same person, overlapping, even a minute
        roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 12, 59), at(monday, 15))
    assert overlap.value.reason == "roster_overlap"
    roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 13), at(monday, 15))  # touching is fine
    with pytest.raises(Invalid) as past:
        roster.plan(coordinator, sanne.user_id, QueueName.volunteer, utcnow() - timedelta(hours=3),
                    utcnow() - timedelta(hours=1))
    assert past.value.reason == "roster_in_past"
    with pytest.raises(Invalid) as weeks:
        roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 20), at(monday, 21), weeks=27)
    assert weeks.value.reason == "roster_weeks"
    with pytest.raises(NotAllowed) as role:  # only coordinators plan
        roster.plan(sanne, sanne.user_id, QueueName.volunteer, at(monday, 20), at(monday, 21))
    assert role.value.reason == "coordinators_only"
    with pytest.raises(NotFound):
        roster.delete(coordinator, "no-such-shift")
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(PlannedShift)) == 2
    assert audit_actions(services) == ["roster_planned", "roster_planned"]


@pytest.mark.postgres
def test_two_plans_at_once_for_one_person_cannot_both_pass_the_overlap_check(
    services: Services, coordinator: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two coordinators plan Sanne at overlapping times at the same moment (PostgreSQL, READ
    COMMITTED): each checks for an overlap before the other has committed. Both checks meet at a
    barrier (given up after 2 s), so without a lock on the person both would pass and commit."""
    monday = a_monday()
    sanne = person(services, Role.volunteer, "Sanne")
    ria = person(services, Role.coordinator, "Ria")
    roster = services.desk.roster
    barrier = threading.Barrier(2, timeout=2)
    check = Roster._refuse_overlap

    def meet_after_check(self: Roster, *args: Any, **kwargs: Any) -> None:
        check(self, *args, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other plan waits for this one (as it should): go on alone

    monkeypatch.setattr(Roster, "_refuse_overlap", meet_after_check)
    outcomes: dict[str, object] = {}

    def plan(who: Person, start: int, end: int) -> None:
        try:
            outcomes[who.display_name] = roster.plan(who, sanne.user_id, QueueName.volunteer,
                                                     at(monday, start), at(monday, end))
        except Conflict as error:
            outcomes[who.display_name] = error.reason

    threads = [threading.Thread(target=plan, args=(coordinator, 9, 13)),
               threading.Thread(target=plan, args=(ria, 12, 15))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(str(v) for v in outcomes.values() if isinstance(v, str)) == ["roster_overlap"], outcomes
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(PlannedShift)) == 1


def test_repeat_weekly_keeps_the_local_time_across_summer_time(services: Services, coordinator: Person) -> None:
    # Summer time starts on Sunday 28 March 2027: 19:00 stays 19:00 local.
    first = date(2027, 3, 22)
    sanne = person(services, Role.volunteer, "Sanne")
    ids = services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(first, 19),
                                    at(first, 22), weeks=3)
    assert len(ids) == 3
    with services.factory() as session:
        shifts = session.scalars(select(PlannedShift).order_by(PlannedShift.starts_at)).all()
        starts = [s.starts_at.replace(tzinfo=s.starts_at.tzinfo or ZoneInfo("UTC")).astimezone(ZONE)
                  for s in shifts]
        series = {s.series_id for s in shifts}
    assert [(s.date(), s.hour) for s in starts] == [(first + timedelta(weeks=n), 19) for n in range(3)]
    assert len(series) == 1 and None not in series
    # A series that would overlap in one of its weeks is refused whole.
    mark = person(services, Role.professional, "Mark")
    services.desk.roster.plan(coordinator, mark.user_id, QueueName.professional, at(date(2027, 4, 5), 18),
                              at(date(2027, 4, 5), 20))
    with pytest.raises(Conflict):
        services.desk.roster.plan(coordinator, mark.user_id, QueueName.volunteer, at(date(2027, 3, 22), 19),
                                  at(date(2027, 3, 22), 21), weeks=3)
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(PlannedShift)) == 4


def test_swap_to_someone_who_may_take_the_queue(services: Services, coordinator: Person) -> None:
    monday = a_monday()
    roster = services.desk.roster
    sanne, lisa = person(services, Role.volunteer, "Sanne"), person(services, Role.volunteer, "Lisa")
    mark = person(services, Role.professional, "Mark")
    ids = roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 9), at(monday, 13), weeks=3)
    professional_shift = roster.plan(coordinator, mark.user_id, QueueName.professional, at(monday, 9),
                                     at(monday, 13))[0]
    # One week only.
    assert roster.swap(coordinator, ids[0], lisa.user_id) == 1
    assert [p.id for p in roster.upcoming(lisa.user_id)] == [ids[0]]
    # This week and the ones after it (the series), to Mark: a professional may take volunteers.
    with pytest.raises(Conflict):  # but Mark is on the professional shift in week 1
        roster.swap(coordinator, ids[0], mark.user_id, following=True)
    assert roster.swap(coordinator, ids[1], mark.user_id, following=True) == 2
    assert [p.id for p in roster.upcoming(mark.user_id)] == [professional_shift, ids[1], ids[2]]
    assert [p.id for p in roster.upcoming(sanne.user_id)] == []
    # A volunteer cannot take a professional shift.
    with pytest.raises(NotAllowed) as refused:
        roster.swap(coordinator, professional_shift, sanne.user_id)
    assert refused.value.reason == "roster_queue_not_allowed"
    with services.factory() as session:
        swaps = session.scalars(select(AuditLog).where(AuditLog.action == "roster_swapped")
                                .order_by(AuditLog.id)).all()
        assert [(a.user_id, a.detail["user_before"], a.detail["user_after"], len(a.detail["shifts"]))
                for a in swaps if a.detail] == [
            (coordinator.user_id, sanne.user_id, lisa.user_id, 1),
            (coordinator.user_id, sanne.user_id, mark.user_id, 2)]


def test_delete_and_own_upcoming_shifts(services: Services, coordinator: Person) -> None:
    monday = a_monday()
    roster = services.desk.roster
    sanne = person(services, Role.volunteer, "Sanne")
    ids = roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 9), at(monday, 13), weeks=4)
    other = roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 20), at(monday, 22))[0]
    assert roster.delete(coordinator, ids[2], following=True) == 2
    upcoming = roster.upcoming(sanne.user_id)
    assert [p.id for p in upcoming] == [ids[0], other, ids[1]]
    assert upcoming[0].starts_at == at(monday, 9) and upcoming[0].display_name == "Sanne"
    assert roster.delete(coordinator, other) == 1
    # A shift that has ended is no longer "upcoming".
    set_clock(services, at(monday, 14))
    assert [p.id for p in roster.upcoming(sanne.user_id)] == [ids[1]]
    with services.factory() as session:
        deleted = session.scalars(select(AuditLog).where(AuditLog.action == "roster_deleted")).all()
        assert sorted(len(a.detail["shifts"]) for a in deleted if a.detail) == [1, 2]


def test_uncovered_hours_per_queue(services: Services, coordinator: Person) -> None:
    monday = a_monday()
    roster = services.desk.roster
    sanne, lisa = person(services, Role.volunteer, "Sanne"), person(services, Role.volunteer, "Lisa")
    roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 9), at(monday, 13))
    roster.plan(coordinator, lisa.user_id, QueueName.volunteer, at(monday, 12), at(monday, 17, 30))
    gaps = roster.uncovered(monday, 2)
    # 17:00-18:00 is only half planned: still an hour nobody covers whole.
    assert gaps[QueueName.volunteer][monday] == [*range(9), *range(17, 24)]
    assert gaps[QueueName.volunteer][monday + timedelta(days=1)] == list(range(24))
    assert gaps[QueueName.professional][monday] == list(range(24))
    week = roster.week(coordinator, monday + timedelta(days=3))  # any day: its week
    assert week.monday == monday and [len(week.shifts[d]) for d in week.days] == [2, 0, 0, 0, 0, 0, 0]
    assert week.has_roster == {QueueName.volunteer: True, QueueName.professional: False}
    # Someone deactivated is not expected any more: their hours open up.
    with services.factory() as session, session.begin():
        user = session.get(User, lisa.user_id)
        assert user is not None
        user.active = False
    assert roster.uncovered(monday, 1)[QueueName.volunteer][monday] == [*range(9), *range(13, 24)]
    # The week still lists her shift (to swap or delete), marked as not expected.
    assert [(p.display_name, p.active) for p in roster.week(coordinator, monday).shifts[monday]] == [
        ("Sanne", True), ("Lisa", False)]


# The cache: cheap per message, right across processes ------------------------------------------

def test_the_cache_reads_sql_once_and_follows_changes_from_another_process(
    services: Services, settings: Settings, coordinator: Person
) -> None:
    monday = a_monday()
    sanne = person(services, Role.volunteer, "Sanne")
    # "Another process": its own cache over the same SQL and Redis, checking the version each call.
    other = RosterCache(services.factory, services.redis, prefix=settings.redis_prefix, check_every=0)
    schedule = RosterSchedule(other, QueueName.volunteer, parse_hours(settings.volunteer_hours))
    assert schedule.next_opening(at(monday, 6), ZONE) == at(monday, 9)  # the opening hours: no roster
    for _ in range(50):
        schedule.is_open(at(monday, 6), ZONE)
    assert other.loads == 1  # 51 questions, one read of SQL
    services.desk.roster.plan(coordinator, sanne.user_id, QueueName.volunteer, at(monday, 19), at(monday, 23))
    assert schedule.next_opening(at(monday, 6), ZONE) == at(monday, 19)  # seen through Redis
    assert other.loads == 2
    # This process's own cache was refreshed at once.
    assert services.pipeline.hours[QueueName.volunteer].next_opening(at(monday, 6), ZONE) == at(monday, 19)


def test_merge_joins_touching_and_overlapping_spans() -> None:
    t = datetime(2027, 1, 4, 9, tzinfo=ZONE)
    h = timedelta(hours=1)
    assert merge([(t + 2 * h, t + 3 * h), (t, t + h), (t + h, t + 2 * h), (t + 5 * h, t + 6 * h),
                  (t + 5 * h, t + 5 * h + h / 2)]) == ((t, t + 3 * h), (t + 5 * h, t + 6 * h))
