from __future__ import annotations

from bot.triage.text import Synonyms, normalize


def test_normalize_folds_case_accents_repeats_and_contractions() -> None:
    assert normalize("  Ik ben ZOOOOO moe,  m'n   baby huilt  ") == "ik ben zoo moe, mn baby huilt"
    assert normalize("weeën om de 5 min") == "weeen om de 5 min"
    assert normalize("café ’t is laat") == "cafe het is laat"


def test_synonyms_replace_whole_words_only() -> None:
    synonyms = Synonyms({"vk": "verloskundige", "cb": "consultatiebureau"})
    assert synonyms.apply("mn vk, en het cb?") == "mn verloskundige, en het consultatiebureau?"
    assert synonyms.apply("vkx cbd") == "vkx cbd"
    assert Synonyms({}).apply("vk") == "vk"
