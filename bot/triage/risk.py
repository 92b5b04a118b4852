"""Risk detection: phrase rules (data/risk/rules.yml) combined with the embedded risk classifier.

Recall comes first: no acute message may be missed. The rules catch the phrasings we know, with
negation and idioms handled; the classifier, trained on every example in data/nlu with its risk
label, catches the ones without a keyword. Both are local, so risk still works when Rasa is down.

Order of work for a message:
1. normalise the text;
2. replace idioms ("ik schrok me dood") with a neutral token, so neither rules nor model see them;
3. match the rules; a hit with a negation just before it in the same clause ("ik heb GEEN
   zelfmoordgedachten") is negated: its span is neutralised too, and it counts one level lower
   at most `concern` (a person should still hear it);
4. the classifier reads the neutralised text; cumulative probabilities against per-level
   thresholds give its level;
5. the result is the higher of rules and classifier (the theme may raise it further: routing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.errors import DataError
from bot.triage.entities import Facts, extract
from bot.triage.redflags import RedFlags, read_mapping
from bot.triage.text import RISK_MAX_CHARS, normalize
from bot.triage.types import Danger, Risk, Theme

NEUTRAL = " _ "
_MIN_WORDS = 3
_BRIEF_WORDS = 3
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]|\b(?:maar|but|alleen|wel|want|omdat|because|though)\b")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


class RiskModel(Protocol):
    def risk_probabilities(self, text: str) -> dict[Risk, float]: ...

    def danger_probabilities(self, text: str) -> dict[Danger, float]: ...


@dataclass(frozen=True)
class Rule:
    id: str
    level: Risk
    category: str
    patterns: tuple[re.Pattern[str], ...]
    negatable: bool = True
    danger: Danger = Danger.none
    # A medical rule does not count in a hypothetical or for a danger that is over.
    guarded: bool = False


@dataclass(frozen=True)
class Hit:
    rule: str
    level: Risk
    category: str
    negated: bool
    span: tuple[int, int]
    danger: Danger = Danger.none
    guarded: bool = False


@dataclass
class RiskAssessment:
    level: Risk
    category: str | None
    reasons: list[str] = field(default_factory=list)
    model_probabilities: dict[str, float] = field(default_factory=dict)
    neutralised_text: str = ""
    danger: Danger = Danger.none
    facts: Facts = field(default_factory=Facts)
    strain: bool = False  # the parent is at the end of their strength (rules.yml `strain`)


@dataclass(frozen=True)
class Thresholds:
    """Cumulative probability a level (or higher) needs from the classifier."""

    acute: float = 0.30
    high: float = 0.45
    concern: float = 0.50
    # For a message of a few words, or one the intent classifier reads as a conversation move
    # ("ik ga nu", "helemaal niet"), the classifier alone needs more to call it acute: such texts
    # carry too little for it. Rules still fire on them as usual.
    acute_brief: float = 0.60


class RiskRules:
    """Phrase rules, idioms and negation words, loaded from data/risk/rules.yml."""

    def __init__(
        self,
        rules: list[Rule],
        idioms: list[re.Pattern[str]],
        negations: set[str],
        window: int,
        thresholds: Thresholds,
        fillers: frozenset[str] = frozenset(),
    ) -> None:
        self.rules = rules
        self.idioms = idioms
        self.idiom_sources: list[str] = []
        self.negations = negations
        self.window = window
        self.fillers = fillers
        self.thresholds = thresholds
        self.strain: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def load(cls, path: Path) -> RiskRules:
        document = read_mapping(path, "risk rules")

        def compile_all(items: Any, where: str) -> tuple[re.Pattern[str], ...]:
            if not isinstance(items, list) or not items:
                raise DataError(f"{path}: {where}: needs a non-empty list of patterns")
            compiled = []
            for index, pattern in enumerate(items):
                try:
                    compiled.append(re.compile(rf"(?<!\w)(?:{pattern})(?!\w)"))
                except (re.error, TypeError) as error:
                    raise DataError(f"{path}: {where}: pattern {index}: {error}") from None
            return tuple(compiled)

        rules = []
        seen = set()
        for index, item in enumerate(document.get("rules") or []):
            if not isinstance(item, dict) or "id" not in item:
                raise DataError(f"{path}: rules[{index}]: needs an id")
            rule_id = str(item["id"])
            if rule_id in seen:
                raise DataError(f"{path}: rule '{rule_id}': duplicate id")
            seen.add(rule_id)
            try:
                level = Risk(str(item.get("level")))
            except ValueError:
                raise DataError(
                    f"{path}: rule '{rule_id}': field 'level': {item.get('level')!r} is not a risk level"
                ) from None
            try:
                danger = Danger(str(item.get("danger", "none")))
            except ValueError:
                raise DataError(
                    f"{path}: rule '{rule_id}': field 'danger': {item.get('danger')!r} is not a danger kind"
                ) from None
            rules.append(
                Rule(
                    id=rule_id,
                    level=level,
                    category=str(item.get("category", "general")),
                    patterns=compile_all(item.get("patterns"), f"rule '{rule_id}'"),
                    negatable=bool(item.get("negatable", True)),
                    danger=danger,
                    guarded=bool(item.get("guarded", False)),
                )
            )
        if not rules:
            raise DataError(f"{path}: no rules")
        intensifiers = [str(w) for w in document.get("intensifiers") or []]
        sources = [str(i) for i in document.get("idioms") or []]
        idioms = list(compile_all([_loosen(i, intensifiers) for i in sources], "idioms"))
        negation = document.get("negation") or {}
        words = {normalize(str(w)) for w in negation.get("words") or []}
        thresholds = Thresholds(**(document.get("model_thresholds") or {}))
        fillers = frozenset(normalize(str(w)) for w in negation.get("fillers") or [])
        loaded = cls(rules, idioms, words, int(negation.get("window", 2)), thresholds, fillers)
        loaded.idiom_sources = sources
        strain = document.get("strain")
        loaded.strain = compile_all([_loosen(p, intensifiers) for p in strain], "strain") if strain else ()
        return loaded

    # ---------------------------------------------------------------------------------------

    def neutralise_idioms(self, text: str) -> tuple[str, list[str]]:
        found = []
        for index, pattern in enumerate(self.idioms):
            if pattern.search(text):
                sources = self.idiom_sources
                found.append(sources[index] if index < len(sources) else pattern.pattern)
                text = pattern.sub(NEUTRAL, text)
        return text, found

    def _negated(self, text: str, start: int) -> bool:
        before = text[:start]
        # Only the current clause counts: "ik ben niet ok, ik wil dood" is not negated.
        breaks = list(_CLAUSE_BREAK.finditer(before))
        if breaks:
            before = before[breaks[-1].end() :]
        tokens = _TOKEN.findall(before)
        # Walk back over filler words only; the negation must come within `window` words.
        for distance, token in enumerate(reversed(tokens)):
            if distance >= self.window + 1:
                return False
            if token in self.negations:
                return True
            if token not in self.fillers:
                return False
        return False

    def match(self, text: str) -> list[Hit]:
        hits = []
        for rule in self.rules:
            for pattern in rule.patterns:
                for m in pattern.finditer(text):
                    negated = rule.negatable and self._negated(text, m.start())
                    hits.append(
                        Hit(rule.id, rule.level, rule.category, negated, m.span(), rule.danger, rule.guarded)
                    )
                    break
                else:
                    continue
                break
        return hits


def _loosen(idiom: str, intensifiers: list[str]) -> str:
    """Let up to two intensifiers stand between an idiom's words: "ik schrok me ECHT dood"."""
    if not intensifiers:
        return idiom
    gap = r"(?:\s+(?:" + "|".join(intensifiers) + r")){0,2}"
    out = []
    i = 0
    while i < len(idiom):
        if idiom.startswith(" ?", i):
            out.append(gap + r"\s*")
            i += 2
        elif idiom[i] == " ":
            out.append(gap + r"\s+")
            i += 1
        else:
            out.append(idiom[i])
            i += 1
    return "".join(out)


