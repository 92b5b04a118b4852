"""Triage end to end on the embedded backend: the contract every later feature relies on."""

from __future__ import annotations

import pytest

from bot.triage.engine import CONTRACT_KEYS, Triage
from bot.triage.types import Language, Risk, Route, Theme


def test_contract_shape(triage: Triage) -> None:
    result = triage.run("ik kan de huur deze maand niet betalen").contract()
    assert tuple(result) == CONTRACT_KEYS
    assert result["theme"] == "money"
    assert result["intent"] == "money"
    assert 0 < result["confidence"] <= 1
    assert result["risk"] == "none" and result["route"] == "bot"
    assert result["language"] == "nl" and result["backend"] == "embedded"


@pytest.mark.parametrize(
    ("text", "theme", "route"),
    [
        ("waar vind ik een verloskundige in noord", Theme.pregnancy, Route.bot),
        ("welke flesvoeding is goed voor een baby van 4 maanden", Theme.baby_care, Route.bot),
        ("ik voel me zo alleen sinds de baby er is, niemand komt langs", Theme.loneliness, Route.volunteer),
        ("ik wil niet meer wakker worden", Theme.mental_health, Route.emergency),
    ],
)
def test_themes_and_routes(triage: Triage, text: str, theme: Theme, route: Route) -> None:
    result = triage.run(text)
    assert (result.theme, result.route) == (theme, route), result.contract()


def test_conversation_intents_have_theme_none(triage: Triage) -> None:
    for text, intent in [("hoi", "greet"), ("MENS", "ask_human"), ("is dit anoniem?", "ask_privacy")]:
        result = triage.run(text)
        assert result.intent == intent and result.theme is Theme.none, text
    assert triage.run("ik wil met een echt mens praten").route is Route.volunteer


def test_english_is_answered_as_english(triage: Triage) -> None:
    result = triage.run("I am pregnant and I don't have a midwife yet, where do I go?")
    assert result.language is Language.en
    assert result.theme is Theme.pregnancy


def test_other_scripts_and_emoji_never_fail(triage: Triage) -> None:
    for text in ("طفلي مريض جدا", "😭😭😭", "ሰላም", "   ", ""):
        result = triage.run(text)
        assert result.route in set(Route)
    assert triage.run("طفلي مريض جدا").language is Language.other


def test_low_confidence_means_theme_none_and_a_question(triage: Triage) -> None:
    triage.threshold = 0.99
    result = triage.run("ik heb een vraag")
    assert result.theme is Theme.none and result.intent == "nlu_fallback"
    assert result.route is Route.bot and result.clarify is True


def test_acute_risk_wins_over_an_unknown_theme(triage: Triage) -> None:
    triage.threshold = 0.99
    result = triage.run("hij staat voor de deur en ik durf niet open te doen")
    assert result.theme is Theme.none
    assert result.risk is Risk.acute and result.route is Route.emergency and not result.clarify


def test_huge_message_is_trimmed_for_the_classifier_only(triage: Triage) -> None:
    text = "x" * 10_000 + " ik wil dood"
    result = triage.run(text)
    assert result.text == text
    assert result.risk is Risk.acute


def test_stored_result_has_no_text(triage: Triage) -> None:
    stored = triage.run("ik heb schulden bij de zorgverzekering").stored()
    assert "text" not in stored and stored["theme"] in {"money", "rights_and_status"}


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("ik wil niet meer wakker worden", "suicide"),
        ("mijn baby van 5 weken heeft 38,6 koorts en drinkt slecht", "medical_child"),
        ("ik ben 32 weken en voel de baby sinds vanochtend bijna niet meer bewegen", "medical_pregnancy"),
        ("waar vind ik een verloskundige in noord", "none"),
    ],
)
def test_danger_kind_in_the_contract(triage: Triage, text: str, danger: str) -> None:
    result = triage.run(text)
    assert result.contract()["danger"] == danger, result.risk_reasons
    assert (danger == "none") or result.risk.rank >= Risk.high.rank


def test_a_practical_parenting_question_stays_with_the_bot(triage: Triage) -> None:
    question = triage.run("is er ergens een opvoedcursus voor vaders?")
    assert question.theme is Theme.parenting and question.route is Route.bot
    worry = triage.run("ik twijfel zo aan mezelf als moeder, ik doe alles fout bij mijn peuter")
    assert worry.route is Route.volunteer


def test_emoji_only_is_a_question_back(triage: Triage) -> None:
    result = triage.run("😭😭😭")
    assert result.intent == "nlu_fallback" and result.clarify is True
