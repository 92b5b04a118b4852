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
    short: dict[str, str] | None = None  # a whole short message -> its language code

    @classmethod
    def load(cls, path: Path) -> LanguageGuesser:
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
                short={
                    " ".join(words(normalize(str(phrase)))): code
                    for code, phrases in (document.get("short") or {}).items()
                    for phrase in phrases
                },
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
            raise DataError(f"{path}: cannot read language clues: {error}") from None

    def guess(self, text: str) -> Language:
        code = self.guess_code(text)
        return Language(code) if code in ("nl", "en") else Language.other

    def guess_code(self, text: str) -> str:
        """nl, en, a code from data/language.yml (tr, pl, ...), "ar" for Arabic script, or "other"."""
        letters = [c for c in text if c.isalpha()]
        if letters:
            non_latin = [c for c in letters if not _is_latin(c)]
            if len(non_latin) / len(letters) >= _NON_LATIN_SHARE:
                return "ar" if sum(1 for c in non_latin if _is_arabic(c)) > len(non_latin) / 2 else "other"
        tokens = words(normalize(text))
        if not tokens:
            return "nl"
        if self.short and len(tokens) <= 4:
            whole = " ".join(tokens)
            if whole in self.short:
                return self.short[whole]
        letters_bonus = 2 * len(self.other_letters.intersection(text))
        nl = sum(1 for t in tokens if t in self.nl)
        en = sum(1 for t in tokens if t in self.en)
        scores = {code: sum(1 for t in tokens if t in vocab) for code, vocab in self.other.items()}
        best_code = max(scores, key=lambda c: scores[c], default="other")
        best_other = letters_bonus + scores.get(best_code, 0)
        # Other languages must clearly beat both: many clue words are shared with Dutch.
        if best_other > max(nl, en) and best_other >= 2:
            return best_code if scores.get(best_code, 0) > 0 else "other"
        if en > nl:
            return "en"
        return "nl"


def _is_arabic(char: str) -> bool:
    try:
        return "ARABIC" in unicodedata.name(char)
    except ValueError:
        return False


def _is_latin(char: str) -> bool:
    try:
        return "LATIN" in unicodedata.name(char)
    except ValueError:
        return False
