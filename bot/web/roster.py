"""The roster on the dashboard (issue 15; the rules are handoff.roster).

- GET  /dashboard/rooster[?week=YYYY-MM-DD]        coordinators: the week view (a list per day),
  planning with "herhaal wekelijks", "ruil" and delete per shift, and per queue the hours of the
  week nobody is planned next to the statistics' busy hours (stats.report.hour_of_week).
- POST /dashboard/rooster                          coordinators: plan a shift (weekly for N weeks)
- POST /dashboard/rooster/{shift_id}/swap          coordinators: give it (and the series) to another person
- POST /dashboard/rooster/{shift_id}/delete        coordinators: take it (and the series) off
- GET  /dashboard/mijn-diensten                    everyone: their own upcoming shifts

Every POST carries the CSRF token (bot.web.auth). A refusal of the roster (handoff.errors) is
shown with the dashboard's status code and its Dutch reason (bot.web.dashboard).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.accounts.sessions import Person
from bot.labels import QUEUE_LABELS, ROLE_LABELS
from bot.rules import QueueName
from bot.storage.models import utcnow
from bot.web.auth import Coordinator, CoordinatorCsrf, CurrentPerson
from bot.web.dashboard import (
    install_template_helpers,
    refusal_status,
    refusal_text,
    render_page,
)
from handoff.errors import DeskError
from handoff.roster import MAX_WEEKS, Planned, Roster, Week
from stats import report

logger = logging.getLogger(__name__)

#: How far back the busy hours look (the statistics' hour-of-week table over these days).
BUSY_DAYS = 28
WEEKDAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

NOTICES = {
    "gepland": "De dienst staat op het rooster.",
    "geruild": "De dienst is geruild.",
    "verwijderd": "De dienst is van het rooster gehaald.",
}


class FormProblem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _roster(request: Request) -> Roster:
    roster: Roster = request.app.state.services.desk.roster
    return roster


def _zone(request: Request) -> ZoneInfo:
    zone: ZoneInfo = request.app.state.services.desk.zone
    return zone


def day_label(day: date) -> str:
    """"maandag 7 dec"."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"


def hour_ranges(hours: list[int]) -> list[str]:
    """[0..8, 17..23] -> ["00:00–09:00", "17:00–24:00"]."""
    ranges: list[str] = []
    start = previous = None
    for hour in [*hours, None]:
        if hour is not None and previous is not None and hour == previous + 1:
            previous = hour
            continue
        if start is not None and previous is not None:
            ranges.append(f"{start:02d}:00\u2013{previous + 1:02d}:00")
        start = previous = hour
    return ranges


@dataclass(frozen=True)
class ShiftRow:
    id: str
    time: str  # "09:00–13:00" (or "22:00–02:00 (tot di)")
    name: str
    queue: str
    series: bool
    professional: bool  # a professionals' shift: only professionals and coordinators may take it
    active: bool  # False: the person was deactivated; not expected, so swap or delete it


@dataclass(frozen=True)
class GapRow:
    day: str
    ranges: list[str]
    busy: str  # contacts in those hours, over the last BUSY_DAYS days (small counts hidden)


@dataclass(frozen=True)
class GridRow:
    day: str
    cells: list[tuple[bool, str]]  # per hour: (nobody planned, contacts then)


def _time_of(planned: Planned, zone: ZoneInfo) -> str:
    """"09:00–13:00"; "19:00–24:00" to midnight; "22:00–02:00 (tot di)" into the next day."""
    start, end = planned.starts_at.astimezone(zone), planned.ends_at.astimezone(zone)
    if end.date() == start.date() + timedelta(days=1) and end.time() == time(0):
        return f"{start:%H:%M}\u201324:00"
    text = f"{start:%H:%M}\u2013{end:%H:%M}"
    if end.date() != start.date():
        text += f" (tot {WEEKDAYS[end.weekday()][:2]})"
    return text


def _shown(value: int) -> str:
    shown = report.suppress(value)
    return str(shown)


