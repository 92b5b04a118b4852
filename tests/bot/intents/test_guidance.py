"""Guidance by kind of danger: first in the first reply, in the parent's own language, then Dutch;
the same entries spoken on the phone; only numbers the catalogue and data/messages hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.config import REPO_ROOT
from bot.errors import DataError
from bot.hours import parse_hours
from bot.intents.catalogue import load_catalogue
from bot.intents.dialogue import ConversationView, DialogueContext, Incoming, decide
from bot.intents.guidance import (
    GUIDANCE_KINDS,
    GUIDANCE_LANGUAGES,
    Guidance,
    guidance_kind,
    spoken,
)
from bot.intents.messages import Texts
from bot.storage.models import ConversationStatus, QueueName
from bot.triage.engine import Triage, TriageResult
from bot.triage.types import DANGER_KINDS, Danger, Language, Risk, Route, Theme
from handoff.interfaces import WaitEstimate

MESSAGES = REPO_ROOT / "data" / "messages"
TEXTS = Texts.load(MESSAGES)
GUIDANCE = Guidance.load(MESSAGES / "guidance.yml")
CATALOGUE = load_catalogue(REPO_ROOT / "data" / "aanbod")
NOW = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)  # 22:30 in Amsterdam
ZONE = ZoneInfo("Europe/Amsterdam")
OTHER = [code for code in GUIDANCE_LANGUAGES if code not in ("nl", "en")]
_DIGITS = re.compile(r"\d[\d\- ]*\d|\d")


def numbers(text: str) -> set[str]:
    return {re.sub(r"\D", "", m.group(0)) for m in _DIGITS.finditer(text)}


def context(people: int = 0, next_shift: datetime | None = None, on_call: bool = False) -> DialogueContext:
    return DialogueContext(
        texts=TEXTS, catalogue=CATALOGUE, retention_days=30,
        volunteer_hours=parse_hours("09:00-23:00"), professional_hours=parse_hours("08:00-22:00"),
        zone=ZONE, region="amsterdam", include_unverified=True,
        estimate=lambda queue, priority: WaitEstimate(5 if people else None, next_shift, people),
        now=NOW, on_call=on_call,
    )


def first_view() -> ConversationView:
    return ConversationView(welcomed=False, status=ConversationStatus.bot, awaiting=None, language="nl",
                            queue=None, priority=None, waiting_notice_at=None)


def result(kind: str, risk: Risk, code: str, theme: Theme = Theme.mental_health) -> TriageResult:
    language = Language(code) if code in ("nl", "en") else Language.other
    route = Route.emergency if risk is Risk.acute else Route.professional
    return TriageResult(text="...", theme=theme, intent=theme.value, confidence=0.9, risk=risk,
                        route=route, language=language, backend="test", language_code=code,
                        danger=Danger(kind) if kind != "general" else Danger.none)


# --- the data ------------------------------------------------------------------------------------


def test_every_kind_has_a_text_in_every_language() -> None:
    assert set(GUIDANCE.texts) == set(GUIDANCE_KINDS) == {*DANGER_KINDS, "general"}
    for kind in GUIDANCE_KINDS:
        assert set(GUIDANCE.texts[kind]) >= set(GUIDANCE_LANGUAGES), kind


def test_translations_carry_exactly_the_dutch_numbers_and_await_review() -> None:
    for kind in GUIDANCE_KINDS:
        dutch = numbers(GUIDANCE.text(kind, "nl"))
        assert "112" in dutch, kind  # danger now: 112 in every kind
        for code in GUIDANCE_LANGUAGES:
            assert numbers(GUIDANCE.text(kind, code)) == dutch, (kind, code)
    # Unchecked translations stay marked until a native speaker has read them; the source
    # languages are never "to review".
    assert GUIDANCE.review <= set(OTHER) and "nl" not in GUIDANCE.review


def test_only_numbers_the_catalogue_or_the_messages_hold() -> None:
    known: set[str] = set()
    for path in (REPO_ROOT / "data" / "aanbod").glob("*.yml"):
        known |= numbers(path.read_text(encoding="utf-8"))
    known |= numbers((MESSAGES / "nl.yml").read_text(encoding="utf-8"))
    for kind in GUIDANCE_KINDS:
        for code in GUIDANCE_LANGUAGES:
            assert numbers(GUIDANCE.text(kind, code)) <= known, (kind, code)


def test_a_missing_translation_is_refused_at_load(tmp_path: Path) -> None:
    document = yaml.safe_load((MESSAGES / "guidance.yml").read_text(encoding="utf-8"))
    del document["guidance"]["psychiatric"]["pl"]
    broken = tmp_path / "guidance.yml"
    broken.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataError, match="guidance.psychiatric.pl"):
        Guidance.load(broken)


def test_spoken_reads_numbers_digit_by_digit() -> None:
    assert spoken("Bel 113 of gratis 0800-0113. In Amsterdam: 14 020.") == (
        "Bel 1 1 3 of gratis 0 8 0 0, 0 1 1 3. In Amsterdam: 1 4, 0 2 0.")
    # The phone line speaks the very entries the chat shows.
    for kind in GUIDANCE_KINDS:
        assert GUIDANCE.spoken(kind, "nl") == spoken(GUIDANCE.text(kind, "nl"))
        assert GUIDANCE.spoken(kind, "tr") == spoken(GUIDANCE.text(kind, "nl"))  # no Turkish voice


# --- when guidance comes first ------------------------------------------------------------------


@pytest.mark.parametrize("kind", DANGER_KINDS)
def test_acute_always_gets_its_kind(kind: str) -> None:
    assert guidance_kind(Risk.acute, Danger(kind)) == kind


def test_acute_without_a_kind_gets_the_general_guidance_or_its_rule_category() -> None:
    assert guidance_kind(Risk.acute, Danger.none) == "general"
    assert guidance_kind(Risk.acute, Danger.none, "suicide") == "suicide"
    assert guidance_kind(Risk.acute, Danger.none, "violence") == "violence_now"


@pytest.mark.parametrize("kind", DANGER_KINDS)
def test_high_only_for_medical_and_psychiatric(kind: str) -> None:
    expected = kind if kind in ("medical_child", "medical_pregnancy", "psychiatric") else None
    assert guidance_kind(Risk.high, Danger(kind)) == expected
    assert guidance_kind(Risk.concern, Danger(kind)) is None
    assert guidance_kind(Risk.none, Danger(kind)) is None


# --- the first reply -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", GUIDANCE_LANGUAGES)
@pytest.mark.parametrize("kind", GUIDANCE_KINDS)
def test_guidance_first_in_the_first_reply_in_the_parents_language(kind: str, code: str) -> None:
    risk = Risk.high if kind in ("medical_child", "medical_pregnancy", "psychiatric") else Risk.acute
    decision = decide(first_view(), Incoming(text="...", triage=result(kind, risk, code)), context())
    assert decision.guidance == kind
    assert decision.replies[0] == GUIDANCE.text(kind, code)
    if code in ("nl", "en"):
        assert decision.guidance_replies == 1
    else:  # their own language first, then Dutch, then the rest
        assert decision.replies[1] == GUIDANCE.text(kind, "nl")
        assert decision.guidance_replies == 2
        assert decision.replies[2] == TEXTS.in_language(code)
    assert decision.status is ConversationStatus.queued
    assert decision.queue is QueueName.professional


def test_acute_with_nobody_online_says_so_and_what_to_do_now() -> None:
    tomorrow = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    decision = decide(first_view(), Incoming(text="...", triage=result("suicide", Risk.acute, "nl")),
                      context(people=0, next_shift=tomorrow))
    last = decision.replies[-1]
    assert "niemand van ons online" in last and "Morgen vanaf 09:00" in last
    assert "bel nu het nummer hierboven" in last and "minuten" not in last
    assert "hulpverlener van dienst" not in last  # no on-call line configured: nothing promised
    with_on_call = decide(first_view(), Incoming(text="...", triage=result("suicide", Risk.acute, "nl")),
                          context(people=0, next_shift=tomorrow, on_call=True))
    assert "hulpverlener van dienst" in with_on_call.replies[-1]


def test_acute_with_someone_online_gives_minutes() -> None:
    decision = decide(first_view(), Incoming(text="...", triage=result("violence_now", Risk.acute, "nl")),
                      context(people=1))
    assert "online" in decision.replies[-1] and "5 minuten" in decision.replies[-1]


def test_high_without_medical_kind_gets_no_guidance_first() -> None:
    decision = decide(first_view(), Incoming(text="...", triage=result("general", Risk.high, "nl")),
                      context(people=1))
    assert decision.guidance is None and decision.replies[0].startswith("Hoi, je praat")


# --- with real triage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "first_words"),
    [
        ("sinds gister zo slap, drinkt bijna niks, 5 wkn, luiers droog", "medical_child", "huisarts"),
        ("ik ben 34 weken en voel de baby sinds vanochtend niet meer bewegen", "medical_pregnancy",
         "verloskundige"),
        ("ik wil er niet meer zijn, ik heb de pillen al klaarliggen", "suicide", "113"),
        ("he is hitting me right now and the kids are here", "violence_now", "112"),
    ],
)
def test_real_messages_get_their_guidance_first(triage: Triage, text: str, kind: str,
                                                first_words: str) -> None:
    decision = decide(first_view(), Incoming(text=text, triage=triage.run(text)), context())
    assert decision.guidance == kind
    assert first_words in decision.replies[0]


@pytest.mark.parametrize(
    "text",
    [
        "ik schrok me dood",
        "ik schrok me echt dood vannacht, hij lag ineens op zn buik",
        "haha ik word letterlijk gek van dat gehuil 😂",
        "deze bevalling was echt moordend",
    ],
)
def test_a_figure_of_speech_never_gets_a_crisis_line(triage: Triage, text: str) -> None:
    decision = decide(first_view(), Incoming(text=text, triage=triage.run(text)), context())
    assert decision.guidance is None
    joined = "\n".join(decision.replies)
    assert "113" not in joined and "0800-2000" not in joined


# --- warm, and fitting the life phase ------------------------------------------------------------


def test_strain_is_acknowledged_before_anything_else(triage: Triage) -> None:
    text = "ik trek het bijna niet meer, hoe krijg ik mijn baby van 4 mnd aan het slapen"
    decision = decide(first_view(), Incoming(text=text, triage=triage.run(text)), context(people=1))
    after_welcome = decision.replies[1:]
    assert after_welcome[0] == TEXTS.get("strain_heard", "nl")
    # A person is offered before any catalogue entry.
    offer = next(i for i, r in enumerate(after_welcome) if "'mens'" in r or "Typ 1" in r)
    listed = [i for i, r in enumerate(after_welcome) if r.startswith("Hier kun je terecht")]
    assert all(offer < i for i in listed)


def test_no_acknowledgement_for_a_plain_question(triage: Triage) -> None:
    text = "waar vind ik een verloskundige in amsterdam"
    decision = decide(first_view(), Incoming(text=text, triage=triage.run(text)), context(people=1))
    assert TEXTS.get("strain_heard", "nl") not in decision.replies


@pytest.mark.parametrize(
    ("theme", "facts_text", "absent"),
    [
        (Theme.baby_care, "mijn baby van 4 mnd", {"kraamzorg", "eigenwijs_kraamzorg"}),
        (Theme.parenting, "mijn zoon van 15", {"okt_amsterdam", "centering_parenting", "kraamzorg"}),
    ],
)
def test_the_catalogue_fits_the_life_phase(triage: Triage, theme: Theme, facts_text: str,
                                           absent: set[str]) -> None:
    text = f"{facts_text}, waar kan ik terecht met vragen"
    base = triage.run(text)
    fixed = TriageResult(text=text, theme=theme, intent=theme.value, confidence=0.9, risk=Risk.none,
                         route=Route.bot, language=Language.nl, backend="test", facts=base.facts)
    decision = decide(first_view(), Incoming(text=text, triage=fixed), context(people=1))
    assert decision.catalogue_ids, "some entry still fits"
    assert not absent & set(decision.catalogue_ids)
    without_age = TriageResult(text="", theme=theme, intent=theme.value, confidence=0.9, risk=Risk.none,
                               route=Route.bot, language=Language.nl, backend="test")
    plain = decide(first_view(), Incoming(text="", triage=without_age), context(people=1))
    assert absent & set(plain.catalogue_ids), "without an age the baby services are offered"


@pytest.mark.parametrize("text", ["1", "2", "1.", "3?"])
def test_a_number_choosing_a_queue_gets_no_guidance(triage: Triage, text: str) -> None:
    view = ConversationView(welcomed=True, status=ConversationStatus.bot, awaiting="choose_queue",
                            language="nl", queue=None, priority=None, waiting_notice_at=None)
    decision = decide(view, Incoming(text=text, triage=triage.run(text)), context(people=1))
    assert decision.guidance is None
