"""The dialogue is a pure function: conversation view + message + triage -> decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import REPO_ROOT
from bot.hours import parse_hours
from bot.intents.catalogue import load_catalogue
from bot.intents.dialogue import ConversationView, DialogueContext, Incoming, decide
from bot.intents.messages import Texts
from bot.storage.models import ConversationStatus, QueueName
from bot.triage.engine import Triage
from handoff.interfaces import WaitEstimate

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # 15:00 in Amsterdam
ZONE = ZoneInfo("Europe/Amsterdam")
TEXTS = Texts.load(REPO_ROOT / "data" / "messages")
CATALOGUE = load_catalogue(REPO_ROOT / "data" / "aanbod")


def context(people: int = 1, minutes: int | None = 12, next_shift: datetime | None = None,
            now: datetime = NOW) -> DialogueContext:
    return DialogueContext(
        texts=TEXTS, catalogue=CATALOGUE, retention_days=30,
        volunteer_hours=parse_hours("09:00-23:00"), professional_hours=parse_hours("08:00-22:00"),
        zone=ZONE, region="amsterdam", include_unverified=True,
        estimate=lambda queue, priority: WaitEstimate(minutes, next_shift, people), now=now,
    )


def view(**changes: object) -> ConversationView:
    base = {"welcomed": True, "status": ConversationStatus.bot, "awaiting": None, "language": "nl",
                "queue": None, "priority": None, "waiting_notice_at": None}
    base.update(changes)
    return ConversationView(**base)  # type: ignore[arg-type]


@pytest.fixture
def run(triage: Triage):
    def _run(text: str, v: ConversationView | None = None, ctx: DialogueContext | None = None):
        return decide(v or view(), Incoming(text=text, triage=triage.run(text)), ctx or context())
    return _run


def test_welcome_once_then_the_answer(run) -> None:
    first = run("waar vind ik een verloskundige", view(welcomed=False))
    assert first.welcomed and first.replies[0].startswith("Hoi, je praat met de Oudertelefoon")
    assert "30 dagen" in first.replies[0] and "112" in first.replies[0] and "'mens'" in first.replies[0]
    assert "Verloskundige" in first.replies[1] and first.awaiting == "helped"
    again = run("waar vind ik een verloskundige")
    assert not any("Oudertelefoon" in r for r in again.replies)


def test_emergency_first_then_top_of_the_professional_queue(run) -> None:
    decision = run("ik wil niet meer wakker worden", view(welcomed=False))
    assert "113" in decision.replies[0] and "0800-0113" in decision.replies[0]
    assert decision.replies[1].startswith("Hoi, je praat")
    assert decision.status is ConversationStatus.queued
    assert (decision.queue, decision.priority) == (QueueName.professional, 0)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("hij staat voor de deur en ik durf niet open te doen", "0800-2000"),
        ("mijn baby ademt niet meer", "112"),
        ("ik ben 30 weken en verlies heel veel bloed", "verloskundige"),
    ],
)
def test_emergency_guidance_fits_the_danger(run, text: str, number: str) -> None:
    assert number in run(text).replies[0]


def test_acute_cannot_be_moved_down_by_choosing(run) -> None:
    queued = view(status=ConversationStatus.queued, queue=QueueName.professional, priority=0)
    decision = run("1", queued)
    assert decision.status is None and decision.queue is None  # stays where it is


def test_volunteer_route_offers_a_choice_then_queues(run) -> None:
    offered = run("ik voel me zo alleen, niemand om mee te praten")
    assert offered.awaiting == "choose_queue" and "Typ 1" in offered.replies[-1]
    chosen = run("2", view(awaiting="choose_queue"))
    assert chosen.status is ConversationStatus.queued and chosen.queue is QueueName.professional
    assert "hulpverlener" in chosen.replies[0] and "minuten" in chosen.replies[1]


def test_after_hours_says_when_someone_is_back(run) -> None:
    late = NOW.replace(hour=23, minute=30)  # 00:30 in Amsterdam
    back = datetime(2026, 11, 23, 9, 0, tzinfo=ZONE)
    decision = run("mens", view(awaiting="choose_queue"),
                   context(people=0, minutes=None, next_shift=back, now=late))
    assert decision.status is ConversationStatus.queued
    assert "Vandaag vanaf 09:00" in decision.replies[-1] or "Morgen vanaf 09:00" in decision.replies[-1]
    assert "Luisterlijn" in decision.replies[-1] and "112" in decision.replies[-1]


def test_messages_while_waiting_join_without_noise(run) -> None:
    waiting = view(status=ConversationStatus.queued, queue=QueueName.volunteer, priority=2,
                   waiting_notice_at=NOW - timedelta(minutes=2))
    quiet = run("en het gaat ook niet met mijn slaap", waiting)
    assert quiet.replies == [] and quiet.status is None
    later = run("ben je er nog?", view(status=ConversationStatus.queued, queue=QueueName.volunteer,
                                        priority=2, waiting_notice_at=NOW - timedelta(minutes=11)))
    assert later.replies == [TEXTS.get("message_added", "nl")]
    higher = run("mijn man slaat me als hij gedronken heeft", waiting)
    assert higher.priority is not None and higher.priority < 2


def test_privacy_hours_and_delete(run) -> None:
    privacy = run("is dit anoniem? wat bewaren jullie")
    assert "30 dagen" in privacy.replies[0] and "jeugdzorg" in privacy.replies[0]
    hours = run("wanneer is er iemand")
    assert "09:00-23:00" in hours.replies[0]
    asked = run("verwijder mijn gegevens")
    assert asked.awaiting == "confirm_delete" and not asked.delete
    assert run("ja", view(awaiting="confirm_delete")).delete
    kept = run("nee", view(awaiting="confirm_delete"))
    assert not kept.delete and kept.awaiting is None


def test_english_writer_gets_english(run) -> None:
    decision = run("Hi, is this anonymous? what do you store?", view(welcomed=False))
    assert decision.replies[0].startswith("Hi, this is the Oudertelefoon")
    assert "30 days" in decision.replies[1]


def test_claimed_conversation_the_bot_is_silent(run) -> None:
    assert run("hallo?", view(status=ConversationStatus.claimed)).replies == []


def test_unclear_gets_a_question_and_other_languages_a_note(run, triage: Triage) -> None:
    unclear = run("ik weet het ook niet goed")
    assert unclear.replies  # never silence
    turkish = "benim bebeğim çok hasta, ne yapmalıyım"
    other = decide(view(), Incoming(text=turkish, triage=triage.run(turkish)), context())
    assert any("Hollandaca ve İngilizce" in r for r in other.replies)
    amharic = "ልጄ ታሟል"
    fallback = decide(view(), Incoming(text=amharic, triage=triage.run(amharic)), context())
    assert any("Nederlands en Engels" in r for r in fallback.replies)


def test_media_gets_a_kind_reply(run) -> None:
    decision = decide(view(), Incoming(text="", triage=None, media_only=True), context())
    assert decision.replies == [TEXTS.get("media", "nl")]


def test_helped_question(run) -> None:
    assert "Fijn" in run("ja", view(awaiting="helped")).replies[0]
    no = run("nee", view(awaiting="helped"))
    assert no.awaiting == "choose_queue"


def test_stop_closes(run) -> None:
    decision = decide(view(), Incoming(text="/stop", triage=None, command="stop"), context())
    assert decision.close and "gestopt" in decision.replies[0]
