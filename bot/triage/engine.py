"""Triage of one parent message: theme, risk, route and language.

`Triage.run` is the only entry point. Risk is assessed locally for every message (rules plus the
embedded risk model), so it works when the Rasa server is down; the theme comes from the
configured NLU backend, which falls back to the embedded model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.config import NLUBackendName, Settings
from bot.triage.embedded import EmbeddedBackend, EmbeddedModel, load_or_train
from bot.triage.entities import Facts
from bot.triage.language import LanguageGuesser
from bot.triage.rasa import FallbackBackend, NLUBackend, RasaBackend
from bot.triage.redflags import RedFlags
from bot.triage.risk import RiskDetector, RiskRules
from bot.triage.routing import is_question, needs_clarification, risk_floor, route
from bot.triage.text import CLASSIFIER_MAX_CHARS, normalize, words
from bot.triage.types import (
    CONVERSATION_INTENTS,
    FALLBACK_INTENT,
    THEMES,
    Danger,
    Language,
    Risk,
    Route,
    Theme,
)

logger = logging.getLogger(__name__)

# Above this confidence a conversation intent (yes, no, goodbye...) makes the risk model stricter.
_CONVERSATIONAL_CONFIDENCE = 0.5
# A theme's risk floor (domestic violence: at least high) needs this much confidence in the theme.
_FLOOR_CONFIDENCE = 0.4
CONTRACT_KEYS = (
    "text", "theme", "intent", "confidence", "risk", "route", "language", "backend", "danger"
)


@dataclass(frozen=True)
class TriageResult:
    """What triage says about one message. `contract()` is the `triage` command's JSON."""

    text: str
    theme: Theme
    intent: str
    confidence: float
    risk: Risk
    route: Route
    language: Language
    backend: str
    risk_category: str | None = None
    risk_reasons: tuple[str, ...] = ()
    clarify: bool = False
    intent_ranking: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    language_code: str = "nl"  # finer than `language`: tr, pl, ar ... for the handover
    danger: Danger = Danger.none
    #: What the message says as numbers (a child's age, a pregnancy week...), for the catalogue.
    facts: Facts = field(default_factory=Facts)
    #: The parent shows strain ("ik trek het niet meer"): the answer opens with acknowledgement.
    strain: bool = False

    def contract(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "theme": self.theme.value,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "risk": self.risk.value,
            "route": self.route.value,
            "language": self.language.value,
            "backend": self.backend,
            "danger": self.danger.value,
        }

    def stored(self) -> dict[str, Any]:
        """What is kept with the message (no text: the message row has it)."""
        data = asdict(self)
        data.pop("text")
        data["theme"] = self.theme.value
        data["risk"] = self.risk.value
        data["route"] = self.route.value
        data["language"] = self.language.value
        data["danger"] = self.danger.value
        data["intent_ranking"] = [[n, round(c, 4)] for n, c in self.intent_ranking[:3]]
        data["risk_reasons"] = list(self.risk_reasons)
        return data


class Triage:
    """Theme backend + risk detector + language guesser + routing."""

    def __init__(
        self,
        backend: NLUBackend | FallbackBackend,
        risk: RiskDetector,
        language: LanguageGuesser,
        threshold: float,
    ) -> None:
        self.backend = backend
        self.risk = risk
        self.language = language
        self.threshold = threshold

    @classmethod
    def from_settings(cls, settings: Settings, *, model: EmbeddedModel | None = None) -> Triage:
        model = model or load_or_train(settings.nlu_dir, settings.var_dir / "models")
        embedded = EmbeddedBackend(model)
        backend: NLUBackend | FallbackBackend = embedded
        if settings.nlu_backend is NLUBackendName.rasa:
            token = settings.rasa_token.get_secret_value() if settings.rasa_token else None
            backend = FallbackBackend(
                RasaBackend(settings.rasa_url, settings.rasa_timeout, token=token), embedded)
        return cls(
            backend=backend,
            risk=RiskDetector(
                RiskRules.load(settings.risk_dir / "rules.yml"),
                model,
                RedFlags.load(settings.risk_dir / "red_flags.yml"),
            ),
            language=LanguageGuesser.load(settings.data_dir / "language.yml"),
            threshold=settings.theme_threshold,
        )

    def run(self, text: str) -> TriageResult:
        """Triage one message. Empty text is a conversation without content: theme none."""
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        if isinstance(self.backend, FallbackBackend):
            parse, backend_name = self.backend.parse_with_name(text[:CLASSIFIER_MAX_CHARS])
        else:
            parse, backend_name = self.backend.parse(text[:CLASSIFIER_MAX_CHARS]), self.backend.name
        return self.decide(text, parse, backend_name)

    def decide(self, text: str, parse: dict[str, Any], backend_name: str) -> TriageResult:
        intent = str(parse["intent"]["name"])
        confidence = float(parse["intent"].get("confidence") or 0.0)
        ranking = tuple(
            (str(item.get("name")), float(item.get("confidence") or 0.0))
            for item in parse.get("intent_ranking") or []
        )
        if not words(normalize(text)):
            # Only emoji or punctuation: the classifiers have no word to read, so their answer is
            # just the commonest label. Ask what it is about instead.
            intent, confidence = FALLBACK_INTENT, 0.0
        if intent == FALLBACK_INTENT or confidence < self.threshold:
            # Rasa's FallbackClassifier puts the real guess second; keep the confidence of it.
            if intent == FALLBACK_INTENT and len(ranking) > 1:
                confidence = ranking[1][1]
            intent, theme = FALLBACK_INTENT, Theme.none
        else:
            theme = Theme(intent) if intent in THEMES else Theme.none
        # The risk model reads the theme only to choose which emergency guidance fits.
        guess = theme if theme is not Theme.none else _best_theme(ranking)
        conversational = (
            intent in CONVERSATION_INTENTS and confidence >= _CONVERSATIONAL_CONFIDENCE
        )
        language_code = self.language.guess_code(text)
        assessment = self.risk.assess(text, guess, conversational)
        # A theme raises the risk only when the classifier is fairly sure of it, and not for a
        # question about it ("wat doet Veilig Thuis eigenlijk?"): rules and model judge those.
        floored = confidence >= _FLOOR_CONFIDENCE and not is_question(text)
        risk = risk_floor(theme, assessment.level) if floored else assessment.level
        reasons = tuple(assessment.reasons)
        if risk is not assessment.level:
            reasons += (f"theme:{theme.value}",)
        language = Language(language_code) if language_code in ("nl", "en") else Language.other
        return TriageResult(
            text=text,
            theme=theme,
            intent=intent,
            confidence=confidence,
            risk=risk,
            route=route(theme, intent, risk, is_question(text)),
            language=language,
            backend=backend_name,
            risk_category=assessment.category if risk.rank >= Risk.high.rank else None,
            risk_reasons=reasons,
            clarify=needs_clarification(theme, intent, risk),
            intent_ranking=ranking,
            language_code=language_code,
            danger=assessment.danger if risk.rank >= Risk.high.rank else Danger.none,
            facts=assessment.facts,
            strain=assessment.strain or risk is Risk.concern,
        )


def _best_theme(ranking: tuple[tuple[str, float], ...]) -> Theme:
    for name, _ in ranking:
        if name in THEMES:
            return Theme(name)
    return Theme.none