def _total(values: list[int]) -> str:
    """The contacts over a gap's hours by the statistics' own row rule (stats.report.row_total):
    with a "<5" hour among them, a range, so the total never gives that hour away."""
    total = report.row_total(values)
    return _shown(total) if isinstance(total, int) else str(total)


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    install_template_helpers(templates)

    def page(request: Request, person: Person, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        return render_page(templates, request, person, name, context, NOTICES, status_code)

    def refusal(request: Request, person: Person, status: int, message: str) -> Response:
        return page(request, person, "dashboard/error.html",
                    {"status": status, "message": message, "back": "/dashboard/rooster"},
                    status_code=status)

    def act(request: Request, person: Person, action: Callable[[], str]) -> Response:
        """Run a change; on success to the URL it returns (303), else the refusal in Dutch."""
        try:
            then = action()
        except DeskError as error:
            status = refusal_status(error)
            logger.info("roster: refused (%s): %s", status, error.reason)
            return refusal(request, person, status, refusal_text(error))
        except FormProblem as problem:
            return refusal(request, person, 400, problem.message)
        return RedirectResponse(then, status_code=303)

    def week_url(monday: date | None, notice: str) -> str:
        week = f"week={quote(monday.isoformat())}&" if monday is not None else ""
        return f"/dashboard/rooster?{week}melding={notice}"

    # The week view ---------------------------------------------------------------------------

    @router.get("/dashboard/rooster", response_class=HTMLResponse)
    def week_page(request: Request, person: Coordinator) -> Response:
        """The week view: shifts per day, planning, swaps, and the hours nobody is planned."""
        zone = _zone(request)
        today = utcnow().astimezone(zone).date()
        try:
            chosen = date.fromisoformat(request.query_params.get("week", "")) if request.query_params.get("week") \
                else today
        except ValueError:
            chosen = today
        try:
            week = _roster(request).week(person, chosen)
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        busy = _busy(request, zone, today)
        return page(request, person, "dashboard/roster.html", _week_context(week, busy, zone, today))

    @router.post("/dashboard/rooster")
    def plan(request: Request, person: CoordinatorCsrf,
             user_id: Annotated[str, Form()] = "", queue: Annotated[str, Form()] = "",
             day: Annotated[str, Form()] = "", start: Annotated[str, Form()] = "",
             end: Annotated[str, Form()] = "", next_day: Annotated[str, Form()] = "",
             weeks: Annotated[str, Form()] = "1") -> Response:
        zone = _zone(request)

        def run() -> str:
            try:
                on = date.fromisoformat(day)
            except ValueError:
                raise FormProblem("Kies een datum.") from None
            begin, finish = _clock(start), _clock(end)
            starts_at = datetime.combine(on, begin, tzinfo=zone)
            end_day = on + timedelta(days=1) if next_day or end.strip() == "24:00" else on
            ends_at = datetime.combine(end_day, finish, tzinfo=zone)
            try:
                count = int(weeks or "1")
            except ValueError:
                raise FormProblem(f"Vul bij 'herhaal wekelijks' een aantal weken in (1 tot {MAX_WEEKS}).") from None
            try:
                which = QueueName(queue)
            except ValueError:
                raise FormProblem("Kies een wachtrij.") from None
            _roster(request).plan(person, user_id, which, starts_at, ends_at, weeks=count)
            return week_url(on - timedelta(days=on.weekday()), "gepland")

        return act(request, person, run)

    @router.post("/dashboard/rooster/{shift_id}/swap")
    def swap(request: Request, person: CoordinatorCsrf, shift_id: str,
             user_id: Annotated[str, Form()] = "", following: Annotated[str, Form()] = "",
             week: Annotated[str, Form()] = "") -> Response:
        def run() -> str:
            _roster(request).swap(person, shift_id, user_id, following=bool(following))
            return week_url(_monday(week), "geruild")

        return act(request, person, run)

    @router.post("/dashboard/rooster/{shift_id}/delete")
    def delete(request: Request, person: CoordinatorCsrf, shift_id: str,
               following: Annotated[str, Form()] = "", week: Annotated[str, Form()] = "") -> Response:
        def run() -> str:
            _roster(request).delete(person, shift_id, following=bool(following))
            return week_url(_monday(week), "verwijderd")

        return act(request, person, run)

    # Everyone: their own shifts -------------------------------------------------------------------

    @router.get("/dashboard/mijn-diensten", response_class=HTMLResponse)
    def my_shifts(request: Request, person: CurrentPerson) -> Response:
        """The person's own upcoming shifts."""
        zone = _zone(request)
        rows = []
        for planned in _roster(request).upcoming(person.user_id):
            day = planned.starts_at.astimezone(zone).date()
            rows.append({"day": day_label(day), "time": _time_of(planned, zone),
                         "queue": QUEUE_LABELS.get(planned.queue.value, planned.queue.value)})
        return page(request, person, "dashboard/my_shifts.html", {"shifts": rows})

    return router


def _monday(value: str) -> date | None:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day - timedelta(days=day.weekday())


def _clock(value: str) -> time:
    value = value.strip()
    if value == "24:00":
        return time(0)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise FormProblem("Vul de tijden in als uu:mm, bijvoorbeeld 19:00.") from None


def _busy(request: Request, zone: ZoneInfo, today: date) -> list[list[int]]:
    """Contacts per weekday (0 = Monday) and local hour over the last BUSY_DAYS days: the
    statistics' own table (stats.report.hour_of_week), not counted again here."""
    filters = report.Filters.between(today - timedelta(days=BUSY_DAYS), today - timedelta(days=1), zone)
    with request.app.state.services.desk.factory() as session:
        table = report.hour_of_week(session, filters, zone)
    grid = [[0] * 24 for _ in range(7)]
    for index, row in enumerate(table.rows[:7]):
        grid[index] = [int(v) if isinstance(v, int) else 0 for v in row[1:25]]
    return grid


def _week_context(week: Week, busy: list[list[int]], zone: ZoneInfo, today: date) -> dict[str, Any]:
    days = []
    for day in week.days:
        shifts = [ShiftRow(id=p.id, time=_time_of(p, zone), name=p.display_name,
                           queue=QUEUE_LABELS.get(p.queue.value, p.queue.value), series=p.series_id is not None,
                           professional=p.queue is QueueName.professional, active=p.active)
                  for p in week.shifts.get(day, [])]
        days.append({"label": day_label(day), "iso": day.isoformat(), "shifts": shifts,
                     "past": day < today})
    queues = []
    for queue in (QueueName.volunteer, QueueName.professional):
        gaps, grid = [], []
        for day in week.days:
            hours = week.uncovered[queue][day]
            weekday = busy[day.weekday()]
            if hours and day >= today:  # the hours still to come: past days are no gap to fill
                gaps.append(GapRow(day=day_label(day), ranges=hour_ranges(hours),
                                   busy=_total([weekday[h] for h in hours])))
            grid.append(GridRow(day=day_label(day),
                                cells=[(h in hours, _shown(weekday[h])) for h in range(24)]))
        queues.append({"key": queue.value, "label": QUEUE_LABELS.get(queue.value, queue.value),
                       "has_roster": week.has_roster[queue], "gaps": gaps, "grid": grid})
    people = [{"id": p.id, "name": p.display_name, "role": ROLE_LABELS.get(p.role.value, p.role.value),
               "professional": p.role.value != "volunteer"} for p in week.people]
    previous, following = week.monday - timedelta(days=7), week.monday + timedelta(days=7)
    return {"week": week, "week_label": f"{day_label(week.days[0])} \u2013 {day_label(week.days[-1])}",
            "monday": week.monday.isoformat(), "previous": previous.isoformat(), "next": following.isoformat(),
            "days": days, "queues": queues, "people": people, "hours": [f"{h:02d}" for h in range(24)],
            "busy_days": BUSY_DAYS, "max_weeks": MAX_WEEKS,
            "default_day": max(today, week.monday).isoformat()}
