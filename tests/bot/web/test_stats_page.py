"""The statistics page and its CSV exports: coordinators only, small cells hidden everywhere."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.storage import db
from bot.storage.models import Channel, ContactFact, ContactTheme, QueueName, Role, utcnow
from bot.triage.types import Risk, Route
from bot.web.app import WEB_DIR, Services
from tests.bot.web.test_dashboard import FETCH, app_routes, dashboard_app, staff
from tests.channels.conftest import services  # noqa: F401 (a fixture)


def stats_app(settings: Settings, services: Services) -> FastAPI:
    """The real app, with the statistics router included if the app does not mount it yet."""
    app = dashboard_app(settings, services)
    if not any(path == "/dashboard/stats" for path, _ in app_routes(app)):
        from bot.web import stats

        app.include_router(stats.build_router(Jinja2Templates(directory=WEB_DIR / "templates")))
    return app


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return stats_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def seed(services: Services) -> None:
    """Yesterday: 12 contacts about money on WhatsApp, 3 about addiction by phone (a small cell)."""
    hour = (utcnow() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with db.transaction(services.factory) as session:
        for count, theme, channel in ((12, "money", Channel.whatsapp), (3, "addiction", Channel.phone)):
            for _ in range(count):
                fact = ContactFact(hour=hour, channel=channel, themes=[theme], catalogue_given=[],
                                   risk=Risk.concern, route=Route.volunteer, handed_over=True,
                                   queue=QueueName.volunteer, waited_seconds=120)
                session.add(fact)
                session.flush()
                session.add(ContactTheme(fact_id=fact.id, theme=theme, hour=hour))


def visible_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_only_coordinators_see_the_statistics(app: FastAPI, client: TestClient, services: Services) -> None:
    client.cookies.clear()
    assert client.get("/dashboard/stats", follow_redirects=False, headers={"Accept": "text/html"}).status_code == 303
    assert client.get("/dashboard/stats/export/risk.csv", headers=FETCH).status_code == 401
    for role in (Role.volunteer, Role.professional):
        person = staff(app, services, role)
        assert person.client.get("/dashboard/stats").status_code == 403
        assert person.client.get("/dashboard/stats/export/risk.csv").status_code == 403
    coordinator = staff(app, services, Role.coordinator)
    page = coordinator.client.get("/dashboard/stats")
    assert page.status_code == 200 and "Statistieken" in page.text
    assert coordinator.client.get("/dashboard/stats/export/nothing.csv").status_code == 404


def test_the_page_shows_charts_tables_and_no_small_numbers(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    seed(services)
    coordinator = staff(app, services, Role.coordinator)
    page = coordinator.client.get("/dashboard/stats?period=7")
    assert page.status_code == 200
    html = page.text
    assert html.count("<svg") >= 10 and 'role="img"' in html and "<desc" in html
    assert html.count("<caption") >= 10 and 'scope="col"' in html and 'scope="row"' in html
    assert '<option value="7" selected>' in html
    for key in ("contacts_per_day", "themes_per_week", "waiting_per_queue_week", "confusion"):
        assert f'href="/dashboard/stats/export/{key}.csv?period=7"' in html

    themes = re.search(r'<table class="stats" id="t-themes_per_week">.*?</table>', html, re.DOTALL)
    assert themes is not None
    row = re.search(r"<tr><th scope=\"row\">verslaving</th>(.*?)</tr>", themes.group(0), re.DOTALL)
    assert row is not None and "&lt;5" in row.group(1)
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    assert "3" not in cells and "&lt;5" in cells
    geld = re.search(r"<tr><th scope=\"row\">geld</th>(.*?)</tr>", themes.group(0), re.DOTALL)
    assert geld is not None and "<td>12</td>" in geld.group(1)
    # Nowhere on the page is a 3 shown as a number: not in a table cell, chart label or tooltip.
    for cell in re.findall(r"<td>([^<]*)</td>", html):
        assert cell.strip() != "3"
    # The waiting chart's panels have their own minute axes (0, 3, 6, ...): a scale, not a count.
    waiting = re.search(r'<section[^>]*id="s-waiting_per_queue_week".*?</section>', html, re.DOTALL)
    assert waiting is not None and '<text class="axis"' in waiting.group(0)
    counted = html.replace(
        waiting.group(0), re.sub(r'<text class="axis"[^>]*>[^<]*</text>', "", waiting.group(0))
    )
    for text in re.findall(r">([^<>]+)<", counted):
        assert text.rsplit(":", 1)[-1].strip() != "3", text

    export = coordinator.client.get("/dashboard/stats/export/themes_per_week.csv?period=7")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith('attachment; filename="statistiek_themes_per_week_')
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    verslaving = next(r for r in rows if r[0] == "verslaving")
    assert verslaving[-1] == "" and all(cell in ("", "0", "verslaving") for cell in verslaving)
    assert next(r for r in rows if r[0] == "geld")[-1] == "12"
    for key in ("contacts_per_day", "hour_of_week", "risk", "waiting_per_queue_week"):
        text = coordinator.client.get(f"/dashboard/stats/export/{key}.csv?period=7").text
        for line in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
            assert "3" not in line, (key, line)


def test_filters_and_custom_period(app: FastAPI, client: TestClient, services: Services) -> None:
    seed(services)
    coordinator = staff(app, services, Role.coordinator)
    page = coordinator.client.get("/dashboard/stats?period=30&channel=whatsapp")
    assert page.status_code == 200 and "kanaal WhatsApp" in page.text
    export = coordinator.client.get("/dashboard/stats/export/contacts_per_day.csv?period=30&channel=phone")
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert all(row[-1] in ("0", "") for row in rows[1:])  # only the 3 by phone: hidden
    today = utcnow().date()
    custom = coordinator.client.get(
        f"/dashboard/stats?period=custom&start={(today - timedelta(days=3)).isoformat()}&end={today.isoformat()}")
    assert custom.status_code == 200 and "Getoond:" in custom.text
    export = coordinator.client.get(
        f"/dashboard/stats/export/contacts_per_day.csv?period=custom&start={(today - timedelta(days=3)).isoformat()}"
        f"&end={today.isoformat()}")
    assert len(list(csv.reader(io.StringIO(export.text)))) in (5, 6)  # header and 4 (or 5, zone) days
    wrong = coordinator.client.get("/dashboard/stats?period=custom&start=morgen&end=")
    assert wrong.status_code == 200 and "Vul een begin- en einddatum in" in wrong.text
    assert coordinator.client.get("/dashboard/stats?period=5&queue=nonsense").status_code == 200
