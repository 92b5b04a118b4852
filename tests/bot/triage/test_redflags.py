"""Red flags: facts read from the message, combined as a triage nurse would, with near misses
(past events, hypotheticals, figures of speech) that must not fire. Real rules, real model."""

from __future__ import annotations

import pytest

from bot.config import REPO_ROOT
from bot.errors import DataError
from bot.triage.embedded import EmbeddedModel
from bot.triage.entities import extract
from bot.triage.redflags import RedFlags
from bot.triage.risk import RiskDetector, RiskRules
from bot.triage.text import normalize
from bot.triage.types import Danger, Risk

RISK = REPO_ROOT / "data" / "risk"


@pytest.fixture(scope="module")
def flags() -> RedFlags:
    return RedFlags.load(RISK / "red_flags.yml")


@pytest.fixture
def detector(embedded_model: EmbeddedModel, flags: RedFlags) -> RiskDetector:
    return RiskDetector(RiskRules.load(RISK / "rules.yml"), embedded_model, flags)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("mijn baby van 6 weken heeft 38,4", "child_age_days", 42.0),
        ("sinds gister zo slap, 5 wkn, luiers droog", "child_age_days", 35.0),
        ("my 2 month old has a temp of 38.2", "child_age_days", 60.8),
        ("dochtertje is pas 10 dagen", "child_age_days", 10.0),
        ("pasgeboren en hij drinkt slecht", "child_age_days", 7.0),
        ("peuter van 2 jaar", "child_age_days", 730.0),
        ("30 weken zwanger", "pregnancy_week", 30),
        ("ben 39+2 en vliezen gebroken", "pregnancy_week", 39),
        ("32w en buikpijn", "pregnancy_week", 32),
        ("temp 39,1 gemeten", "temperature_c", 39.1),
        ("hij heeft 38.6", "temperature_c", 38.6),
        ("101.5 f fever", "temperature_c", 38.6),
        ("al 10 uur geen natte luier", "duration_hours", 10.0),
        ("sinds vanochtend", "duration_hours", 8.0),
        ("ik ben alleen met de baby", "alone_with_child", True),
        ("ben nu 12 weken en heb wat bloedverlies", "pregnancy_week", 12),
        ("i'm 28 weeks and feel strange", "pregnancy_week", 28),
        ("ik ben 3 weken thuis met de baby", "pregnancy_week", None),
        ("ik ben 2 weken geleden bevallen", "pregnancy_week", None),
    ],
)
def test_facts_are_read(text: str, field: str, value: object) -> None:
    assert getattr(extract(normalize(text)), field) == value


def test_money_and_other_numbers_are_not_facts() -> None:
    facts = extract(normalize("ik heb nog 38,50 euro tot het einde van de maand"))
    assert facts.temperature_c is None and facts.child_age_days is None


FIRES = [
    ("mijn baby van 6 weken heeft 38,4 koorts", "fever_young_baby", Risk.high, Danger.medical_child),
    ("my 6 week old feels hot, 38.3 on the thermometer", "fever_young_baby", Risk.high, Danger.medical_child),
    ("al 9 uur geen natte luier bij mn zoontje", "dry_nappy_hours", Risk.high, Danger.medical_child),
    ("sinds gister zo slap, drinkt bijna niks, 5 wkn, luiers droog", "drowsy_child", Risk.acute, Danger.medical_child),
    ("hij viel van de bank op zn hoofd en nu spuugt hij steeds", "head_blow_then_vomit", Risk.high, Danger.medical_child),
    ("ze is van het aankleedkussen gevallen en nu zo suf", "head_blow_then_drowsy", Risk.acute, Danger.medical_child),
    ("mijn zoontje heeft een knoopcelbatterij ingeslikt", "swallowed_something", Risk.acute, Danger.medical_child),
    ("31 weken en ik voel haar veel minder bewegen", "fewer_movements", Risk.acute, Danger.medical_pregnancy),
    ("hevige hoofdpijn en ik zie sterretjes, 34 weken", "headache_with_signs", Risk.high, Danger.medical_pregnancy),
    ("mn vliezen zijn gebroken en ik ben 30 weken", "waters_early", Risk.acute, Danger.medical_pregnancy),
    ("mn man is stomdronken en ligt op de bank met de baby", "carer_intoxicated", Risk.acute, Danger.child_in_danger),
    ("ik sta met mn dochter van 3 buiten in de kou, nergens om te slapen", "outside_with_child_now", Risk.acute, Danger.homeless_now),
    ("hij heeft mn telefoon afgepakt en ik mag de deur niet uit", "phone_taken_and_trapped", Risk.acute, Danger.violence_now),
    ("hij heeft zn handen om mn keel", "hands_on_throat", Risk.acute, Danger.violence_now),
    ("ik ben 14 en mijn vriend is 23", "minor_with_adult_partner", Risk.high, Danger.child_in_danger),
    ("vrouw is vorige week bevallen, ze slaapt al 3 nachten niet en praat wartaal", "confused_after_birth", Risk.high, Danger.psychiatric),
    ("ze is 10 dagen geleden bevallen en slaapt al dagen niet", "no_sleep_after_birth", Risk.high, Danger.psychiatric),
    ("mijn dochter van 2 hapt naar adem, blaffende hoest", "breathing_child", Risk.high, Danger.medical_child),
    ("mn zoontje heeft aan de ibuprofen gezeten, de strip is half leeg", "swallowed_something", Risk.acute, Danger.medical_child),
    ("Die Stimmen sagen mir, ich soll dem Kind weh tun", "voices_commanding_harm", Risk.acute, Danger.psychiatric),
    ("oigo voces que me dicen que le haga daño a mi bebé", "voices_commanding_harm", Risk.acute, Danger.psychiatric),
]


