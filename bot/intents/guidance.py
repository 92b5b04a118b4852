"""Emergency guidance by kind of danger: what a parent reads FIRST, and a caller hears first.

One source, data/messages/guidance.yml, for chat and phone: the spoken text is derived from the
written one (numbers digit by digit), so the two cannot drift. The rule for WHEN guidance comes
first lives here too (`guidance_kind`): every acute message, and a high one whose danger is medical
or psychiatric. A figure of speech is no danger (triage gives it risk below high), so it never
gets a crisis line.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import DataError
from bot.triage.types import DANGER_KINDS, Danger, Risk

#: The kinds with a text: every danger kind, and `general` for danger now of no known kind.
GUIDANCE_KINDS: tuple[str, ...] = (*DANGER_KINDS, "general")
#: Every guidance text exists in these languages (those of data/messages/other.yml, nl and en).
GUIDANCE_LANGUAGES: tuple[str, ...] = ("nl", "en", "tr", "ar", "pl", "es", "fr", "de", "pt")
#: What the phone line can speak (Twilio speech in Dutch and English).
SPOKEN_LANGUAGES: tuple[str, ...] = ("nl", "en")

# Older rule categories (data/risk/rules.yml `category`), for an acute message without a kind.
_CATEGORY_KIND = {
    "suicide": Danger.suicide.value,
    "violence": Danger.violence_now.value,
    "child": Danger.child_in_danger.value,
    "pregnancy": Danger.medical_pregnancy.value,
}
_NUMBER = re.compile(r"\d[\d\- ]*\d|\d")


def guidance_kind(risk: Risk, danger: Danger, risk_category: str | None = None) -> str | None:
    """The guidance a message's first reply opens with, or None.

    Acute: its danger kind (or, without one, what its rule category says, else `general`).
    High: only a medical or psychiatric danger (taxonomy.md: these get guidance first at high).
    """
    if risk is Risk.acute:
        if danger is not Danger.none:
            return str(danger.value)
        return _CATEGORY_KIND.get(risk_category or "", "general")
    if risk is Risk.high and danger.medical:
        return danger.value
    return None


def spoken_number(number: str) -> str:
    """A phone number as a voice reads it best: digit by digit, groups apart ("0 8 0 0, 2 0 0 0")."""
    groups = [g for g in re.split(r"[\s-]+", number.strip()) if g]
    return ", ".join(" ".join(ch for ch in group if ch.isdigit()) for group in groups)


def spoken(text: str) -> str:
    """A written text as the phone line says it: every number digit by digit ("bel 0800-0113")."""
    return _NUMBER.sub(lambda match: spoken_number(match.group(0)), text)


@dataclass(frozen=True)
class Guidance:
    """The guidance texts, by kind and language, and the languages still awaiting a native check."""

    texts: dict[str, dict[str, str]]
    review: frozenset[str]

    @classmethod
    def load(cls, path: Path) -> Guidance:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise DataError(f"{path}: cannot read guidance: {error}") from None
        section = document.get("guidance") if isinstance(document, dict) else None
        if not isinstance(section, dict):
            raise DataError(f"{path}: key 'guidance': expected a mapping of kinds")
        texts: dict[str, dict[str, str]] = {}
        for kind in GUIDANCE_KINDS:
            by_language = section.get(kind)
            if not isinstance(by_language, dict):
                raise DataError(f"{path}: key 'guidance.{kind}': missing")
            for code in GUIDANCE_LANGUAGES:
                value = by_language.get(code)
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{path}: key 'guidance.{kind}.{code}': expected a text")
                if any(field for _, field, _, _ in string.Formatter().parse(value)):
                    raise DataError(f"{path}: key 'guidance.{kind}.{code}': no placeholders here")
            texts[kind] = {str(code): str(value) for code, value in by_language.items()}
        unknown = set(section) - set(GUIDANCE_KINDS)
        if unknown:
            raise DataError(f"{path}: unknown guidance kinds: {sorted(unknown)}")
        review = document.get("review") or []
        if not isinstance(review, list):
            raise DataError(f"{path}: key 'review': expected a list of language codes")
        return cls(texts, frozenset(str(code) for code in review))

    def text(self, kind: str, language: str = "nl") -> str:
        by_language = self.texts[kind]
        return by_language.get(language) or by_language["nl"]

    def for_parent(self, kind: str, language_code: str) -> list[str]:
        """What the parent reads first: their own language, then Dutch (English writers: English)."""
        if language_code in ("nl", "en"):
            return [self.text(kind, language_code)]
        own = self.texts[kind].get(language_code)
        return [own, self.texts[kind]["nl"]] if own else [self.texts[kind]["nl"]]

    def spoken(self, kind: str, language: str = "nl") -> str:
        """The same text as the phone line speaks it (nl or en)."""
        return spoken(self.text(kind, language if language in SPOKEN_LANGUAGES else "nl"))
