"""Production with no checked catalogue entry offers parents no address at all: the service says
so once at start (a log warning, no parent data) and on every page of a coordinator's dashboard."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from bot import catalogue_warning
from bot.config import Settings, load_settings
from bot.intents.catalogue import Catalogue, load_catalogue
from bot.storage.models import Role
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.bot.web.test_dashboard import staff, text_of
from tests.channels.conftest import run_async

WARNING_WORDS = "NO practical addresses"


def _production(**extra: str) -> Settings:
    return load_settings(OUDERTELEFOON_ENV="production", SECRET_KEY=secrets.token_urlsafe(32),
                         PUBLIC_BASE_URL="https://hulp.example.nl", **extra)


def _one_checked(catalogue: Catalogue) -> Catalogue:
    first = next(e for e in catalogue if not e.emergency_only and not e.for_children_only)
    checked = first.model_copy(update={"verified": True, "last_checked": date(2026, 11, 1)})
    return Catalogue({**catalogue.entries, first.id: checked}, catalogue.best)


def test_the_rule_production_with_nothing_checked() -> None:
    catalogue = load_catalogue()
    assert not any(e.verified for e in catalogue), "data/aanbod has a checked entry: update this test"
    assert catalogue_warning.nothing_checked(_production(), catalogue)
    assert catalogue_warning.banner(_production(), catalogue) == catalogue_warning.BANNER
    # Unchecked entries allowed on purpose, or one entry checked: nothing to warn about.
    assert not catalogue_warning.nothing_checked(_production(CATALOGUE_INCLUDE_UNVERIFIED="true"),
                                                 catalogue)
    assert not catalogue_warning.nothing_checked(_production(), _one_checked(catalogue))
    # Outside production every entry is offered (the default), so there is no gap to warn of.
    assert not catalogue_warning.nothing_checked(load_settings(OUDERTELEFOON_ENV="development"),
                                                 catalogue)


@pytest.fixture(params=["nothing checked", "unchecked allowed"])
def case(request: pytest.FixtureRequest, settings: Settings,
         embedded_model: EmbeddedModel) -> Iterator[tuple[str, Services]]:
    # The production rule (only checked entries) on the test database: CATALOGUE_INCLUDE_UNVERIFIED
    # false is what production means when it is unset (bot.config.include_unverified_catalogue).
    include = request.param == "unchecked allowed"
    configured = settings.model_copy(update={"catalogue_include_unverified": include})
    assert configured.include_unverified_catalogue is include
    services = build_services(configured, triage=Triage.from_settings(configured, model=embedded_model))
    yield request.param, services
    run_async(services.close)


def test_one_loud_warning_at_start(case: tuple[str, Services],
                                   caplog: pytest.LogCaptureFixture) -> None:
    name, services = case
    caplog.set_level(logging.INFO)
    with TestClient(create_app(services.settings, services)) as client:
        assert client.get("/health").status_code == 200
        client.post("/api/triage", json={"text": "waar kan ik terecht met mijn huurschuld?"})
    warnings = [r for r in caplog.records if r.name == "bot.catalogue_warning"]
    if name == "unchecked allowed":
        assert warnings == []
        return
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert WARNING_WORDS in message and "CATALOGUE_INCLUDE_UNVERIFIED" in message
    assert "huurschuld" not in message


def test_the_coordinators_dashboard_shows_the_banner(case: tuple[str, Services]) -> None:
    name, services = case
    app = create_app(services.settings, services)
    coordinator = staff(app, services, Role.coordinator)
    volunteer = staff(app, services, Role.volunteer)
    with coordinator.client, volunteer.client:
        for url in ("/dashboard", "/dashboard/users", "/dashboard/texts"):
            page = coordinator.client.get(url)
            assert page.status_code == 200, url
            shown = catalogue_warning.BANNER in text_of(page.text)
            assert shown is (name == "nothing checked"), url
            if shown:
                assert 'class="notice catalogue-warning" role="alert"' in page.text
        # Volunteers cannot check the catalogue: the banner is for coordinators.
        assert "Geen enkel aanbod" not in volunteer.client.get("/dashboard").text
