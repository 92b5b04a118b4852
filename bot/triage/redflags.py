"""Red flags: named signs and extracted facts combined into a risk level and a danger kind.

data/risk/red_flags.yml holds the signs (word families) and the rules that combine them with the
facts of bot/triage/entities.py ("koorts" + "6 weken" -> a fever under 3 months). Pure: no I/O
after loading. A red flag in a message that speaks of the past or of a hypothetical ("vorig
jaar", "wat moet je doen als...") and gives no sign of now counts as its `guarded_level`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import DataError
from bot.triage.entities import Facts, extract
from bot.triage.types import Danger, Risk

_GUARDS = ("past", "hypothetical", "resolved")
# Numeric facts: key -> (field of Facts, True for "at least", False for "below").
_BOUNDS = {
    "child_age_days_below": ("child_age_days", False),
    "child_age_days_at_least": ("child_age_days", True),
    "pregnancy_week_below": ("pregnancy_week", False),
    "pregnancy_week_at_least": ("pregnancy_week", True),
    "temperature_at_least": ("temperature_c", True),
    "duration_hours_at_least": ("duration_hours", True),
}
_FACT_KEYS = set(_BOUNDS) | {"fever", "child_or_age", "pregnant", "alone_with_child"}
_PREGNANT_WORDS = re.compile(
    r"\b(?:zwanger\w*|zwnager|pregnant|pregnancy|in verwachting|verloskundige|midwife|hamile\w*|"
    r"embarazada|w ciazy|enceinte|gravida|schwanger|uitgerekend|buikje|zw)\b"
)
_MINOR_AGE_DAYS = 18 * 365
_UNKNOWN = object()
_NEGATION_WINDOW = 2
_CLAUSE = re.compile(r"[.!?;:,\n]|\b(?:maar|but|want|omdat|because|en|and|und|et)\b")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True)
class RedFlag:
    id: str
    level: Risk
    danger: Danger
    all: tuple[str, ...]
    any: tuple[str, ...]
    none: tuple[str, ...]
    facts: dict[str, Any]
    guarded_level: Risk = Risk.none


@dataclass(frozen=True)
class Fired:
    """One red flag that fired, at the level it counts for in this message."""

    id: str
    level: Risk
    danger: Danger
    guarded: bool


class RedFlags:
    """Signs and red-flag rules from data/risk/red_flags.yml."""

    def __init__(
        self,
        signs: dict[str, re.Pattern[str]],
        flags: list[RedFlag],
        negations: frozenset[str] = frozenset(),
    ) -> None:
        self.signs = signs
        self.flags = flags
        self.negations = negations

    def _found(self, name: str, text: str) -> bool:
        """A sign is found when one of its matches is not negated: "niet gespuugd", "geen
        koorts" and "not blue" say the sign is absent."""
        for match in self.signs[name].finditer(text):
            before = _TOKEN.findall(_CLAUSE.split(text[: match.start()])[-1])[-_NEGATION_WINDOW:]
            if not self.negations.intersection(before):
                return True
        return False

    @classmethod
    def load(cls, path: Path) -> RedFlags:
        document = read_mapping(path, "red flags")
        signs: dict[str, re.Pattern[str]] = {}
        for name, patterns in (document.get("signs") or {}).items():
            if not isinstance(patterns, list) or not patterns:
                raise DataError(f"{path}: sign '{name}': needs a non-empty list of patterns")
            try:
                signs[str(name)] = re.compile(
                    "|".join(rf"(?<!\w)(?:{p})(?!\w)" for p in patterns)
                )
            except (re.error, TypeError) as error:
                raise DataError(f"{path}: sign '{name}': {error}") from None
        for guard in (*_GUARDS, "now"):
            if guard not in signs:
                raise DataError(f"{path}: sign '{guard}' is required")
        flags: list[RedFlag] = []
        seen: set[str] = set()
        for index, item in enumerate(document.get("red_flags") or []):
            where = f"{path}: red_flags[{index}]"
            if not isinstance(item, dict) or "id" not in item:
                raise DataError(f"{where}: needs an id")
            flag_id = str(item["id"])
            if flag_id in seen:
                raise DataError(f"{where}: duplicate id '{flag_id}'")
            seen.add(flag_id)
            try:
                level = Risk(str(item.get("level")))
                danger = Danger(str(item.get("danger", "none")))
                guarded = Risk(str(item.get("guarded_level", "none")))
            except ValueError as error:
                raise DataError(f"{where} '{flag_id}': {error}") from None
            names = {key: tuple(str(n) for n in item.get(key) or ()) for key in ("all", "any", "none")}
            for name in (n for group in names.values() for n in group):
                if name not in signs:
                    raise DataError(f"{where} '{flag_id}': unknown sign '{name}'")
            facts = dict(item.get("facts") or {})
            unknown = set(facts) - _FACT_KEYS
            if unknown:
                raise DataError(f"{where} '{flag_id}': unknown facts {sorted(unknown)}")
            if not names["all"] and not names["any"] and not facts:
                raise DataError(f"{where} '{flag_id}': needs signs or facts")
            flags.append(
                RedFlag(flag_id, level, danger, names["all"], names["any"], names["none"], facts, guarded)
            )
        if not flags:
            raise DataError(f"{path}: no red flags")
        negations = frozenset(str(w) for w in document.get("negation") or [])
        return cls(signs, flags, negations)

    def guard(self, text: str) -> str | None:
        """"hypothetical" for a question about what if; "over" for a danger that is over or a
        past event with nothing about now; None for a message about now."""
        has = {name: bool(self.signs[name].search(text)) for name in (*_GUARDS, "now")}
        if has["resolved"] or (has["past"] and not has["now"]):
            return "over"
        if has["hypothetical"]:
            return "hypothetical"
        return None

    def check(self, text: str, facts: Facts | None = None) -> list[Fired]:
        """Every red flag that fires in one normalised text, most severe first."""
        facts = facts if facts is not None else extract(text)
        found: dict[str, bool] = {}

        def has(name: str) -> bool:
            if name not in found:
                found[name] = self._found(name, text)
            return found[name]

        fired: list[Fired] = []
        guard: object = _UNKNOWN
        for flag in self.flags:
            if not all(has(n) for n in flag.all):
                continue
            if flag.any and not any(has(n) for n in flag.any):
                continue
            if any(has(n) for n in flag.none):
                continue
            if not self._facts_hold(flag.facts, facts, text, has):
                continue
            # A hypothetical or a danger that is over is guarded; a past event only when nothing
            # in the message speaks of now ("vorig jaar..." vs "gisteren gevallen, nu spuugt hij").
            if guard is _UNKNOWN:
                guard = self.guard(text)
            guarded = guard is not None
            level = flag.guarded_level if guarded else flag.level
            fired.append(Fired(flag.id, level, flag.danger, guarded))
        fired.sort(key=lambda f: f.level.rank, reverse=True)
        return fired

    @staticmethod
    def _facts_hold(wanted: dict[str, Any], facts: Facts, text: str, has: Any) -> bool:
        young = facts.child_age_days is not None and facts.child_age_days < _MINOR_AGE_DAYS
        flags = {
            "fever": (facts.temperature_c is not None and facts.temperature_c >= 38.0)
            or (facts.fever_word and facts.temperature_c is None),
            "child_or_age": young or has("child") or has("baby"),
            "pregnant": facts.pregnancy_week is not None or bool(_PREGNANT_WORDS.search(text)),
            "alone_with_child": facts.alone_with_child,
        }
        for key, value in wanted.items():
            if key in flags:
                if flags[key] is not bool(value):
                    return False
                continue
            field, at_least = _BOUNDS[key]
            measured = getattr(facts, field)
            if measured is None or (measured >= float(value)) is not at_least:
                return False
        return True


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; a clear DataError otherwise."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{path}: cannot read {what}: {error}") from None
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected a mapping")
    return document
