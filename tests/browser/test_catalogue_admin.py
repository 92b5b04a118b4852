"""The catalogue in a real browser: a coordinator edits an entry on the dashboard and marks it
checked, and the parent's very next practical question in the web chat gets the new text and
number. Production's rule is on (only checked entries), so before the check the bot gives none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import AuditLog, CatalogueRecord, Role
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import PHONE_VIEWPORT, LiveServer
from tests.browser.test_handoff_flow import (
    LAPTOP_VIEWPORT,
    WAIT_MS,
    chat_say,
    log_in,
    make_user,
    new_page,
    shot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

NEW_PHONE = "0800-1234"
NEW_SUMMARY = "Een gratis lijn voor vragen over geld en schulden. Ze zoeken hulp bij jou in de buurt."


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[LiveServer]:
    production_rule = settings.model_copy(update={"catalogue_include_unverified": False})
    services = build_services(production_rule, triage=triage)
    server = LiveServer(production_rule, services)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def contexts(browser: Browser, live: LiveServer) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def last_bot_text(page: object) -> str:
    return str(page.locator("#log .msg.bot").last.inner_text())  # type: ignore[attr-defined]


def test_a_coordinator_edits_and_checks_an_entry_and_the_next_answer_uses_it(
    browser: Browser, contexts: list[BrowserContext], live: LiveServer, artifacts_dir: Path
) -> None:
    make_user(live, "coco", "Coco", Role.coordinator)  # type: ignore[arg-type]

    # A parent asks a practical question: nothing is checked yet, so no address at all.
    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, "waar kan ik hulp krijgen met mijn schulden")
    before = parent.locator("#log").inner_text()
    assert "0800-8115" not in before and NEW_PHONE not in before

    # The coordinator edits Geldfit on the dashboard.
    desk = new_page(browser, contexts, LAPTOP_VIEWPORT)
    log_in(desk, live, "coco")  # type: ignore[arg-type]
    desk.get_by_role("link", name="Aanbod beheren").first.click()
    desk.wait_for_url(f"{live.url}/dashboard/catalogue", timeout=WAIT_MS)
    shot(desk, artifacts_dir, "01-catalogue-list")
    desk.get_by_role("link", name="Geldfit", exact=True).click()
    desk.wait_for_url(f"{live.url}/dashboard/catalogue/geldfit", timeout=WAIT_MS)
    # A wrong number first: refused at the field, in Dutch, the other text kept.
    desk.get_by_label("Telefoonnummer", exact=True).fill("bel ons")
    desk.locator("#f-summary-nl").fill(NEW_SUMMARY)
    desk.get_by_role("button", name="Opslaan").click()
    desk.locator("#error-contact-phone").wait_for(timeout=WAIT_MS)
    assert "geen telefoonnummer" in desk.locator("#error-contact-phone").inner_text()
    assert desk.locator("#f-summary-nl").input_value() == NEW_SUMMARY
    shot(desk, artifacts_dir, "02-refused-phone")
    desk.get_by_label("Telefoonnummer", exact=True).fill(NEW_PHONE)
    desk.get_by_role("button", name="Opslaan").click()
    desk.get_by_role("status").filter(has_text="De wijziging is opgeslagen").wait_for(timeout=WAIT_MS)
    # Saved, but not checked yet: production still offers nothing.
    chat_say(parent, "wie helpt me met mijn schulden?")
    assert NEW_PHONE not in last_bot_text(parent)

    # Checked: the very next answer uses the new text and number.
    desk.get_by_role("button", name="Markeer als gecontroleerd").click()
    desk.get_by_role("status").filter(has_text="gemarkeerd als gecontroleerd").wait_for(timeout=WAIT_MS)
    assert "door Coco" in desk.locator("#check-status").inner_text()
    shot(desk, artifacts_dir, "03-checked")
    chat_say(parent, "ik heb geldzorgen, waar kan ik terecht?")
    answer = last_bot_text(parent)
    assert NEW_PHONE in answer and NEW_SUMMARY in answer and "0800-8115" not in answer
    shot(parent, artifacts_dir, "04-parent-answer")

    with live.services.factory() as session:
        record = session.get(CatalogueRecord, "geldfit")
        assert record is not None and record.checked_at is not None
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.action.like("catalogue_%"))))
    assert actions == ["catalogue_entry_changed", "catalogue_entry_checked"]
