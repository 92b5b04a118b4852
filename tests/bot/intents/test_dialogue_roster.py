"""The pure dialogues with a roster as the queue's schedule (bot.hours.Schedule): "wanneer is er
iemand?" names the roster's times (never fixed hours nobody planned), and a call after hours
with nothing planned ahead says so instead of making a time up. The roster itself (SQL, the
cache) is tested in tests/handoff/test_roster.py; here a small stand-in is enough."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import REPO_ROOT
from bot.hours import Schedule, parse_hours
from bot.intents.call import (
    CallContext,
    CallNext,
    CallStep,
    CallTurn,
    CallView,
    decide_call,
    load_voice_texts,
)
from bot.intents.catalogue import load_catalogue
from bot.intents.dialogue import DialogueContext, hours_text
from bot.intents.messages import Texts
from bot.rules import QueueName, WaitEstimate
from bot.storage.models import ConversationStatus
from bot.triage.types import Risk, Route

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # Monday 15:00 in Amsterdam
ZONE = ZoneInfo("Europe/Amsterdam")
TEXTS = Texts.load(REPO_ROOT / "data" / "messages")
CATALOGUE = load_catalogue(REPO_ROOT / "data" / "aanbod")


@dataclass(frozen=True)
class Planned:
    """A roster with one planned stretch (or none: `start` None)."""

    start: datetime | None
    end: datetime | None = None

    def is_open(self, moment: datetime, zone: ZoneInfo) -> bool:
        return self.start is not None and self.end is not None and self.start <= moment < self.end

    def next_opening(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        if self.is_open(moment, zone):
            return moment
        return self.start if self.start is not None and self.start > moment else None

    def next_opening_after_close(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        return None if self.is_open(moment, zone) else self.next_opening(moment, zone)

    def closes_at(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        return self.end if self.is_open(moment, zone) else None

    def text(self) -> str | None:
        return None


def context(volunteer: Schedule, professional: Schedule) -> DialogueContext:
    return DialogueContext(
        texts=TEXTS, catalogue=CATALOGUE, retention_days=30, volunteer_hours=volunteer,
        professional_hours=professional, zone=ZONE, region="amsterdam", include_unverified=True,
        estimate=lambda queue, priority: WaitEstimate(None, None, 0), now=NOW)


def test_when_is_someone_there_follows_the_roster() -> None:
    tonight = Planned(datetime(2026, 11, 23, 18, 0, tzinfo=UTC), datetime(2026, 11, 23, 22, 0, tzinfo=UTC))
    now_on = Planned(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    text = hours_text(context(tonight, now_on), "nl")
    assert text.startswith("Volgens het rooster is er een vrijwilliger vandaag vanaf 19:00, "
                           "en een hulpverlener nu."), text
    # A queue without a roster keeps its opening hours; one with nothing planned ahead says so.
    mixed = hours_text(context(parse_hours("09:00-23:00"), Planned(None)), "nl")
    assert "een vrijwilliger elke dag van 09:00-23:00" in mixed
    assert "een hulpverlener op een tijd die ik nog niet weet" in mixed
    # Both on fixed hours: the text as it always was.
    fixed = hours_text(context(parse_hours("09:00-23:00"), parse_hours("08:00-22:00")), "nl")
    assert fixed == TEXTS.get("hours", "nl", volunteer_hours="09:00-23:00", professional_hours="08:00-22:00")
    assert "by our rota, a volunteer is here today from 19:00" in hours_text(context(tonight, now_on), "en").lower()


def test_a_call_after_hours_with_nothing_planned_makes_no_time_up() -> None:
    voice = load_voice_texts(REPO_ROOT / "data" / "messages" / "voice.yml")
    ctx = CallContext(voice=voice, texts=TEXTS, catalogue=CATALOGUE, region="amsterdam",
                      include_unverified=True, now=NOW, zone=ZONE,
                      open_now={q: False for q in QueueName}, next_opening={q: None for q in QueueName})
    view = CallView(status=ConversationStatus.bot, route=Route.volunteer, highest_risk=Risk.none, themes=())
    decision = decide_call(view, CallTurn(CallStep.key, queue=QueueName.volunteer), ctx)
    assert decision.say == [voice.get("after_hours_unknown", "nl")]


def test_a_call_outside_the_roster_is_put_through_when_someone_is_there() -> None:
    """Planned is not present: a volunteer who stays on after their planned shift (or came
    unplanned) is reachable, so the caller is put through, not told nobody is there."""
    voice = load_voice_texts(REPO_ROOT / "data" / "messages" / "voice.yml")
    ctx = CallContext(voice=voice, texts=TEXTS, catalogue=CATALOGUE, region="amsterdam",
                      include_unverified=True, now=NOW, zone=ZONE,
                      open_now={q: False for q in QueueName}, next_opening={q: None for q in QueueName},
                      reachable=frozenset({QueueName.volunteer}))
    view = CallView(status=ConversationStatus.bot, route=Route.volunteer, highest_risk=Risk.none, themes=())
    decision = decide_call(view, CallTurn(CallStep.key, queue=QueueName.volunteer), ctx)
    assert decision.next is CallNext.dial, decision
    assert voice.get("after_hours_unknown", "nl") not in decision.say
    # Nobody there for the professionals: after hours, as before.
    other = decide_call(view, CallTurn(CallStep.key, queue=QueueName.professional), ctx)
    assert other.next is CallNext.after_hours


def test_a_wait_past_the_end_of_the_shift_says_so() -> None:
    """Someone is there, but the expected wait runs past the end of the planned stretch: no
    "within 20 minutes", but when the shift ends and when someone is there again (or that it is
    not known)."""
    from bot.intents.dialogue import wait_text

    ends, tomorrow = NOW + timedelta(minutes=10), datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    ctx = context(parse_hours("09:00-23:00"), parse_hours("09:00-23:00"))
    late = WaitEstimate(minutes=20, next_shift_starts=tomorrow, people_on_shift=1, open_now=True, closes_at=ends)
    text = wait_text(replace(ctx, estimate=lambda queue, priority: late), QueueName.volunteer, 3, "nl")
    assert text == TEXTS.get("wait_past_closing", "nl", time="15:10", when="Morgen vanaf 19:00"), text
    unknown = replace(late, next_shift_starts=None)
    text = wait_text(replace(ctx, estimate=lambda queue, priority: unknown), QueueName.volunteer, 3, "en")
    assert text == TEXTS.get("wait_past_closing_unknown", "en", time="15:10"), text
    assert "15:10" in text and "20 minutes" not in text
