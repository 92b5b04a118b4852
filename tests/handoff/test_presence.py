"""Presence that is true, with the real pipeline, desk, SQL (SQLite or PostgreSQL) and Redis.

"On shift" means present: an open shift whose dashboard was seen within PRESENCE_TIMEOUT_SECONDS
(handoff.presence). Waits, the queue page and continuity count only those people; a long-gone
dashboard ends the shift; acute and high conversations reach everyone on shift, and an acute one
is a volunteer's to take (or to hand to the coordinator present) while no professional is. Time
is moved with the desk's and the pipeline's own clock, never by sleeping.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.hours import Hours, parse_hours
from bot.storage.models import (
    AuditLog,
    Author,
    Conversation,
    ConversationStatus,
    Handoff,
    QueueName,
    Role,
    Shift,
    utcnow,
)
from bot.triage.types import Danger, Risk
from bot.web.app import Services
from bot.web.dashboard import risk_reason, urgency_headline
from handoff import events
from handoff.desk import HEARTBEAT_EVERY, NotAllowed, Outcome, Urgency
from handoff.estimate import estimate_wait
from handoff.interfaces import PRIORITY
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SUICIDE = "ik wil niet meer leven, ik heb de pillen al klaarliggen"


class Clock:
    """The desk's and the pipeline's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services) -> Clock:
    moved = Clock()
    services.desk.clock = moved
    services.pipeline.clock = moved
    return moved


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=AMSTERDAM)


def conversation(services: Services, conversation_id: str) -> Conversation:
    with services.factory() as session:
        found = session.get(Conversation, conversation_id)
        assert found is not None
        return found


def seen(services: Services, user_id: str, at: datetime) -> None:
    """The person's dashboard was last seen at `at`."""
    with services.factory() as session, session.begin():
        shift = session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))
        assert shift is not None
        shift.last_seen_at = shift.started_at = at


# Opening hours: when the rota next has someone ----------------------------------------------------

def test_next_opening_after_the_current_period_closes() -> None:
    day = parse_hours("09:00-23:00")
    assert day.next_opening_after_close(local(10, 22, 30), AMSTERDAM) == local(11, 9)
    assert day.closes_at(local(10, 22, 30), AMSTERDAM) == local(10, 23)
    assert day.next_opening_after_close(local(10, 23, 30), AMSTERDAM) == local(11, 9)  # closed now
    assert day.next_opening_after_close(local(10, 7), AMSTERDAM) == local(10, 9)
    assert day.closes_at(local(10, 7), AMSTERDAM) is None
    night = parse_hours("22:00-02:00")  # past midnight
    assert night.closes_at(local(10, 23), AMSTERDAM) == local(11, 2)
    assert night.next_opening_after_close(local(10, 23), AMSTERDAM) == local(11, 22)
    assert night.next_opening_after_close(local(11, 1), AMSTERDAM) == local(11, 22)
    until_midnight = parse_hours("09:00-24:00")
    assert until_midnight.closes_at(local(10, 23, 59), AMSTERDAM) == local(11, 0)
    assert until_midnight.next_opening_after_close(local(10, 23, 59), AMSTERDAM) == local(11, 9)
    always = parse_hours("00:00-24:00")
    assert always.next_opening_after_close(local(10, 3), AMSTERDAM) is None


# The estimate ----------------------------------------------------------------------------------------

