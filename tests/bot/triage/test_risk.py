"""Risk: recall first for acute, idioms and negations are not acute. Real rules, real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import REPO_ROOT
from bot.errors import DataError
from bot.triage.embedded import EmbeddedModel
from bot.triage.risk import RiskDetector, RiskRules
from bot.triage.types import Risk, Theme

RULES = REPO_ROOT / "data" / "risk" / "rules.yml"


@pytest.fixture(scope="module")
def rules() -> RiskRules:
    return RiskRules.load(RULES)


@pytest.fixture
def detector(rules: RiskRules, embedded_model: EmbeddedModel) -> RiskDetector:
    return RiskDetector(rules, embedded_model)


ACUTE = [
    # taxonomy.md and the issue: acute without a keyword
    ("ik wil niet meer wakker worden", "suicide"),
    ("hij staat voor de deur en ik durf niet open te doen", "violence"),
    ("iedereen is beter af zonder mij", "suicide"),
    ("ik heb de pillen al klaargelegd voor vannacht", "suicide"),
    ("I don't want to live anymore", "suicide"),
    ("hij heeft een mes en schreeuwt dat hij me gaat afmaken", "violence"),
    ("mn baby ademt niet meer!!", "child"),
    ("ze is helemaal slap en reageert nergens op", "child"),
    ("ik ben 30 weken en ik verlies heel veel bloed", "pregnancy"),
    ("sinds gisteren voel ik de baby niet meer bewegen", "pregnancy"),
    ("27 weken en om de 4 minuten weeen", "pregnancy"),
    ("ik ben zo bang dat ik mn baby iets aandoe", "child"),
    ("mn schoonzus past op en nu belt ze dat haar vriend de kindjes pijn doet", "child"),
    ("she's calling me crying, he's hurting the kids right now", "child"),
    ("mn ring en al mn spullen heb ik weggegeven, jullie horen niks meer van me", "suicide"),
]


@pytest.mark.parametrize(("text", "category"), ACUTE)
def test_acute_is_recognised(detector: RiskDetector, text: str, category: str) -> None:
    result = detector.assess(text)
    assert result.level is Risk.acute, (text, result.reasons)
    assert result.category == category


@pytest.mark.parametrize(
    "text",
    [
        "ik schrok me dood toen hij van de bank viel, maar hij lacht alweer",
        "ik word gek van dat gehuil de hele dag",
        "vorig jaar deed hij de kinderen pijn, nu woont hij ergens anders",
        "ik heb mijn spullen weggegeven aan de kringloop want we verhuizen, waar vraag ik een verhuisbus aan",
        "hij is eruit gegroeid dus ik heb het wiegje weggegeven, wanneer mag hij in een groot bed",
        "deze bevalling was moordend",
        "ik ben doodmoe, ze slaapt maar 2 uur achter elkaar",
        "ik ga dood van de hitte in dit huis met die buik",
        "ik heb geen zelfmoordgedachten hoor, ik ben gewoon moe",
        "hij heeft me nooit geslagen, we hebben alleen veel ruzie",
        "ik kan hem soms wel schieten haha, hij doet niks in huis",
        "waar vind ik een verloskundige in oost",
    ],
)
def test_idioms_and_negations_are_not_acute(detector: RiskDetector, text: str) -> None:
    result = detector.assess(text)
    assert result.level is not Risk.acute, (text, result.reasons)


def test_negated_danger_still_reaches_a_person(detector: RiskDetector) -> None:
    result = detector.assess("ik heb geen zelfmoordgedachten")
    assert result.level is Risk.concern
    assert "rule:suicide_words (negated)" in result.reasons


def test_negation_must_stand_next_to_the_phrase(detector: RiskDetector) -> None:
    # "niet" belongs to "typen", not to the bleeding.
    assert detector.assess("kan ff niet typen bloed overal 16 wk zwanger").level is Risk.acute


@pytest.mark.parametrize(
    "text",
    [
        "mijn man slaat me als hij gedronken heeft",
        "ik ben 20 weken zwanger en drink elke avond een fles wijn",
        "we zijn uit huis gezet en ik ben 7 maanden zwanger",
        "mijn ouders willen dat ik trouw met een neef, ik wil niet, ze dwingen me te trouwen",
    ],
)
def test_urgent_risk_factors_are_at_least_high(detector: RiskDetector, text: str) -> None:
    # Recall first: the model may call violence at home acute even when it is not happening now.
    assert detector.assess(text).level.rank >= Risk.high.rank


def test_plain_questions_are_none(detector: RiskDetector) -> None:
    for text in ("hoe vraag ik een stadspas aan", "wanneer moet ik naar het consultatiebureau"):
        assert detector.assess(text).level is Risk.none, text


def test_category_from_theme_when_only_the_model_sees_it(detector: RiskDetector) -> None:
    result = detector.assess("ik wil niet meer wakker worden", Theme.mental_health)
    assert result.category == "suicide"


def test_very_long_text_still_finds_danger_at_the_end(detector: RiskDetector) -> None:
    text = "ik wil even mijn verhaal kwijt. " * 400 + "en nu staat hij voor de deur en ik durf niet open te doen"
    assert detector.assess(text).level is Risk.acute


def test_bad_rules_file_names_file_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("idioms: ['x']\nrules:\n- id: r1\n  level: deadly\n  patterns: ['a']\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rule 'r1': field 'level'") as error:
        RiskRules.load(path)
    assert str(path) in str(error.value)
    path.write_text("idioms: ['x']\nrules:\n- id: r2\n  level: high\n  patterns: ['(unclosed']\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rule 'r2': pattern 0"):
        RiskRules.load(path)
