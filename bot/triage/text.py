"""Text normalisation shared by the classifiers and the risk rules."""

from __future__ import annotations

import re
import unicodedata

# Triage reads at most this much of a message; very long messages are kept whole in storage.
CLASSIFIER_MAX_CHARS = 1500
RISK_MAX_CHARS = 20_000

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
# Four or more of a letter become two ("heeeeel" -> "heel"); three stay, for weeën -> weeen.
_REPEATS = re.compile(r"(\w)\1{3,}")
_SPACES = re.compile(r"\s+")
_CONTRACTIONS = (
    (re.compile(r"\bm'n\b"), "mn"),
    (re.compile(r"\bz'n\b"), "zn"),
    (re.compile(r"\bd'r\b"), "dr"),
    (re.compile(r"(?<!\w)'k\b"), "ik"),
    (re.compile(r"(?<!\w)'t\b"), "het"),
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def strip_accents(text: str) -> str:
    """Remove Latin diacritics (é -> e); other scripts keep their letters."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def normalize(text: str) -> str:
    """Lowercase, fold accents and apostrophes, squeeze letter repeats and white space."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = strip_accents(text)
    text = _REPEATS.sub(r"\1\1", text)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return _SPACES.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Word tokens of an already normalised text."""
    return _WORD.findall(text)


class Synonyms:
    """Whole-word replacement of abbreviations (vk -> verloskundige) in a normalised text."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = {normalize(k): normalize(v) for k, v in mapping.items() if k.strip()}
        keys = sorted(self.mapping, key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<![\w'])(?:" + "|".join(re.escape(k) for k in keys) + r")(?![\w'])")
            if keys
            else None
        )

    def apply(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.mapping[m.group(0)], text)
