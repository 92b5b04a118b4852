"""The texts a parent reads, from data/messages/<language>.yml (section `dialogue`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import DataError
from bot.intents.guidance import Guidance
from bot.triage.types import Language

LANGUAGES = ("nl", "en")


@dataclass(frozen=True)
class Texts:
    """Dialogue texts per language; English for English writers, Dutch for everyone else."""

    by_language: dict[str, dict[str, str]]
    other_language: dict[str, str] = field(default_factory=dict)
    #: Emergency guidance by danger kind (data/messages/guidance.yml), shared with the phone line.
    guidance: Guidance | None = None

    @classmethod
    def load(cls, directory: Path) -> Texts:
        loaded: dict[str, dict[str, str]] = {}
        for code in LANGUAGES:
            path = directory / f"{code}.yml"
            try:
                document = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as error:
                raise DataError(f"{path}: cannot read messages: {error}") from None
            section = document.get("dialogue") if isinstance(document, dict) else None
            if not isinstance(section, dict):
                raise DataError(f"{path}: key 'dialogue': expected a mapping of texts")
            texts: dict[str, str] = {}
            for key, value in section.items():
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{path}: key 'dialogue.{key}': expected a text")
                try:
                    list(string.Formatter().parse(value))
                except ValueError as error:
                    raise DataError(f"{path}: key 'dialogue.{key}': bad placeholder: {error}") from None
                texts[str(key)] = value
            loaded[code] = texts
        missing = set(loaded["nl"]) ^ set(loaded["en"])
        if missing:
            raise DataError(f"{directory}: keys not in both nl.yml and en.yml: {sorted(missing)}")
        other_path = directory / "other.yml"
        other: dict[str, str] = {}
        if other_path.exists():
            try:
                document = yaml.safe_load(other_path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as error:
                raise DataError(f"{other_path}: not valid YAML: {error}") from None
            lines = document.get("other_language") if isinstance(document, dict) else None
            if not isinstance(lines, dict) or not all(isinstance(v, str) for v in lines.values()):
                raise DataError(f"{other_path}: key 'other_language': expected code: text")
            other = {str(k): v for k, v in lines.items()}
        guidance = Guidance.load(directory / "guidance.yml")
        return cls(loaded, other, guidance)

    def in_language(self, code: str) -> str | None:
        """The one line we have in the parent's own language, if any."""
        return self.other_language.get(code)

    def get(self, key: str, language: Language | str, **values: Any) -> str:
        code = "en" if str(getattr(language, "value", language)) == "en" else "nl"
        template = self.by_language[code][key]
        return template.format(**values) if values else template