def test_the_estimate_counts_only_people_present(settings: Settings, services: Services) -> None:
    hours = parse_hours("09:00-23:00")
    timeout = timedelta(seconds=settings.presence_timeout_seconds)
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    now = local(10, 22, 30).astimezone(AMSTERDAM)

    def estimate(at: datetime, queue: QueueName = QueueName.volunteer, priority: int = 3):
        with services.factory() as session:
            return estimate_wait(session, queue, priority, now=at, hours=hours, zone=AMSTERDAM,
                                 handling_minutes=12, presence_timeout=timeout)

    seen(services, sanne.user_id, now - timeout + timedelta(seconds=5))
    there = estimate(now)
    assert there.people_on_shift == 1 and there.minutes is not None and there.open_now
    assert there.next_shift_starts is None

    # Her tab closed: past the timeout she no longer counts. Open by the rota, but nobody is
    # there: not "any minute", but when the next opening period starts.
    seen(services, sanne.user_id, now - timeout - timedelta(seconds=1))
    away = estimate(now)
    assert away.people_on_shift == 0 and away.minutes is None and away.open_now
    assert away.next_shift_starts == local(11, 9)
    after_hours = estimate(local(10, 23, 30))
    assert not after_hours.open_now and after_hours.next_shift_starts == local(11, 9)

    # Danger now in the professional queue with no professional present: the volunteer who is
    # there may take it (and is alerted), so the parent waits for her, not for the rota.
    seen(services, sanne.user_id, now)
    acute = estimate(now, QueueName.professional, PRIORITY[Risk.acute])
    assert acute.people_on_shift == 1 and acute.minutes is not None
    high = estimate(now, QueueName.professional, PRIORITY[Risk.high])
    assert high.people_on_shift == 0 and high.minutes is None


def test_the_next_parent_hears_that_nobody_is_online(services: Services, clock: Clock) -> None:
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    minute = clock.now.astimezone(services.desk.zone)
    start = (minute.hour * 60 + minute.minute - 60) % (24 * 60)
    hours = Hours(start, (start + 180) % (24 * 60))  # open now, closing in two hours
    services.pipeline.hours[QueueName.volunteer] = hours
    first = Parent(services)
    first.wants_volunteer()
    assert "binnen" in first.replies()[-1][1]  # someone is there: minutes

    clock.advance(services.settings.presence_timeout_seconds + 1)  # her tab closed long enough
    second = Parent(services)
    second.wants_volunteer()
    wait = second.replies()[-1][1]
    assert "binnen" not in wait, wait
    assert f"{start // 60:02d}:{start % 60:02d}" in wait, wait  # when the rota next has someone


# Heartbeats, coming back, leaving ---------------------------------------------------------------------

def test_away_after_the_timeout_and_back_with_the_next_heartbeat(settings: Settings, services: Services,
                                                                 clock: Clock) -> None:
    assert services.desk.heartbeat_every <= min(HEARTBEAT_EVERY, services.desk.presence_timeout / 3)
    sanne = person(services, Role.volunteer, name="Sanne")
    services.desk.start_shift(sanne)
    snapshot = services.desk.snapshot(sanne)
    assert snapshot.on_shift[QueueName.volunteer] == 1
    assert [(p.name, p.present) for p in snapshot.people] == [("Sanne", True)]
    feed = services.redis.pubsub(ignore_subscribe_messages=True)
    feed.subscribe(events.channel(services.desk.prefix))
    services.desk.tick()  # the worker's round

    clock.advance(settings.presence_timeout_seconds - 1)
    services.desk.tick()
    assert services.desk.snapshot(sanne).on_shift[QueueName.volunteer] == 1
    assert shift_events(feed) == []
    clock.advance(2)
    snapshot = services.desk.snapshot(sanne)
    assert snapshot.on_shift[QueueName.volunteer] == 0
    assert [(p.name, p.present) for p in snapshot.people] == [("Sanne", False)]  # "weg"
    assert snapshot.shift is not None  # still on the rota: away is not gone
    services.desk.tick()  # the dashboards hear that someone went away
    assert shift_events(feed) == [None]
    services.desk.tick()
    assert shift_events(feed) == []  # once

    services.desk.heartbeat(sanne)  # her dashboard reconnected
    snapshot = services.desk.snapshot(sanne)
    assert snapshot.on_shift[QueueName.volunteer] == 1 and snapshot.people[0].present
    assert shift_events(feed) == [sanne.user_id]  # and the dashboards hear she is back
    services.desk.heartbeat(sanne)
    assert shift_events(feed) == []
    feed.close()


