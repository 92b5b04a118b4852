"""The language guesser on the shortest messages: greetings, thanks, yes and no."""

from __future__ import annotations

import pytest

from bot.config import REPO_ROOT
from bot.triage.language import LanguageGuesser


@pytest.fixture(scope="module")
def guesser() -> LanguageGuesser:
    return LanguageGuesser.load(REPO_ROOT / "data" / "language.yml")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("merhaba", "tr"), ("teşekkürler", "tr"), ("evet", "tr"), ("hayır", "tr"),
        ("cześć", "pl"), ("dziękuję", "pl"), ("tak", "pl"),
        ("hola", "es"), ("gracias", "es"), ("sí", "es"),
        ("olá", "pt"), ("obrigada", "pt"),
        ("bonjour", "fr"), ("merci", "fr"),
        ("danke", "de"),
        ("yes", "en"), ("no", "en"), ("thank you!", "en"),
        ("شكرا", "ar"),
        # Dutch stays Dutch, also where a word is shared
        ("ja", "nl"), ("nee", "nl"), ("ok", "nl"), ("oke", "nl"), ("hoi", "nl"), ("dank je", "nl"),
        ("ja graag", "nl"),
    ],
)
def test_short_messages(guesser: LanguageGuesser, text: str, code: str) -> None:
    assert guesser.guess_code(text) == code


def test_yaml_booleans_are_words(guesser: LanguageGuesser) -> None:
    # YAML reads a bare yes/no/on as a boolean: the clue words must still be the words.
    assert {"yes", "no", "on"} <= guesser.en
