"""Which language a message is in: nl, en or other (data/language.yml holds the clue words)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import DataError
from bot.triage.text import normalize, words
from bot.triage.types import Language

_NON_LATIN_SHARE = 0.3


@dataclass(frozen=True)
class LanguageGuesser:
    nl: frozenset[str]
    en: frozenset[str]
    other: dict[str, frozenset[str]]
    other_letters: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path) -> "LanguageGuesser":
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(
                nl=frozenset(normalize(str(w)) for w in document["nl"]),
                en=frozenset(normalize(str(w)) for w in document["en"]),
                other={
                    code: frozenset(normalize(str(w)) for w in items)
                    for code, items in (document.get("other") or {}).items()
                },
                other_letters=frozenset(str(document.get("other_letters") or "")),
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
            raise DataError(f"{path}: cannot read language clues: {error}") from None

    def guess(self, text: str) -> Language:
        letters = [c for c in text if c.isalpha()]
        if letters:
            non_latin = sum(1 for c in letters if not _is_latin(c))
            if non_latin / len(letters) >= _NON_LATIN_SHARE:
                return Language.other
        tokens = words(normalize(text))
        if not tokens:
            return Language.nl
        letters_bonus = 2 * len(self.other_letters.intersection(text))
        nl = sum(1 for t in tokens if t in self.nl)
        en = sum(1 for t in tokens if t in self.en)
        best_other = letters_bonus + max(
            (sum(1 for t in tokens if t in vocab) for vocab in self.other.values()), default=0
        )
        # Other languages must clearly beat both: many clue words are shared with Dutch.
        if best_other > max(nl, en) and best_other >= 2:
            return Language.other
        if en > nl:
            return Language.en
        return Language.nl


def _is_latin(char: str) -> bool:
    try:
        return "LATIN" in unicodedata.name(char)
    except ValueError:
        return False