def shift_events(feed: Any) -> list[str | None]:
    """The shift events published since the last call: whom each concerns."""
    found = []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        message = feed.get_message(timeout=0.1)
        if message and message.get("type") == "message":
            event = events.Event.from_json(message["data"])
            if event.type == "shift":
                found.append(event.user_id)
    return found


def test_a_long_gone_dashboard_ends_the_shift_and_returns_its_claims(settings: Settings, services: Services,
                                                                     clock: Clock) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne, mark = person(services, name="Sanne"), person(services, name="Mark")
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    services.desk.claim(conversation_id, sanne)
    clock.advance(settings.claim_idle_minutes * 60 - 30)
    services.desk.heartbeat(mark)  # Mark's dashboard is open; Sanne's is not
    clock.advance(60)
    services.desk.tick()
    with services.factory() as session:
        shifts = {s.user_id: s for s in session.scalars(select(Shift))}
        assert shifts[sanne.user_id].ended_at is not None
        assert shifts[mark.user_id].ended_at is None
        stopped = session.scalars(select(AuditLog).where(AuditLog.action == "shift_stopped")).one()
        assert stopped.user_id == sanne.user_id and stopped.detail == {"returned": 1, "reason": "idle"}
    assert conversation(services, conversation_id).status is ConversationStatus.queued
    assert services.desk.index.waiting(QueueName.volunteer) == [conversation_id]


def test_continuity_is_offered_only_to_someone_present(settings: Settings, services: Services,
                                                       clock: Clock) -> None:
    parent = Parent(services)
    first = parent.wants_volunteer()
    sanne, mark = person(services, name="Sanne"), person(services, name="Mark")
    services.desk.start_shift(sanne)
    services.desk.claim(first, sanne)
    services.desk.close(first, sanne, Outcome.helped)
    clock.advance(settings.presence_timeout_seconds + 1)  # Sanne's dashboard went away
    services.desk.start_shift(mark)
    second = parent.wants_volunteer()
    assert second != first
    [entry] = services.desk.index.entries([QueueName.volunteer])
    assert entry.conversation_id == second and entry.offer_to is None  # not held for someone away
    assert services.desk.claim_next(mark) == second


# Acute and high reach everyone who is really there ----------------------------------------------------

def test_everyone_on_shift_sees_acute_and_a_volunteer_takes_it_while_no_professional_is_present(
    settings: Settings, services: Services, clock: Clock
) -> None:
    sanne = person(services, Role.volunteer, name="Sanne")
    mark = person(services, Role.professional, name="Mark")
    parent = Parent(services)
    conversation_id = parent.says(SUICIDE)
    acute = conversation(services, conversation_id)
    assert acute.queue is QueueName.professional and acute.highest_risk is Risk.acute

    # Not on shift: not in her list. On shift: in her list, with who takes care.
    assert conversation_id not in [i.conversation_id for i in services.desk.snapshot(sanne).waiting]
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    [item] = [i for i in services.desk.snapshot(sanne).waiting if i.conversation_id == conversation_id]
    assert item.urgent and not item.can_claim  # Mark is present: his
    card = services.desk.card(conversation_id, sanne)
    assert not card.can_claim and card.professionals_present == ["Mark"] and card.coordinators == []
    with pytest.raises(NotAllowed):
        services.desk.claim(conversation_id, sanne)
    assert services.desk.claim_next(sanne) is None
    assert services.desk.index.waiting(QueueName.professional) == [conversation_id]  # given back

    # Mark's dashboard goes away: now Sanne may take it, with "Volgende oppakken" too.
    clock.advance(settings.presence_timeout_seconds + 1)
    services.desk.heartbeat(sanne)
    [item] = [i for i in services.desk.snapshot(sanne).waiting if i.conversation_id == conversation_id]
    assert item.can_claim
    assert services.desk.card(conversation_id, sanne).can_claim
    assert services.desk.claim_next(sanne) == conversation_id
    assert not [t for a, t in parent.replies() if a is Author.person]  # not before she reads
    services.desk.open(conversation_id, sanne)
    handover = [t for a, t in parent.replies() if a is Author.person]
    assert len(handover) == 1 and "Sanne" in handover[0] and "vrijwilliger" in handover[0]


