"""Routing: where a conversation goes next (taxonomy.md section 3). Pure functions, no I/O."""

from __future__ import annotations

import re

from bot.triage.text import normalize
from bot.triage.types import ConversationIntent, Risk, Route, Theme

# Themes that need a professional whatever the risk (taxonomy.md: domestic violence, addiction).
PROFESSIONAL_THEMES = frozenset({Theme.domestic_violence, Theme.addiction})
# Themes that are about talking rather than information: a trained volunteer or fellow parent.
VOLUNTEER_THEMES = frozenset({Theme.loneliness, Theme.parenting})
# Risk floor per theme: domestic violence that is not happening now is an urgent risk factor.
THEME_RISK_FLOOR = {Theme.domestic_violence: Risk.high}


def risk_floor(theme: Theme, risk: Risk) -> Risk:
    """The risk after the theme's floor: never lower than what the theme itself implies."""
    return Risk.highest(risk, THEME_RISK_FLOOR.get(theme, Risk.none))


# A practical question: a question mark, or a question word that opens a clause.
_QUESTION = re.compile(
    r"\?|(?:^|[.,!;:]\s*|\b(?:en|maar|dus|and|but|so)\s+)"
    r"(?:hoe|waar|wat|wanneer|welke|welk|hoeveel|hoelang|vanaf wanneer|is er|zijn er|heeft iemand|"
    r"kan ik|kun je|kunnen jullie|mag ik|moet ik|weet iemand|how|where|what|when|which|is there|"
    r"are there|can i|should i|do you know)\b"
)


def is_question(text: str) -> bool:
    """True when a message asks something (a question mark, or a clause opening with a question
    word): a parenting or loneliness question the catalogue can answer stays with the bot."""
    return bool(_QUESTION.search(normalize(text)))


def route(theme: Theme, intent: str, risk: Risk, question: bool = False) -> Route:
    """The route for one message.

    Risk decides first (acute -> emergency, high -> professional), then a request for a person,
    then the theme. A practical question the catalogue answers stays with the bot, also about
    parenting or loneliness; the parent can always ask for a person.
    """
    if risk is Risk.acute:
        return Route.emergency
    if risk is Risk.high or theme in PROFESSIONAL_THEMES:
        return Route.professional
    if intent == ConversationIntent.ask_human.value:
        return Route.volunteer
    if risk is Risk.concern:
        return Route.volunteer
    if theme in VOLUNTEER_THEMES and not question:
        return Route.volunteer
    return Route.bot


def needs_clarification(theme: Theme, intent: str, risk: Risk) -> bool:
    """True when the bot should ask a short clarifying question (or offer a person)."""
    return intent == "nlu_fallback" and risk is Risk.none