def _lower(level: Risk) -> Risk:
    order = [Risk.none, Risk.concern, Risk.high, Risk.acute]
    return order[max(0, min(level.rank - 1, Risk.concern.rank))]


def model_level(probabilities: dict[Risk, float], thresholds: Thresholds, brief: bool = False) -> Risk:
    acute = probabilities.get(Risk.acute, 0.0)
    high = acute + probabilities.get(Risk.high, 0.0)
    concern = high + probabilities.get(Risk.concern, 0.0)
    if acute >= (thresholds.acute_brief if brief else thresholds.acute):
        return Risk.acute
    if high >= thresholds.high:
        return Risk.high
    if concern >= thresholds.concern:
        return Risk.concern
    return Risk.none


_THEME_CATEGORY = {
    Theme.mental_health: "suicide",
    Theme.domestic_violence: "violence",
    Theme.pregnancy: "pregnancy",
    Theme.child_health: "child",
    Theme.baby_care: "child",
    Theme.parenting: "child",
    Theme.addiction: "general",
}


# The older, coarser category that the dialogue's emergency texts are keyed on.
_DANGER_CATEGORY = {
    Danger.suicide: "suicide",
    Danger.violence_now: "violence",
    Danger.child_in_danger: "child",
    Danger.medical_child: "child",
    Danger.medical_pregnancy: "pregnancy",
    Danger.psychiatric: "suicide",
    Danger.homeless_now: "general",
}