def test_without_redis_the_sql_fallback_follows_the_same_rule(services: Services, clock: Clock) -> None:
    sanne = person(services, Role.volunteer, name="Sanne")
    services.desk.start_shift(sanne)
    conversation_id = Parent(services).says(SUICIDE)
    assert services.desk._sql_next(  # what claim-next asks SQL when Redis is away
        [QueueName.volunteer], acute_from=services.desk._acute_queues(sanne, [QueueName.volunteer])
    ) == conversation_id
    mark = person(services, Role.professional, name="Mark")
    services.desk.start_shift(mark)
    assert services.desk._acute_queues(sanne, [QueueName.volunteer]) == ()


def test_a_high_professional_conversation_is_seen_but_never_taken_by_a_volunteer(
    services: Services, clock: Clock
) -> None:
    sanne = person(services, Role.volunteer, name="Sanne")
    services.desk.start_shift(sanne)
    parent = Parent(services)
    conversation_id = parent.says("mijn vriend slaat me als hij gedronken heeft en ik ben zwanger")
    high = conversation(services, conversation_id)
    # Violence by a partner in pregnancy is high (a theme floor), for the professional queue.
    assert (high.highest_risk, high.queue) == (Risk.high, QueueName.professional)
    [item] = [i for i in services.desk.snapshot(sanne).waiting if i.conversation_id == conversation_id]
    assert item.urgent and not item.can_claim  # no professional present, still not hers
    card = services.desk.card(conversation_id, sanne)
    assert not card.can_claim and card.coordinators == [] and card.urgency is not None
    with pytest.raises(NotAllowed):
        services.desk.claim(conversation_id, sanne)
    assert services.desk.claim_next(sanne) is None


def test_an_acute_conversation_goes_to_the_coordinator_present(services: Services, clock: Clock) -> None:
    sanne = person(services, Role.volunteer, name="Sanne")
    services.desk.start_shift(sanne)
    parent = Parent(services)
    conversation_id = parent.says(SUICIDE)
    # No coordinator on shift: the option is not there.
    assert services.desk.card(conversation_id, sanne).coordinators == []
    fatima = person(services, Role.coordinator, name="Fatima")
    with pytest.raises(NotAllowed):
        services.desk.hand_to_coordinator(conversation_id, sanne, fatima.user_id)
    services.desk.start_shift(fatima, QueueName.volunteer)  # a coordinator on the volunteers' rota
    assert services.desk.card(conversation_id, sanne).coordinators == [(fatima.user_id, "Fatima")]
    with pytest.raises(NotAllowed):
        services.desk.hand_to_coordinator(conversation_id, sanne, sanne.user_id)  # not a coordinator

    services.desk.hand_to_coordinator(conversation_id, sanne, fatima.user_id)
    handed = conversation(services, conversation_id)
    assert handed.status is ConversationStatus.claimed and handed.claimed_by == fatima.user_id
    assert handed.acute_alert_at is not None  # her alert until she marks it seen
    assert [i.conversation_id for i in services.desk.snapshot(fatima).mine] == [conversation_id]
    with services.factory() as session:
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "handed_to_coordinator")).one()
        assert audit.user_id == sanne.user_id and audit.detail["to"] == fatima.user_id
    assert not [t for a, t in parent.replies() if a is Author.person]
    services.desk.open(conversation_id, fatima)
    [handover] = [t for a, t in parent.replies() if a is Author.person]
    assert "Fatima" in handover


# The warm handover at the opening -------------------------------------------------------------------

