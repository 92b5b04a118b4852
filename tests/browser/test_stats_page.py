"""The statistics page in a real browser, with a month of demo facts: charts and tables are
visible, the period can be changed, and no count below 5 is shown anywhere on the page.
Issue 14: "Laatste n dagen" shows exactly n days; a day with one small channel still shows its
total (as the range the row allows, "77–80", so the hidden count is not given away); the waiting
chart has a median and a p90 panel, each on its own scale, with readable medians and no label
outside the SVG; the table of contents jumps to each section and back.

Screenshots go to artifacts_dir."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
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


#: Two known days before the demo month: one with one small channel (Telegram 2), one without.
KNOWN_AGO = 45
KNOWN_DAY = {Channel.whatsapp: 40, Channel.web: 25, Channel.sms: 11, Channel.telegram: 2}  # 78
NEXT_DAY = {Channel.whatsapp: 30, Channel.web: 10, Channel.sms: 5}  # 45, nothing hidden


def known_day(live: Live) -> date:
    return utcnow().astimezone(ZoneInfo(live.settings.timezone)).date() - timedelta(days=KNOWN_AGO)


def seed(live: Live) -> None:
    """A month of demo facts (stats.demo), a theme with exactly 3 contacts, and two known days."""
    zone = ZoneInfo(live.settings.timezone)
    with db.transaction(live.services.factory) as session:
        for offset, counts in ((0, KNOWN_DAY), (1, NEXT_DAY)):
            noon = datetime.combine(known_day(live) + timedelta(days=offset), time(12), zone).astimezone(UTC)
            for channel, n in counts.items():
                for _ in range(n):
                    session.add(ContactFact(hour=noon, channel=channel, themes=[], catalogue_given=[]))
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
    # "Laatste 30 dagen": exactly 30 local days, today the last (it showed 31).
    today = utcnow().astimezone(ZoneInfo(live.settings.timezone)).date()
    assert page.locator("#t-contacts_per_day tbody tr").count() == 30
    assert page.locator("#t-contacts_per_day tbody tr th").first.inner_text() == (today - timedelta(days=29)).isoformat()
    assert page.locator("#t-contacts_per_day tbody tr th").last.inner_text() == today.isoformat()
    assert page.locator("#shown-period").inner_text().startswith(
        f"Getoond: {today - timedelta(days=29):%d-%m-%Y} tot en met {today:%d-%m-%Y}")
    check_day_totals(page)
    check_waiting_chart(page, artifacts_dir)
    check_no_label_outside_its_chart(page)
    check_table_of_contents(page)
    page.locator("#inhoud").screenshot(path=str(artifacts_dir / "01c-table-of-contents.png"))
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
    assert page.locator("#t-contacts_per_day tbody tr").count() == 7
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


def cells(page: Page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.children].map(c => c.textContent.trim()))")


def check_day_totals(page: Page) -> None:
    """Every day of the month has a total. A day without hidden cells: the exact sum. A day with
    hidden cells: "low–high", exactly what its shown cells and the "<5" allow."""
    rows = cells(page, "#t-contacts_per_day")
    with_hidden = 0
    for row in rows:
        day, values, total = row[0], row[1:-1], row[-1]
        assert total and total != "\u2013", (day, row)
        shown = sum(int(v) for v in values if v != "<5")
        hidden = values.count("<5")
        if hidden:
            with_hidden += 1
            assert total == f"{shown + hidden}\u2013{shown + 4 * hidden}", row
        else:
            assert total == str(shown), row
    # The demo's phone line has about 5 contacts a day: many days have one small channel.
    assert with_hidden >= 3, rows


def check_waiting_chart(page: Page, artifacts_dir: Path) -> None:
    """Median and p90 in two panels, each on its own scale: with the demo's waits (a median of
    minutes, a p90 of hours after hours) the median bars are tall enough to read."""
    section = page.locator("#s-waiting_per_queue_week")
    section.scroll_into_view_if_needed()
    svg = section.locator("svg[role=img]")
    assert svg.is_visible()
    assert svg.locator("g.panel[data-panel=median]").count() == 1
    assert svg.locator("g.panel[data-panel=p90]").count() == 1
    assert "Mediaan" in svg.locator("g.panel[data-panel=median] text.panel-title").text_content() or ""
    assert "P90" in svg.locator("g.panel[data-panel=p90] text.panel-title").text_content() or ""
    table = cells(page, "#t-waiting_per_queue_week")
    medians = [float(r[3].replace(",", ".")) for r in table if r[3] not in ("\u2013", "")]
    p90s = [float(r[4].replace(",", ".")) for r in table if r[4] not in ("\u2013", "")]
    assert medians and max(p90s) > 20 * max(medians), (medians, p90s)  # realistic: very different sizes
    heights = svg.locator("g.panel[data-panel=median] rect.bar").evaluate_all(
        "bars => bars.map(b => b.getBoundingClientRect().height)")
    assert len(heights) == len(medians)
    # On one axis with the p90 a median bar was about 3 px; in its own panel the tallest fills it.
    assert max(heights) > 80 and min(heights) > 8, heights
    p90_heights = svg.locator("g.panel[data-panel=p90] rect.bar").evaluate_all(
        "bars => bars.map(b => b.getBoundingClientRect().height)")
    assert len(p90_heights) == len(p90s) and max(p90_heights) > 80
    # Both panels' boxes inside the SVG, one under the other.
    boxes = svg.locator("g.panel").evaluate_all("gs => gs.map(g => { const b = g.getBBox(); "
                                                "return [b.x, b.y, b.width, b.height]; })")
    assert boxes[0][1] + boxes[0][3] <= boxes[1][1], boxes
    section.screenshot(path=str(artifacts_dir / "01b-waiting-chart.png"))


OUTSIDE = """svg => {
  const view = svg.viewBox.baseVal, out = [];
  svg.querySelectorAll('text').forEach(t => {
    const b = t.getBBox();
    if (b.x < 0 || b.y < 0 || b.x + b.width > view.width + 0.5 || b.y + b.height > view.height + 0.5)
      out.push(t.textContent + ' ' + [b.x, b.y, b.width, b.height].map(Math.round).join(','));
  });
  return out;
}"""


def check_no_label_outside_its_chart(page: Page) -> None:
    """No text of any chart (axis labels included) reaches outside its SVG's box (it was clipped)."""
    charts = page.locator("svg.chart")
    assert charts.count() >= 12
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.evaluate(OUTSIDE) == [], chart.locator("title").first.text_content()


