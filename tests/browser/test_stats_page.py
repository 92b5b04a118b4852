"""The statistics page in a real browser, with a month of demo facts: charts and tables are
visible, the period can be changed, and no count below 5 is shown anywhere on the page.

Screenshots go to artifacts_dir."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.storage import db
from bot.storage.models import Channel, ContactFact, ContactTheme, Role, utcnow
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.test_handoff_flow import WAIT_MS, Live, log_in, make_user, shot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[Live]:
    services = build_services(settings, triage=triage)
    server = Live(settings, services)
    seed(server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def seed(live: Live) -> None:
    """A month of demo facts (stats.demo) and a theme with exactly 3 contacts."""
    zone = ZoneInfo(live.settings.timezone)
    with db.transaction(live.services.factory) as session:
        try:
            from stats.demo import generate
        except ImportError:
            generate = None
        if generate is not None:
            generate(session, days=30, contacts_per_day=60, seed=3, zone=zone, catalogue=live.services.catalogue)
        hour = (utcnow() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        for _ in range(3):
            fact = ContactFact(hour=hour, channel=Channel.phone, themes=["rare_test_theme"], catalogue_given=[])
            session.add(fact)
            session.flush()
            session.add(ContactTheme(fact_id=fact.id, theme="rare_test_theme", hour=hour))
        if generate is None:  # without the generator: enough contacts for charts to show something
            for day in range(30):
                for n in range(8):
                    moment = hour - timedelta(days=day, hours=n)
                    fact = ContactFact(hour=moment, channel=list(Channel)[n % 5], themes=["money"], catalogue_given=[])
                    session.add(fact)
                    session.flush()
                    session.add(ContactTheme(fact_id=fact.id, theme="money", hour=moment))


@pytest.fixture
def contexts(browser: Browser, live: Live) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


SMALL_NUMBERS = """() => {
  const bad = [];
  const seen = (where, text) => {
    const t = text.trim();
    if (/^\\d+$/.test(t) && Number(t) > 0 && Number(t) < 5) bad.push(where + ': ' + t);
    const tip = t.split(':').pop().trim();
    if (t.includes(':') && /^\\d+$/.test(tip) && Number(tip) > 0 && Number(tip) < 5) bad.push(where + ': ' + t);
  };
  document.querySelectorAll('table.stats td').forEach(e => seen('td', e.textContent));
  // Values and tooltips; the axes (hours of the day, ticks of 0 or at least 5) are labels, not counts.
  document.querySelectorAll('svg text:not(.axis), svg title').forEach(e => seen('svg', e.textContent));
  return bad;
}"""


def test_a_coordinator_reads_the_statistics(
    browser: Browser, contexts: list[BrowserContext], live: Live, artifacts_dir: Path
) -> None:
    make_user(live, "carla", "Carla", Role.coordinator)
    context = browser.new_context(viewport=DESKTOP, locale="nl-NL")
    contexts.append(context)
    page: Page = context.new_page()
    log_in(page, live, "carla")
    menu = page.get_by_role("navigation", name="Hoofdmenu").get_by_role("link", name="Statistieken")
    if menu.count():  # the lead's menu link
        menu.first.click()
    else:
        page.goto(f"{live.url}/dashboard/stats")
    page.wait_for_url(re.compile(r"/dashboard/stats"), timeout=WAIT_MS)
    assert page.get_by_role("heading", name="Statistieken", level=1).is_visible()
    assert page.locator("#shown-period").inner_text().startswith("Getoond:")
    shot(page, artifacts_dir, "01-stats-30-days")

    chart = page.locator("#s-contacts_per_day svg[role=img]")
    assert chart.is_visible() and chart.bounding_box()["height"] > 100  # type: ignore[index]
    assert page.locator("#s-contacts_per_day svg rect").count() > 20
    assert page.locator("#t-contacts_per_day").is_visible()
    assert page.locator("#t-contacts_per_day tbody tr").count() == 31
    assert page.locator("#s-hour_of_week svg").is_visible()

    themes = page.locator("#t-themes_per_week")
    themes.scroll_into_view_if_needed()
    assert themes.is_visible()
    rare = themes.locator("tr", has_text="rare_test_theme")
    assert "<5" in rare.inner_text() and not re.search(r"(?<![\d<])3(?!\d)", rare.inner_text())
    assert page.evaluate(SMALL_NUMBERS) == []
    page.locator("#s-themes_per_week").screenshot(path=str(artifacts_dir / "02-themes-small-cells.png"))

    page.get_by_label("Periode", exact=True).select_option("7")
    page.get_by_role("button", name="Toon").click()
    page.wait_for_url(re.compile(r"period=7"), timeout=WAIT_MS)
    assert page.locator("#t-contacts_per_day tbody tr").count() in (7, 8)
    assert page.locator("#s-risk svg").is_visible() and page.locator("#t-risk").is_visible()
    assert page.evaluate(SMALL_NUMBERS) == []
    shot(page, artifacts_dir, "03-stats-7-days")

    page.get_by_label("Kanaal", exact=True).select_option("phone")
    page.get_by_role("button", name="Toon").click()
    page.wait_for_url(re.compile(r"channel=phone"), timeout=WAIT_MS)
    assert "kanaal telefoon" in page.locator("#shown-period").inner_text()
    assert page.evaluate(SMALL_NUMBERS) == []
    csv_link = page.locator("#s-risk a.csv")
    assert csv_link.get_attribute("href") == "/dashboard/stats/export/risk.csv?period=7&channel=phone"
    with page.expect_download() as download:
        csv_link.click()
    assert download.value.suggested_filename.startswith("statistiek_risk_")
    shot(page, artifacts_dir, "04-stats-phone-only")
