"""A call turn is decided by a pure function beside the chat's: call view + turn + context ->
call decision (bot.intents.call). Same danger kinds, queue rule and texts as chat."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import REPO_ROOT
from bot.hours import parse_hours
from bot.intents.call import (
    DIAL_TARGETS,
    CallContext,
    CallNext,
    CallStep,
    CallTurn,
    CallView,
    decide_call,
    heard,
    load_voice_texts,
)
from bot.intents.catalogue import load_catalogue
from bot.intents.dialogue import ConversationView, DialogueContext, Incoming, decide
from bot.intents.guidance import spoken
from bot.intents.messages import Texts
from bot.rules import PRIORITY, QueueName, WaitEstimate
from bot.storage.models import ConversationStatus
from bot.triage.engine import TriageResult
from bot.triage.types import DANGER_KINDS, Danger, Language, Risk, Route, Theme

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # Sunday 15:00 in Amsterdam
ZONE = ZoneInfo("Europe/Amsterdam")
TOMORROW_NINE = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # Monday 09:00 in Amsterdam
TEXTS = Texts.load(REPO_ROOT / "data" / "messages")
VOICE = load_voice_texts(REPO_ROOT / "data" / "messages" / "voice.yml")
CATALOGUE = load_catalogue(REPO_ROOT / "data" / "aanbod")
BOTH = frozenset(QueueName)
ALWAYS = parse_hours("00:00-24:00")


def context(*, reachable: frozenset[QueueName] = frozenset(), closed: bool = False) -> CallContext:
    return CallContext(
        voice=VOICE, texts=TEXTS, catalogue=CATALOGUE, region="amsterdam", include_unverified=True,
        now=NOW, zone=ZONE, reachable=reachable,
        open_now={q: not closed for q in QueueName}, next_opening={q: TOMORROW_NINE for q in QueueName})


def result(risk: Risk = Risk.none, route: Route = Route.volunteer, danger: Danger = Danger.none,
           theme: Theme = Theme.none, language: Language = Language.nl) -> TriageResult:
    return TriageResult(text="woorden", theme=theme, intent="none", confidence=0.9, risk=risk,
                        route=route, language=language, backend="test", danger=danger)


def words(triage: TriageResult, **changes: object) -> CallTurn:
    return CallTurn(CallStep.words, triage=triage, **changes)  # type: ignore[arg-type]


def view(status: ConversationStatus = ConversationStatus.bot, route: Route = Route.bot,
         risk: Risk = Risk.none, themes: tuple[str, ...] = ()) -> CallView:
    return CallView(status=status, route=route, highest_risk=risk, themes=themes)


def chat_guidance(kind: str, language: str = "nl") -> str:
    """What the chat shows first for this kind of danger (the same entry)."""
    assert TEXTS.guidance is not None
    return TEXTS.guidance.text(kind, language)


@pytest.mark.parametrize("kind", DANGER_KINDS)
def test_every_danger_kind_gets_its_guidance_first_then_the_professional_queue(kind: str) -> None:
    acute = result(Risk.acute, Route.emergency, Danger(kind))
    nobody = decide_call(view(route=Route.emergency, risk=Risk.acute), words(acute), context())
    assert nobody.next is CallNext.acute_queued and nobody.guidance == kind
    # The chat's own entry, every number spoken digit by digit; said again before the goodbye.
    assert nobody.say == [spoken(chat_guidance(kind))] * 2
    assert not re.search(r"\d\d", nobody.say[0])
    assert (nobody.status, nobody.queue, nobody.priority) == (
        ConversationStatus.queued, QueueName.professional, PRIORITY[Risk.acute])
    assert nobody.dial_target == DIAL_TARGETS.get(kind)

    present = decide_call(view(route=Route.emergency, risk=Risk.acute), words(acute),
                          context(reachable=BOTH))
    assert present.next is CallNext.acute_dial and present.queue is QueueName.professional
    assert present.say[0] == spoken(chat_guidance(kind))
    assert present.say[1] == VOICE.get("acute_connecting", "nl")


def test_danger_guidance_is_the_chats_first_reply_spoken() -> None:
    """The same entries as chat: what `decide` writes first is what `decide_call` says first."""
    for kind in ("suicide", "violence_now", "medical_child"):
        acute = result(Risk.acute, Route.emergency, Danger(kind))
        chat_view = ConversationView(welcomed=True, status=ConversationStatus.bot, awaiting=None,
                                     language="nl", queue=None, priority=None, waiting_notice_at=None)
        chat = decide(chat_view, Incoming(text="woorden", triage=acute), DialogueContext(
            texts=TEXTS, catalogue=CATALOGUE, retention_days=30,
            volunteer_hours=ALWAYS, professional_hours=ALWAYS, zone=ZONE, region="amsterdam",
            include_unverified=True, estimate=lambda q, p: WaitEstimate(10, None, 1), now=NOW))
        call = decide_call(view(route=Route.emergency), words(acute), context())
        assert call.say[0] == spoken(chat.replies[0])
        assert chat.queue is call.queue is QueueName.professional
        assert chat.priority == call.priority == PRIORITY[Risk.acute]


def test_english_guidance_in_english() -> None:
    acute = result(Risk.acute, Route.emergency, Danger.suicide, language=Language.en)
    decision = decide_call(view(), words(acute), context())
    assert decision.language == "en"
    assert decision.say[0] == spoken(chat_guidance("suicide", "en"))
    assert "1 1 3" in decision.say[0] and "0 8 0 0, 0 1 1 3" in decision.say[0]


def test_acute_without_a_kind_gets_the_general_guidance() -> None:
    decision = decide_call(view(), words(result(Risk.acute, Route.emergency)), context())
    assert decision.guidance == "general" and decision.say[0] == spoken(chat_guidance("general"))
    assert "1 1 2" in decision.say[0]


@pytest.mark.parametrize("kind", [d.value for d in Danger if d.medical])
def test_a_medical_danger_at_high_gets_guidance_first_then_the_call_goes_on(kind: str) -> None:
    high = result(Risk.high, Route.professional, Danger(kind))
    decision = decide_call(view(route=Route.professional, risk=Risk.high), words(high), context())
    assert decision.say[0] == spoken(chat_guidance(kind))
    assert decision.say[1:] == [VOICE.get("queued", "nl")]
    assert decision.next is CallNext.enqueue
    assert (decision.queue, decision.priority) == (QueueName.professional, PRIORITY[Risk.high])


def test_high_without_a_medical_kind_gets_no_guidance() -> None:
    high = result(Risk.high, Route.professional, Danger.none)
    decision = decide_call(view(route=Route.professional, risk=Risk.high), words(high), context())
    assert decision.guidance is None and decision.say == [VOICE.get("queued", "nl")]


def test_a_calm_call_goes_to_a_volunteer_unless_chosen() -> None:
    calm = result(Risk.concern, Route.volunteer, theme=Theme.baby_care)
    present = decide_call(view(route=Route.volunteer, risk=Risk.concern), words(calm),
                          context(reachable=BOTH))
    assert (present.next, present.queue, present.status) == (CallNext.dial, QueueName.volunteer, None)
    assert present.say == [VOICE.get("connecting", "nl")]
    nobody = decide_call(view(route=Route.volunteer, risk=Risk.concern), words(calm), context())
    assert (nobody.next, nobody.queue, nobody.status, nobody.priority, nobody.reason) == (
        CallNext.enqueue, QueueName.volunteer, ConversationStatus.queued, PRIORITY[Risk.concern],
        "telefoon: wacht aan de lijn")
    # Chosen with a key: a professional.
    chosen = decide_call(view(route=Route.volunteer), CallTurn(CallStep.key, queue=QueueName.professional),
                         context())
    assert chosen.queue is QueueName.professional and chosen.status is ConversationStatus.queued


def test_a_professional_route_is_never_moved_down_by_a_key() -> None:
    decision = decide_call(view(route=Route.professional, risk=Risk.high),
                           CallTurn(CallStep.key, queue=QueueName.volunteer), context())
    assert decision.queue is QueueName.professional


def test_after_hours_names_the_time_by_the_rota_and_offers_entries() -> None:
    theme = next(t for t in Theme if t is not Theme.none and CATALOGUE.pick(t, region="amsterdam"))
    calm = result(Risk.none, Route.volunteer, theme=theme)
    decision = decide_call(view(route=Route.volunteer), words(calm), context(closed=True))
    assert decision.next is CallNext.after_hours and decision.status is None  # not queued: nobody there
    assert decision.say == [VOICE.get("after_hours", "nl", when="Morgen vanaf 09:00")]
    # The chat's own "when" entry (nl.yml when_tomorrow), not a copy.
    assert TEXTS.get("when_tomorrow", "nl", time="09:00") in decision.say[0]
    assert 1 <= len(decision.entries) <= 2
    english = decide_call(view(route=Route.volunteer), words(calm, language="en"), context(closed=True))
    assert TEXTS.get("when_tomorrow", "en", time="09:00") in english.say[0]


def test_after_hours_without_a_known_time_says_so() -> None:
    ctx = context(closed=True)
    ctx = CallContext(**{**ctx.__dict__, "next_opening": {q: NOW for q in QueueName}})
    decision = decide_call(view(route=Route.volunteer), CallTurn(CallStep.key, queue=QueueName.volunteer), ctx)
    assert decision.say == [VOICE.get("after_hours_unknown", "nl")]


def test_information_and_unclear_words() -> None:
    theme = next(t for t in Theme if t is not Theme.none and CATALOGUE.pick(t, region="amsterdam"))
    info = decide_call(view(), words(result(route=Route.bot, theme=theme)), context())
    assert info.next is CallNext.information and info.entries and info.status is None
    unclear = decide_call(view(), words(result(route=Route.bot)), context())
    assert unclear.next is CallNext.menu and unclear.say == []


def test_a_waiting_or_claimed_call_is_never_queued_twice() -> None:
    for status in (ConversationStatus.queued, ConversationStatus.claimed, ConversationStatus.closed):
        decision = decide_call(view(status=status, route=Route.volunteer),
                               words(result(Risk.none, Route.volunteer)), context())
        assert decision.next is CallNext.enqueue and decision.status is None


def test_nobody_took_the_call() -> None:
    again = decide_call(view(route=Route.volunteer), CallTurn(CallStep.nobody, queue=QueueName.volunteer),
                        context(reachable=BOTH))
    assert again.next is CallNext.dial and again.say == []  # the next person, no second "connecting"
    acute = decide_call(view(route=Route.emergency, risk=Risk.acute),
                        CallTurn(CallStep.nobody, queue=QueueName.professional, kind="violence_now"),
                        context())
    assert acute.say == [spoken(chat_guidance("violence_now"))]
    assert (acute.next, acute.queue, acute.priority, acute.dial_target) == (
        CallNext.acute_queued, QueueName.professional, 0, "veilig_thuis")


def test_a_callback_request_waits_in_the_queue() -> None:
    decision = decide_call(view(route=Route.volunteer, risk=Risk.concern),
                           CallTurn(CallStep.callback, queue=QueueName.volunteer), context(closed=True))
    assert (decision.next, decision.status, decision.queue, decision.reason, decision.audit) == (
        CallNext.goodbye, ConversationStatus.queued, QueueName.volunteer, "telefoon: terugbelverzoek",
        "voice_callback_requested")
    assert decision.say == [VOICE.get("callback_done", "nl")]


@pytest.mark.parametrize(("risk", "queue"), [(Risk.none, QueueName.volunteer),
                                             (Risk.high, QueueName.professional),
                                             (Risk.acute, QueueName.professional)])
def test_the_safe_fallback_speaks_the_numbers_then_queues_by_risk(risk: Risk, queue: QueueName) -> None:
    decision = decide_call(view(risk=risk), CallTurn(CallStep.failed), context())
    assert decision.next is CallNext.enqueue
    assert decision.say[0] == spoken(TEXTS.get("fallback", "nl"))  # the chat's fallback entry
    assert "1 1 2" in decision.say[0] and "1 1 3" in decision.say[1]
    assert not any(re.search(r"\d\d", text) for text in decision.say)
    assert (decision.status, decision.queue, decision.priority) == (
        ConversationStatus.queued, queue, PRIORITY[risk])


def test_unsure_words_are_asked_again_unless_about_danger() -> None:
    assert heard(result(), 0.9, 0.4) and not heard(result(), 0.2, 0.4)
    assert heard(result(Risk.acute, Route.emergency), 0.1, 0.4)
    assert heard(result(Risk.none, Route.emergency), 0.1, 0.4)


def test_entries_by_sms_only_those_spoken_and_known() -> None:
    entry = CATALOGUE.pick(Theme.baby_care, region="amsterdam")[0]
    decision = decide_call(view(), CallTurn(CallStep.sms, entries=(entry.id, "no-such-entry")), context())
    assert decision.say == [VOICE.get("sms_sent", "nl")] and decision.next is CallNext.goodbye
    assert decision.sms is not None and decision.sms.startswith(VOICE.get("sms_intro", "nl"))
    assert entry.name in decision.sms and [e.id for e in decision.entries] == [entry.id]
    assert decision.audit == "voice_sms_consent"
    nothing = decide_call(view(), CallTurn(CallStep.sms, entries=("no-such-entry",)), context())
    assert nothing.sms is None and nothing.audit is None