def check_table_of_contents(page: Page) -> None:
    """Every subject in the table of contents; a link jumps to its section, "Naar boven" back."""
    toc = page.get_by_role("navigation", name="Op deze pagina")
    links = toc.get_by_role("link")
    assert links.count() == 15
    targets = links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
    for href in targets:
        assert page.locator(href).count() == 1, href
    assert page.evaluate("document.documentElement.scrollHeight") > 5000  # long enough to need it
    page.evaluate("window.scrollTo(0, 0)")
    toc.get_by_role("link", name="Wachttijd per wachtrij per week (minuten)").click()
    page.wait_for_function("location.hash === '#s-waiting_per_queue_week'", timeout=WAIT_MS)
    page.wait_for_function("Math.abs(document.getElementById('s-waiting_per_queue_week')"
                           ".getBoundingClientRect().top - 16) < 4", timeout=WAIT_MS)
    assert page.evaluate("window.scrollY") > 2000
    assert page.get_by_role("heading", name="Wachttijd per wachtrij per week (minuten)").is_visible()
    page.locator("#s-waiting_per_queue_week").get_by_role("link", name="Naar boven").click()
    page.wait_for_function("location.hash === '#inhoud'", timeout=WAIT_MS)
    page.wait_for_function("Math.abs(document.getElementById('inhoud').getBoundingClientRect().top - 16) < 4",
                           timeout=WAIT_MS)
    assert toc.is_visible()
    page.evaluate("window.scrollTo(0, 0)")


def test_a_day_with_one_small_channel_shows_its_total(
    browser: Browser, contexts: list[BrowserContext], live: Live, artifacts_dir: Path
) -> None:
    """Two known days, chosen as a custom period: 40 + 25 + 11 + "<5" has the total "77–80" (the
    true 78 inside it, the hidden 2 not given away), and 30 + 10 + 5 the exact 45."""
    make_user(live, "carla", "Carla", Role.coordinator)
    context = browser.new_context(viewport=DESKTOP, locale="nl-NL")
    contexts.append(context)
    page: Page = context.new_page()
    log_in(page, live, "carla")
    page.goto(f"{live.url}/dashboard/stats")
    first = known_day(live)
    page.get_by_label("Periode", exact=True).select_option("custom")
    page.get_by_label("Van (bij zelf kiezen)").fill(first.isoformat())
    page.get_by_label("Tot en met").fill((first + timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Toon").click()
    page.wait_for_url(re.compile(r"period=custom"), timeout=WAIT_MS)
    table = page.locator("#t-contacts_per_day")
    columns = table.locator("thead th").all_inner_texts()
    rows = {row[0]: dict(zip(columns[1:], row[1:])) for row in cells(page, "#t-contacts_per_day")}
    assert list(rows) == [first.isoformat(), (first + timedelta(days=1)).isoformat()]
    day = rows[first.isoformat()]
    assert day == {"webchat": "25", "Telegram": "<5", "sms": "11", "WhatsApp": "40", "telefoon": "0",
                   "Totaal": "77\u201380"}
    assert 77 <= sum(KNOWN_DAY.values()) <= 80
    assert rows[(first + timedelta(days=1)).isoformat()]["Totaal"] == "45"
    note = page.locator("#note-contacts_per_day")
    assert note.is_visible() and "bereik" in note.inner_text()
    assert page.evaluate(SMALL_NUMBERS) == []
    table.scroll_into_view_if_needed()
    page.locator("#s-contacts_per_day").screenshot(path=str(artifacts_dir / "01-known-days-totals.png"))
    with page.expect_download() as download:
        page.locator("#s-contacts_per_day a.csv").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert f"{first.isoformat()},25,,11,40,0,77\u201380" in text
