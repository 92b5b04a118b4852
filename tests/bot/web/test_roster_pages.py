"""The roster pages (bot.web.roster) with the real app: coordinators plan (weekly too), swap and
delete in the week view, refusals say why in Dutch, the hours nobody is planned stand next to the
statistics' busy hours; every person sees their own upcoming shifts, and only those."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.config import Settings
from bot.rules import QueueName
from bot.storage import db
from bot.storage.models import AuditLog, Channel, ContactFact, PlannedShift, Role
from bot.web.app import Services
from tests.bot.web.test_dashboard import Staff, dashboard_app, staff, text_of
from tests.channels.conftest import services  # noqa: F401 (a fixture)

ZONE = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def app(settings: Settings, services: Services) -> Iterator[FastAPI]:
    """The app, started (its lifespan hands the services to the routes)."""
    built = dashboard_app(settings, services)
    with TestClient(built):
        yield built


def next_monday() -> date:
    today = datetime.now(ZONE).date()
    return today + timedelta(days=7 - today.weekday())


def plan(coordinator: Staff, user_id: str, day: date, start: str, end: str, *, queue: str = "volunteer",
         weeks: int = 1) -> tuple[int, str]:
    response = coordinator.post("/dashboard/rooster", {"user_id": user_id, "queue": queue,
                                                       "day": day.isoformat(), "start": start, "end": end,
                                                       "weeks": str(weeks)})
    return response.status_code, response.headers.get("location", "") or text_of(response.text)


def shifts(services: Services) -> list[PlannedShift]:
    with services.factory() as session:
        return list(session.scalars(select(PlannedShift).order_by(PlannedShift.starts_at)))


def test_a_volunteer_and_a_professional_see_their_own_shifts_only(app: FastAPI, services: Services) -> None:
    coordinator = staff(app, services, Role.coordinator)
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    mark = staff(app, services, Role.professional, display_name="Mark")
    monday = next_monday()
    assert plan(coordinator, sanne.person.user_id, monday, "19:00", "23:00")[0] == 303
    assert plan(coordinator, mark.person.user_id, monday, "08:00", "12:00", queue="professional")[0] == 303

    for person, own, other in ((sanne, "19:00\u201323:00", "08:00\u201312:00"),
                               (mark, "08:00\u201312:00", "19:00\u201323:00")):
        page = person.client.get("/dashboard/mijn-diensten")
        assert page.status_code == 200
        text = text_of(page.text)
        assert own in text and other not in text, text
        assert 'href="/dashboard/mijn-diensten"' in page.text  # in the menu
        assert 'href="/dashboard/rooster"' not in page.text  # the week view is not theirs
        # The week view and every change: coordinators only.
        assert person.client.get("/dashboard/rooster").status_code == 403
        assert plan(person, person.person.user_id, monday, "13:00", "14:00")[0] == 403
        shift_id = shifts(services)[0].id
        assert person.post(f"/dashboard/rooster/{shift_id}/swap", {"user_id": person.person.user_id}).status_code == 403
        assert person.post(f"/dashboard/rooster/{shift_id}/delete").status_code == 403
    assert len(shifts(services)) == 2
    # The coordinator's own page works too (nothing planned for them).
    mine = coordinator.client.get("/dashboard/mijn-diensten")
    assert mine.status_code == 200 and "Je staat nog niet op het rooster" in text_of(mine.text)


def test_a_coordinator_plans_weekly_swaps_and_deletes(app: FastAPI, services: Services) -> None:
    coordinator = staff(app, services, Role.coordinator)
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    lisa = staff(app, services, Role.volunteer, display_name="Lisa")
    monday = next_monday()
    status, location = plan(coordinator, sanne.person.user_id, monday, "19:00", "23:00", weeks=3)
    assert status == 303 and location == f"/dashboard/rooster?week={monday.isoformat()}&melding=gepland"
    planned = shifts(services)
    assert len(planned) == 3 and len({s.series_id for s in planned}) == 1
    page = coordinator.client.get(location)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "De dienst staat op het rooster." in text
    assert f"maandag {monday.day}" in text and "19:00\u201323:00 Sanne (vrijwilligers, wekelijks)" in text

    # Ruil: the first week to Lisa, the weeks after stay Sanne's.
    first = planned[0].id
    swapped = coordinator.post(f"/dashboard/rooster/{first}/swap",
                               {"user_id": lisa.person.user_id, "week": monday.isoformat()})
    assert swapped.status_code == 303 and swapped.headers["location"].endswith("melding=geruild")
    assert "19:00\u201323:00 Lisa" in text_of(coordinator.client.get(swapped.headers["location"]).text)
    assert [s.user_id for s in shifts(services)] == [lisa.person.user_id, sanne.person.user_id, sanne.person.user_id]
    # Verwijder the second week "and the weeks after it".
    deleted = coordinator.post(f"/dashboard/rooster/{planned[1].id}/delete", {"following": "ja"})
    assert deleted.status_code == 303
    assert [s.id for s in shifts(services)] == [first]
    with services.factory() as session:
        actions = list(session.scalars(select(AuditLog.action).where(AuditLog.action.like("roster_%"))
                                       .order_by(AuditLog.id)))
        assert actions == ["roster_planned", "roster_swapped", "roster_deleted"]
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.user_id == coordinator.person.user_id, AuditLog.action.like("roster_%"))) == 3


def test_refusals_are_said_in_dutch(app: FastAPI, services: Services) -> None:
    coordinator = staff(app, services, Role.coordinator)
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    monday = next_monday()
    assert plan(coordinator, sanne.person.user_id, monday, "19:00", "23:00")[0] == 303
    status, text = plan(coordinator, sanne.person.user_id, monday, "22:00", "23:30", queue="volunteer")
    assert status == 409 and "Sanne staat dan al ingepland" in text, text
    status, text = plan(coordinator, sanne.person.user_id, monday, "08:00", "12:00", queue="professional")
    assert status == 403 and "Sanne kan geen dienst draaien voor de wachtrij van hulpverleners" in text
    status, text = plan(coordinator, sanne.person.user_id, monday, "13:00", "09:00")
    assert status == 400 and "Het einde van de dienst moet na het begin liggen" in text
    status, text = plan(coordinator, sanne.person.user_id, monday, "9 uur", "12:00")
    assert status == 400 and "uu:mm" in text
    gone = coordinator.post("/dashboard/rooster/bestaat-niet/delete")
    assert gone.status_code == 404 and "staat niet (meer) op het rooster" in text_of(gone.text)
    # A night shift into the next day is fine.
    night = coordinator.post("/dashboard/rooster", {"user_id": sanne.person.user_id, "queue": "volunteer",
                                                    "day": monday.isoformat(), "start": "23:00", "end": "07:00",
                                                    "next_day": "ja"})
    assert night.status_code == 303
    assert len(shifts(services)) == 2


def test_the_week_shows_uncovered_hours_next_to_the_busy_hours(app: FastAPI, services: Services) -> None:
    coordinator = staff(app, services, Role.coordinator)
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    monday = next_monday()
    # The statistics: 7 contacts at 03:00 and 2 at 04:00 on the Monday a week ago.
    last_monday = monday - timedelta(days=14) if monday - timedelta(days=7) >= datetime.now(ZONE).date() \
        else monday - timedelta(days=7)
    with db.transaction(services.factory) as session:
        for hour, count in ((3, 7), (4, 2)):
            moment = datetime(last_monday.year, last_monday.month, last_monday.day, hour, tzinfo=ZONE)
            for _ in range(count):
                session.add(ContactFact(hour=moment.astimezone(UTC), channel=Channel.web))
    assert plan(coordinator, sanne.person.user_id, monday, "09:00", "17:00")[0] == 303
    page = coordinator.client.get(f"/dashboard/rooster?week={monday.isoformat()}")
    assert page.status_code == 200
    gaps = re.search(r'<table class="roster-gaps" id="gap-list-volunteer">.*?</table>', page.text, re.DOTALL)
    assert gaps is not None
    rows = text_of(gaps.group(0))
    assert f"maandag {monday.day}" in rows
    # 7 + 2 contacts in those hours; the 2 is shown as "<5" in the grid, so the total is the range
    # the row allows (7 + 1..4), as on the statistics page: an exact 9 would give the 2 away.
    assert "00:00\u201309:00, 17:00\u201324:00 8\u201311" in rows, rows
    grid = re.search(r'<table class="roster-grid" id="grid-volunteer">.*?</table>', page.text, re.DOTALL)
    assert grid is not None
    first_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", grid.group(0), re.DOTALL)
    assert first_row is not None
    cells = re.findall(r'<td class="(gap|covered)">(.*?)</td>', first_row.group(1), re.DOTALL)
    assert [c for c, _ in cells] == ["gap"] * 9 + ["covered"] * 8 + ["gap"] * 7
    assert text_of(cells[3][1]).startswith("7") and text_of(cells[4][1]).startswith("<5")
    # The professionals have no roster at all: the page says their opening hours count.
    assert "Voor deze wachtrij is nog niets ingepland" in text_of(page.text)
    # Reused, not recounted: the same figures as the statistics' table.
    from stats import report

    with services.factory() as session:
        today = datetime.now(ZONE).date()
        table = report.hour_of_week(session, report.Filters.between(today - timedelta(days=28),
                                                                   today - timedelta(days=1), ZONE), ZONE)
    assert table.rows[0][1 + 3] == 7 and table.rows[0][1 + 4] == 2
    assert QueueName.volunteer.value in page.text