@pytest.mark.parametrize(("text", "flag", "level", "danger"), FIRES)
def test_red_flag_fires(flags: RedFlags, text: str, flag: str, level: Risk, danger: Danger) -> None:
    fired = {f.id: f for f in flags.check(normalize(text))}
    assert flag in fired, (text, sorted(fired))
    assert (fired[flag].level, fired[flag].danger) == (level, danger)


NEAR_MISSES = [
    "peuter van 2 jaar heeft 38,5 maar speelt gewoon",
    "vanaf hoeveel graden is koorts gevaarlijk bij een baby van 2 maanden?",
    "wat moet je doen als een kind een batterij inslikt",
    "vorig jaar had ik veel bloedverlies in mijn zwangerschap, nu gaat alles goed",
    "3 weken na de bevalling nog steeds bloedverlies",
    "is het te koud om met de baby buiten te wandelen?",
    "ik ben zo slap en moe, de baby huilt de hele dag",
    "we willen een kindje maar ik slik medicijnen voor epilepsie",
    "ik ben zwanger 20 weken en heb veel pijn in mijn rug",
    "hij had vorig jaar een keer zijn handen om mn keel, nu zijn we uit elkaar",
    "mijn zoon heeft aan de kast gezeten, alles ligt eruit",
    "wat moet je doen als je kind aan de medicijnen heeft gezeten?",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_do_not_fire(flags: RedFlags, text: str) -> None:
    fired = [f for f in flags.check(normalize(text)) if f.level.rank >= Risk.acute.rank]
    assert fired == [], (text, fired)


@pytest.mark.parametrize(("text", "_flag", "level", "danger"), FIRES)
def test_red_flags_reach_the_assessment(detector: RiskDetector, text: str, _flag: str, level: Risk, danger: Danger) -> None:
    result = detector.assess(text)
    assert result.level.rank >= level.rank, (text, result.reasons)
    assert result.danger is danger, (text, result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "ik schrok me echt dood vannacht haha",
        "ik word echt zo gek van dat gehuil 😂",
        "ik ga letterlijk dood van de slaap",
        "deze bevalling was echt moordend",
    ],
)
def test_idioms_hold_with_intensifiers(detector: RiskDetector, text: str) -> None:
    result = detector.assess(text)
    assert result.level is not Risk.acute and result.danger is Danger.none, (text, result.reasons)


@pytest.mark.parametrize(
    ("text", "danger"),
    [
        ("sorry voor alles. zeg tegen mn dochter dat mama van haar hield", Danger.suicide),
        ("dit is mijn laatste berichtje, het is niet jullie schuld", Danger.suicide),
        ("ik krijg steeds beelden dat ik de baby laat vallen, ik ben zo bang dat ik het doe", Danger.psychiatric),
        ("ik hoor stemmen die zeggen dat ik de baby pijn moet doen", Danger.psychiatric),
    ],
)
def test_implicit_danger_has_its_kind(detector: RiskDetector, text: str, danger: Danger) -> None:
    result = detector.assess(text)
    assert result.level is Risk.acute and result.danger is danger, (text, result.reasons)


def test_a_red_flag_file_with_an_unknown_sign_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "red_flags.yml"
    bad.write_text(
        "signs:\n  now: [nu]\n  past: [toen]\n  hypothetical: [als]\n  resolved: [goed]\n"
        "red_flags:\n  - id: x\n    level: high\n    all: [nope]\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="unknown sign 'nope'"):
        RedFlags.load(bad)


@pytest.mark.parametrize(
    "text",
    [
        "sorry voor alles wat ik vroeg, ik was gewoon moe",
        "dit is mijn laatste bericht voor vandaag, morgen verder",
        "het is niet jouw schuld hoor, de app deed raar",
        "ik heb al mijn babykleertjes weggegeven want ze is eruit gegroeid",
        "vorig jaar dacht ik aan zelfmoord, nu gaat het goed en zoek ik een praatgroep",
    ],
)
def test_farewell_near_misses_are_not_acute(detector: RiskDetector, text: str) -> None:
    result = detector.assess(text)
    assert result.level is not Risk.acute, (text, result.reasons)


def test_a_rule_without_a_kind_takes_the_models_kind(detector: RiskDetector) -> None:
    # The Turkish rule names no kind; the danger model does, and the emergency text follows it.
    result = detector.assess("bu gece her şeye son vereceğim, çocuklar annemde")
    assert result.level is Risk.acute and result.danger is Danger.suicide
    assert result.category == "suicide", result.reasons
