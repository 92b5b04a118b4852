"""Routing is a pure function of theme, intent and risk (taxonomy.md section 3)."""

from __future__ import annotations

import pytest

from bot.triage.routing import needs_clarification, risk_floor, route
from bot.triage.types import Risk, Route, Theme


@pytest.mark.parametrize(
    ("theme", "intent", "risk", "expected"),
    [
        (Theme.money, "money", Risk.none, Route.bot),
        (Theme.pregnancy, "pregnancy", Risk.none, Route.bot),
        (Theme.money, "money", Risk.concern, Route.volunteer),
        (Theme.loneliness, "loneliness", Risk.none, Route.volunteer),
        (Theme.parenting, "parenting", Risk.none, Route.volunteer),
        (Theme.housing, "housing", Risk.high, Route.professional),
        (Theme.addiction, "addiction", Risk.none, Route.professional),
        (Theme.domestic_violence, "domestic_violence", Risk.high, Route.professional),
        (Theme.mental_health, "mental_health", Risk.acute, Route.emergency),
        (Theme.none, "greet", Risk.acute, Route.emergency),
        (Theme.none, "ask_human", Risk.none, Route.volunteer),
        (Theme.none, "ask_human", Risk.high, Route.professional),
        (Theme.none, "greet", Risk.none, Route.bot),
        (Theme.none, "nlu_fallback", Risk.none, Route.bot),
    ],
)
def test_route(theme: Theme, intent: str, risk: Risk, expected: Route) -> None:
    assert route(theme, intent, risk) is expected


def test_acute_is_never_downgraded_by_theme() -> None:
    for theme in Theme:
        assert route(theme, theme.value, Risk.acute) is Route.emergency
        assert risk_floor(theme, Risk.acute) is Risk.acute


def test_domestic_violence_is_at_least_high() -> None:
    assert risk_floor(Theme.domestic_violence, Risk.none) is Risk.high
    assert risk_floor(Theme.money, Risk.none) is Risk.none


def test_clarify_only_without_risk() -> None:
    assert needs_clarification(Theme.none, "nlu_fallback", Risk.none)
    assert not needs_clarification(Theme.none, "nlu_fallback", Risk.concern)
    assert not needs_clarification(Theme.money, "money", Risk.none)