class RiskDetector:
    """Rules plus classifier; `assess` is deterministic and does no I/O."""

    def __init__(self, rules: RiskRules, model: RiskModel, red_flags: RedFlags | None = None) -> None:
        self.rules = rules
        self.model = model
        self.red_flags = red_flags

    def assess(
        self,
        text: str,
        theme: Theme = Theme.none,
        conversational: bool = False,
        thresholds: Thresholds | None = None,
    ) -> RiskAssessment:
        """Assess one message. `conversational`: the intent classifier reads it as a
        conversation move (greeting, yes/no, goodbye...), which makes the classifier stricter.
        `thresholds` replaces the configured ones (used when choosing them)."""
        normalised = normalize(text[:RISK_MAX_CHARS])
        neutral, idioms = self.rules.neutralise_idioms(normalised)
        hits = self.rules.match(neutral)
        reasons = [f"idiom:{p}" for p in idioms[:3]]
        rule_level = Risk.none
        category: str | None = None
        # Negated spans are removed before the model reads the text.
        for hit in sorted(hits, key=lambda h: h.span[0], reverse=True):
            if hit.negated:
                neutral = neutral[: hit.span[0]] + NEUTRAL + neutral[hit.span[1] :]
        facts = extract(neutral)
        guard = self.red_flags.guard(neutral) if self.red_flags is not None else None
        danger = Danger.none
        danger_rank = -1
        for hit in hits:
            level = _lower(hit.level) if hit.negated else hit.level
            note = " (negated)" if hit.negated else ""
            if guard is not None and hit.guarded:
                # a medical sign in a question or in a past that is over: no danger now
                level, note = Risk.none, f" ({guard})"
            elif guard == "over" and level.rank > Risk.concern.rank:
                # "vorig jaar dacht ik aan zelfmoord, nu gaat het goed": a person may still hear it
                level, note = Risk.concern, f" ({guard})"
            reasons.append(f"rule:{hit.rule}{note}")
            if level.rank > rule_level.rank:
                rule_level, category = level, hit.category
            if level.rank >= Risk.high.rank and hit.danger is not Danger.none and level.rank > danger_rank:
                danger, danger_rank = hit.danger, level.rank
        guarded_flag = False
        if self.red_flags is not None:
            for fired in self.red_flags.check(neutral, facts):
                reasons.append(f"flag:{fired.id}{' (guarded)' if fired.guarded else ''}")
                guarded_flag = guarded_flag or fired.guarded
                if fired.level.rank > rule_level.rank:
                    rule_level, category = fired.level, _DANGER_CATEGORY.get(fired.danger, "general")
                if (
                    fired.level.rank >= Risk.high.rank
                    and fired.danger is not Danger.none
                    and fired.level.rank > danger_rank
                ):
                    danger, danger_rank = fired.danger, fired.level.rank
        probabilities = self.model.risk_probabilities(neutral)
        brief = conversational or len(_TOKEN.findall(normalised)) <= _BRIEF_WORDS
        from_model = model_level(probabilities, thresholds or self.rules.thresholds, brief)
        if neutral != normalised and len(_TOKEN.findall(neutral)) - neutral.count("_") <= _MIN_WORDS:
            # Little is left once idioms and negated phrases are removed: the classifier's opinion
            # on three words is noise, so the rules decide ("ik heb geen zelfmoordgedachten").
            from_model = Risk.none
        if guarded_flag and rule_level is Risk.none and from_model.rank > Risk.concern.rank:
            # A red flag in a hypothetical or a past event ("wat moet je doen als..."): the
            # classifier hears the danger words, not the question; a person may still answer.
            from_model = Risk.concern
        if not any(ch.isalpha() for ch in normalised):
            # "1", "2", "?", a number: no word for the classifier to read, its answer is noise
            # (a "1" choosing a volunteer must not get a baby's emergency text). Rules still count.
            from_model = Risk.none
        if idioms and rule_level.rank < Risk.high.rank and from_model.rank > Risk.concern.rank:
            # "ik schrok me echt dood vannacht, hij lag op zn buik": the danger words were a figure
            # of speech, and no rule or red flag sees danger in the rest. The classifier still
            # hears the scare; a person may hear it, a crisis line would frighten and label.
            reasons.append(f"idiom-cap:{from_model.value}")
            from_model = Risk.concern
        if from_model.rank > rule_level.rank:
            reasons.append(f"model:{from_model.value}")
            level = from_model
            category = _THEME_CATEGORY.get(theme, "general") if level is Risk.acute else category
        else:
            level = rule_level
        if level is Risk.acute and category is None:
            category = _THEME_CATEGORY.get(theme, "general")
        if level.rank >= Risk.high.rank and danger is Danger.none:
            danger = self._danger_from_model(neutral, level)
            if danger is not Danger.none:
                reasons.append(f"danger-model:{danger.value}")
                if level is Risk.acute and (
                    from_model.rank > rule_level.rank or category in (None, "general")
                ):
                    # a rule that names no kind (e.g. danger words in Turkish) takes the model's
                    category = _DANGER_CATEGORY.get(danger, category)
        return RiskAssessment(
            level=level,
            category=category,
            reasons=reasons,
            model_probabilities={k.value: round(v, 4) for k, v in probabilities.items()},
            neutralised_text=neutral,
            danger=danger if level.rank >= Risk.high.rank else Danger.none,
            facts=facts,
            strain=level is Risk.concern or any(p.search(normalised) for p in self.rules.strain),
        )

    def _danger_from_model(self, text: str, level: Risk) -> Danger:
        """The danger kind the classifier reads when no rule named one. Acute always has a kind;
        at high a kind is given only when the classifier prefers one over none."""
        probabilities = self.model.danger_probabilities(text)
        if not probabilities:
            return Danger.none
        ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
        if level is Risk.acute:
            return next((kind for kind, _ in ranked if kind is not Danger.none), Danger.none)
        return ranked[0][0]