def test_the_handover_goes_once_per_claim_at_its_first_opening(services: Services, clock: Clock) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    services.desk.claim(conversation_id, sanne)
    assert not services.desk.greet(conversation_id, person(services))  # someone else opening: no
    assert not [t for a, t in parent.replies() if a is Author.person]
    services.desk.open(conversation_id, sanne)
    services.desk.open(conversation_id, sanne)
    assert [a for a, _ in parent.replies()].count(Author.person) == 1
    # Back in the queue and claimed again: a new claim, a new handover at its opening.
    services.desk.release(conversation_id, sanne)
    services.desk.claim(conversation_id, sanne)
    assert [a for a, _ in parent.replies()].count(Author.person) == 1
    services.desk.open(conversation_id, sanne)
    assert [a for a, _ in parent.replies()].count(Author.person) == 2
    with services.factory() as session:
        greeted = session.scalars(select(Handoff.greeted_at).where(Handoff.conversation_id == conversation_id,
                                                                   Handoff.claimed_by == sanne.user_id)).all()
        assert len([g for g in greeted if g is not None]) == 2


def test_a_reply_before_any_opening_still_says_who_is_writing(services: Services, clock: Clock) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.claim(conversation_id, sanne)
    services.desk.reply(conversation_id, sanne, "Hoi, fijn dat je schrijft.")
    people = [t for a, t in parent.replies() if a is Author.person]
    assert len(people) == 2 and "Sanne" in people[0] and people[1] == "Hoi, fijn dat je schrijft."
    services.desk.open(conversation_id, sanne)
    assert len([t for a, t in parent.replies() if a is Author.person]) == 2


# The card says plainly what to do ----------------------------------------------------------------------

def test_the_card_of_an_acute_conversation_says_why_what_the_parent_read_and_the_numbers(
    services: Services, clock: Clock
) -> None:
    sanne = person(services, Role.volunteer, name="Sanne")
    services.desk.start_shift(sanne)
    parent = Parent(services)
    conversation_id = parent.says(SUICIDE)
    card = services.desk.card(conversation_id, sanne)
    urgency = card.urgency
    assert urgency is not None and urgency.risk is Risk.acute and urgency.danger is Danger.suicide
    guidance = services.texts.guidance.text("suicide", "nl")
    assert urgency.guidance_kind == "suicide" and urgency.guidance == guidance
    assert guidance in [t for _, t in parent.replies()]  # the text the parent really got first
    assert {"113", "0800-0113", "112"} <= set(urgency.numbers)
    assert urgency_headline(urgency) == "Spoed: de ouder schreef over zelfdoding"


def test_reasons_in_words_a_volunteer_understands() -> None:
    def urgency(risk: Risk, danger: Danger, theme: str | None = None) -> Urgency:
        return Urgency(risk=risk, danger=danger, theme=theme, guidance_kind=None, guidance=None, numbers=[])

    assert urgency_headline(urgency(Risk.high, Danger.medical_child, "child_health")) == \
        "Let op: signalen van een medisch probleem bij een baby of kind"
    assert urgency_headline(urgency(Risk.acute, Danger.violence_now)) == \
        "Spoed: de ouder schreef over geweld dat nu gebeurt"
    assert urgency_headline(urgency(Risk.high, Danger.none, "domestic_violence")) == \
        "Let op: ernstige zorgen over huiselijk geweld"
    assert urgency_headline(urgency(Risk.acute, Danger.none)) == \
        "Spoed: de ouder schreef iets dat op gevaar nu wijst"
    assert risk_reason("model:concern") == "" and risk_reason("model:high") == ""
    assert risk_reason("rule:suicide_words") == "de ouder schreef over: woorden over zelfdoding"
    assert risk_reason("rule:distress (negated)") == ""
    for text in (urgency_headline(urgency(r, d)) for r in (Risk.high, Risk.acute) for d in Danger):
        assert not re.search(r"model|prioriteit|geen$", text, re.IGNORECASE), text
