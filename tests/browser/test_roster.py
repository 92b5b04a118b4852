"""The roster in real browsers: a coordinator plans a volunteer's shift in the week view (laptop
sized), and a parent writing in the web chat while nobody is there (phone sized) hears when that
planned shift starts, from the roster and not from the opening hours.
Screenshots of each page go to artifacts_dir."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.rules import QueueName
from bot.storage.models import PlannedShift, Role
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import LOCALE, PHONE_VIEWPORT, LiveServer
from tests.browser.test_handoff_flow import (
    LAPTOP_VIEWPORT,
    LONELY,
    WAIT_MS,
    chat_say,
    log_in,
    low_contrast,
    make_user,
    shot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[LiveServer]:
    services = build_services(settings, triage=triage)
    server = LiveServer(settings, services)
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


def new_page(browser: Browser, contexts: list[BrowserContext], viewport: dict[str, int]) -> Page:
    context = browser.new_context(viewport=viewport, locale=LOCALE)
    contexts.append(context)
    return context.new_page()


def the_shift(settings: Settings) -> tuple[date, int, str]:
    """A shift that has not begun: in two hours today when that still fits the day, else
    tomorrow at 19:00; and what the parent should read about it."""
    now = datetime.now(ZoneInfo(settings.timezone))
    if now.hour + 2 <= 21:
        return now.date(), now.hour + 2, f"Vandaag vanaf {now.hour + 2:02d}:00"
    return now.date() + timedelta(days=1), 19, "Morgen vanaf 19:00"


def test_a_planned_shift_is_what_the_parent_hears_after_hours(
    browser: Browser, contexts: list[BrowserContext], live: LiveServer, settings: Settings,
    artifacts_dir: Path
) -> None:
    make_user(live, "coco", "Coco", Role.coordinator)
    make_user(live, "sanne", "Sanne", Role.volunteer)
    day, hour, expected = the_shift(settings)

    # The coordinator plans Sanne's shift in the week view.
    desk = new_page(browser, contexts, LAPTOP_VIEWPORT)
    log_in(desk, live, "coco")
    desk.get_by_role("link", name="Rooster").click()
    desk.wait_for_url(f"{live.url}/dashboard/rooster", timeout=WAIT_MS)
    shot(desk, artifacts_dir, "01-week-view-empty")
    assert desk.get_by_text("Voor deze wachtrij is nog niets ingepland").count() == 2
    form = desk.locator("#plan-form")
    form.get_by_label("Wie").select_option(label="Sanne (vrijwilliger)")
    form.get_by_label("Wachtrij").select_option(label="vrijwilligers")
    form.get_by_label("Datum").fill(day.isoformat())
    form.get_by_label("Van").fill(f"{hour:02d}:00")
    form.get_by_label("Tot", exact=True).fill(f"{hour + 2:02d}:00")
    form.get_by_role("button", name="Inplannen").click()
    desk.get_by_role("status").filter(has_text="De dienst staat op het rooster").wait_for(timeout=WAIT_MS)
    planned = desk.locator(".roster-shift", has_text="Sanne")
    assert f"{hour:02d}:00\u2013{hour + 2:02d}:00" in planned.inner_text()
    assert low_contrast(desk) == []
    shot(desk, artifacts_dir, "02-week-view-planned")
    with live.services.factory() as session:
        shift = session.scalars(select(PlannedShift)).one()
        assert shift.queue is QueueName.volunteer

    # Nobody is on shift. A parent asks for a volunteer in the web chat.
    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, LONELY)
    chat_say(parent, "1")
    told = parent.locator("#log .msg.bot", has_text="volgens het rooster weer iemand")
    told.wait_for(timeout=WAIT_MS)
    assert f"{expected} is er volgens het rooster weer iemand" in told.inner_text(), told.inner_text()
    shot(parent, artifacts_dir, "03-parent-hears-the-planned-shift")

    # Sanne sees the shift under "Mijn diensten".
    volunteer = new_page(browser, contexts, PHONE_VIEWPORT)
    log_in(volunteer, live, "sanne")
    volunteer.get_by_role("link", name="Mijn diensten").click()
    volunteer.wait_for_url(f"{live.url}/dashboard/mijn-diensten", timeout=WAIT_MS)
    assert f"{hour:02d}:00\u2013{hour + 2:02d}:00" in volunteer.locator(".my-shifts").inner_text()
    shot(volunteer, artifacts_dir, "04-volunteer-own-shifts")
