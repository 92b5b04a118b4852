"""The NLU data itself: Rasa format, coverage per taxonomy id, a clean held-out split."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import REPO_ROOT
from bot.errors import NLUDataError
from bot.triage import nludata
from bot.triage.language import LanguageGuesser
from bot.triage.types import CONVERSATION_INTENTS, THEMES, Language, Risk

NLU = REPO_ROOT / "data" / "nlu"


@pytest.fixture(scope="module")
def train() -> nludata.NLUData:
    return nludata.load_training(NLU)


@pytest.fixture(scope="module")
def test_split() -> nludata.NLUData:
    return nludata.load(nludata.data_files(NLU / "test"))


def test_every_theme_and_intent_has_enough_examples(train: nludata.NLUData) -> None:
    counts = train.counts()
    for theme in THEMES:
        assert counts[theme] >= 40, theme
    for intent in CONVERSATION_INTENTS:
        assert counts[intent] >= 15, intent


def test_test_split_is_held_out(train: nludata.NLUData, test_split: nludata.NLUData) -> None:
    counts = test_split.counts()
    for theme in THEMES:
        assert counts[theme] >= 10, theme
    seen = {t.lower().strip() for t in train.texts()}
    assert [t for t in test_split.texts() if t.lower().strip() in seen] == []
    assert all(not p.is_relative_to(NLU / "test") for p in nludata.training_files(NLU))


@pytest.mark.parametrize(("name", "size"), [("validation", 300), ("holdout", 250)])
def test_blind_sets_are_held_out_and_labelled(train: nludata.NLUData, name: str, size: int) -> None:
    validation = nludata.load(nludata.data_files(NLU / name))
    assert len(validation.examples) >= size
    seen = {t.lower().strip() for t in train.texts()}
    assert [t for t in validation.texts() if t.lower().strip() in seen] == []
    assert all(not p.is_relative_to(NLU / name) for p in nludata.training_files(NLU))
    # every message carries a danger kind and a route; a kind only with high or acute risk
    assert all(e.danger is not None and e.route is not None for e in validation.examples)
    assert all(e.danger.value == "none" for e in validation.examples if e.risk.rank < Risk.high.rank)
    assert sum(1 for e in validation.examples if e.risk is Risk.acute) >= 40


def test_danger_in_every_theme(train: nludata.NLUData) -> None:
    acute_themes = {e.intent for e in train.examples if e.risk is Risk.acute}
    assert set(THEMES) <= acute_themes


def test_data_speaks_in_many_voices(train: nludata.NLUData) -> None:
    guesser = LanguageGuesser.load(REPO_ROOT / "data" / "language.yml")
    languages = [guesser.guess(t) for t in train.texts()]
    english = languages.count(Language.en) / len(languages)
    assert 0.10 <= english <= 0.30
    assert languages.count(Language.other) >= 30
    acute = [e for e in train.examples if e.risk is Risk.acute]
    assert len(acute) >= 100
    assert {e.intent for e in acute} >= {"mental_health", "domestic_violence", "pregnancy", "child_health"}


def test_entity_annotations_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: money\n  examples: |\n    - ik heb [500](amount) euro schuld\n'
        "- intent: money\n  metadata:\n    risk: concern\n  examples: |\n    - geen eten meer\n"
        "- intent: pregnancy\n  examples:\n  - text: veel bloed\n    metadata:\n      risk: acute\n"
        "- synonym: verloskundige\n  examples: |\n    - vk\n",
        encoding="utf-8",
    )
    data = nludata.load([path])
    assert [(e.text, e.intent, e.risk) for e in data.examples] == [
        ("ik heb 500 euro schuld", "money", Risk.none),
        ("geen eten meer", "money", Risk.concern),
        ("veel bloed", "pregnancy", Risk.acute),
    ]
    assert data.synonyms == {"vk": "verloskundige"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('version: "3.1"\nnlu:\n- intent: mony\n  examples: |\n    - x\n', "intent 'mony'"),
        ('version: "3.1"\nnlu:\n- intent: money\n  metadata:\n    risk: deadly\n  examples: |\n    - x\n',
         "risk 'deadly'"),
        ('version: "3.1"\nnlu:\n- intent: money\n  examples: |\n    x zonder streepje\n', "must start with '- '"),
        ("nlu: [unclosed\n", "not valid YAML"),
        ('version: "3.1"\nrules: []\n', "'nlu:' list"),
    ],
)
def test_bad_data_names_the_file_and_item(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NLUDataError) as error:
        nludata.load([path])
    assert str(path) in str(error.value)
    assert message in str(error.value)
