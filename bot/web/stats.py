"""The coordinators' statistics page: charts (server-side SVG), the tables under them, CSV export.

GET /dashboard/stats?period=7|30|90|custom&start=YYYY-MM-DD&end=YYYY-MM-DD&channel=&queue=
GET /dashboard/stats/export/{key}.csv (same query), as an attachment.
Coordinators only. Everything comes from stats.report (anonymous facts; small cells hidden).
Nothing here logs a number or a filter value.
"""

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from bot.labels import CHANNEL_LABELS, QUEUE_LABELS
from bot.rules import QueueName
from bot.storage.models import Channel, utcnow
from bot.web.auth import Coordinator, Person
from stats import charts, report
from stats.report import Filters, Table

PERIODS = {"7": "Laatste 7 dagen", "30": "Laatste 30 dagen", "90": "Laatste 90 dagen", "custom": "Zelf kiezen"}
DEFAULT_PERIOD = "30"
# Dates a custom period may use (issue 12: 0001-01-01 was a 500).
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)

DESCRIPTIONS: dict[str, str] = {
    "contacts_per_day": "Staafdiagram: het aantal contacten per dag, gestapeld per kanaal.",
    "hour_of_week": "Heatmap: contacten per dag van de week (rijen) en uur (kolommen); donkerder is meer.",
    "on_shift": "Heatmap: hoeveel mensen gemiddeld in dienst waren, per dag van de week en uur.",
    "themes_per_week": "Staafdiagram: thema's per week, gestapeld per thema.",
    "risk": "Staafdiagram: contacten per risiconiveau.",
    "route": "Staafdiagram: contacten per route.",
    "bot_vs_person": "Staafdiagram: contacten die alleen de bot had en contacten die naar een mens gingen.",
    "waiting_per_queue_week": ("Twee staafdiagrammen, elk met een eigen schaal: boven de mediaan van de "
                               "wachttijd in minuten, onder de p90 (9 van de 10 wachtten korter), "
                               "per week, een staaf per wachtrij."),
    "after_hours": "Staafdiagram: contacten binnen en buiten openingstijden.",
    "abandoned": "Staafdiagram: per wachtrij hoeveel ouders weggingen voordat iemand het gesprek oppakte.",
    "outcomes": "Staafdiagram: gesprekken per uitkomst.",
    "referrals_per_service": "Staafdiagram: doorverwijzingen per dienst uit het aanbod.",
    "corrections_per_theme": "Staafdiagram: per thema hoe vaak een medewerker de bot corrigeerde.",
}
SMALL_NOTE = f"Aantallen onder de {report.SMALL} staan er als \u201c<{report.SMALL}\u201d."
TOTALS_NOTE = (
    f"Totaal: staat in een rij een aantal onder de {report.SMALL} (\u201c<{report.SMALL}\u201d), dan "
    f"staat het totaal er als bereik, bijvoorbeeld \u201c77\u201380\u201d: de zichtbare aantallen "
    f"opgeteld, plus voor elk verborgen aantal 1 tot {report.SMALL - 1}. Een precies totaal zou "
    f"min de zichtbare aantallen het verborgen aantal verraden; het bereik zegt niets meer dan de "
    f"rij zelf. Zonder verborgen aantallen is het totaal precies.")
#: Footnotes under a section's table.
NOTES: dict[str, str] = {
    "contacts_per_day": TOTALS_NOTE,
    "themes_per_week": TOTALS_NOTE + " Een contact kan meer thema's hebben: tel de thema's niet op "
                                     "tot een aantal contacten.",
    "waiting_per_queue_week": ("Mediaan: de helft wachtte korter. P90: 9 van de 10 wachtten korter. "
                               f"Alleen berekend over ten minste {report.SMALL} opgepakte gesprekken."),
}


class Choice:
    """The page's filters as chosen (strings, for the form) and as Filters."""

    def __init__(self, request: Request, zone: ZoneInfo, now: datetime) -> None:
        params = request.query_params
        self.period = params.get("period", DEFAULT_PERIOD)
        if self.period not in PERIODS:
            self.period = DEFAULT_PERIOD
        self.channel = params.get("channel", "") if params.get("channel", "") in Channel.__members__ else ""
        self.queue = params.get("queue", "") if params.get("queue", "") in QueueName.__members__ else ""
        self.start = params.get("start", "")[:10]
        self.end = params.get("end", "")[:10]
        self.problem: str | None = None
        self.absurd = False  # a date no statistics can be about: answered 400
        extra: dict[str, Any] = {"channel": Channel(self.channel) if self.channel else None,
                                 "queue": QueueName(self.queue) if self.queue else None}
        today = now.astimezone(zone).date()
        if self.period == "custom":
            first: date | None
            last: date | None
            try:
                first, last = date.fromisoformat(self.start), date.fromisoformat(self.end)
            except ValueError:
                first = last = None
            if first is None or last is None:
                self.problem = "Vul een begin- en einddatum in (dag, maand, jaar)."
            elif not (EARLIEST <= first <= LATEST and EARLIEST <= last <= LATEST):
                # 0001-01-01 or 9999-12-31 cannot even be turned into UTC: a clear 400.
                self.problem = (f"Kies datums tussen {EARLIEST.isoformat()} en "
                                f"{LATEST.isoformat()}.")
                self.absurd = True
            elif last < first:
                self.problem = "De einddatum ligt voor de begindatum."
            elif (last - first).days >= report.MAX_DAYS:
                self.problem = f"Kies een periode van hoogstens {report.MAX_DAYS} dagen."
            if self.problem or first is None or last is None:  # no date is a problem too
                self.filters = Filters.last_days(int(DEFAULT_PERIOD), now, zone, **extra)
            else:
                self.filters = Filters.between(first, last, zone, **extra)
        else:
            self.filters = Filters.last_days(int(self.period), now, zone, **extra)
        if not self.start:
            self.start = (today - timedelta(days=int(DEFAULT_PERIOD) - 1)).isoformat()
        if not self.end:
            self.end = today.isoformat()

    def query(self) -> str:
        values = {"period": self.period}
        if self.period == "custom":
            values.update(start=self.start, end=self.end)
        if self.channel:
            values["channel"] = self.channel
        if self.queue:
            values["queue"] = self.queue
        return urlencode(values)


def _column(table: Table, index: int) -> list[object]:
    return [row[index] for row in table.rows]


def build_charts(tables: dict[str, Table]) -> dict[str, str]:
    """An SVG per table that has a chart (verdicts and confusion are tables only)."""
    out: dict[str, str] = {}

    def desc(key: str) -> str:
        return f"{DESCRIPTIONS[key]} {SMALL_NOTE} De getallen staan in de tabel onder de grafiek."

    t = tables["contacts_per_day"]
    days = [str(row[0]) for row in t.rows]
    labels = [f"{d[8:10]}-{d[5:7]}" for d in days]
    out[t.key] = charts.stacked_bars(t.title, labels,
                                     [(name, _column(t, i + 1)) for i, name in enumerate(t.columns[1:-1])],
                                     desc(t.key), every=max(1, len(days) // 12))
    for key in ("hour_of_week", "on_shift"):
        t = tables[key]
        out[key] = charts.heatmap(t.title, [str(r[0])[:2] for r in t.rows], t.columns[1:],
                                  [r[1:] for r in t.rows], desc(key))
    t = tables["themes_per_week"]
    weeks = t.columns[1:-1]
    out[t.key] = charts.stacked_bars(t.title, [w.split(" (")[0] for w in weeks],
                                     [(str(row[0]), row[1:-1]) for row in t.rows], desc(t.key))
    for key in ("risk", "route", "bot_vs_person", "after_hours", "outcomes", "referrals_per_service"):
        t = tables[key]
        out[key] = charts.hbars(t.title, [(str(row[0]), row[1]) for row in t.rows], desc(key))
    t = tables["waiting_per_queue_week"]
    queues = list(dict.fromkeys(str(row[0]) for row in t.rows))
    weeks = list(dict.fromkeys(str(row[1]) for row in t.rows))
    medians: list[tuple[str, list[object]]] = []
    p90s: list[tuple[str, list[object]]] = []
    for queue in queues:
        rows = {str(row[1]): row for row in t.rows if row[0] == queue}
        medians.append((queue, [rows[w][3] if w in rows else None for w in weeks]))
        p90s.append((queue, [rows[w][4] if w in rows else None for w in weeks]))
    # Median (minutes) and p90 (often hours) on one axis made the medians invisible: two panels.
    out[t.key] = charts.panels(t.title, [w.split(" (")[0] for w in weeks], [
        ("median", "Mediaan van de wachttijd (minuten)", medians),
        ("p90", "P90 van de wachttijd (minuten): 9 van de 10 wachtten korter", p90s),
    ], desc(t.key), unit=" min")
    t = tables["abandoned"]
    out[t.key] = charts.hbars(t.title, [(str(row[0]), row[1]) for row in t.rows], desc(t.key))
    t = tables["corrections_per_theme"]
    out[t.key] = charts.hbars(t.title, [(str(row[0]), row[2]) for row in t.rows], desc(t.key))
    return out


def csv_name(key: str, filters: Filters, zone: ZoneInfo) -> str:
    first = filters.start.astimezone(zone).date().isoformat()
    last = (filters.end - timedelta(seconds=1)).astimezone(zone).date().isoformat()
    return f"statistiek_{key}_{first}_{last}.csv"


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    templates.env.filters.setdefault("stat_cell", charts.label)

    def context(request: Request) -> tuple[Any, ZoneInfo, datetime]:
        services = request.app.state.services
        return services, ZoneInfo(services.settings.timezone), utcnow()

    @router.get("/dashboard/stats", response_class=HTMLResponse)
    def stats_page(request: Request, person: Coordinator) -> Response:
        services, zone, now = context(request)
        choice = Choice(request, zone, now)
        with services.factory() as session:
            tables = report.compute(session, choice.filters, zone=zone, catalogue=services.catalogue, now=now)
        svgs = {key: Markup(svg) for key, svg in build_charts(tables).items()}
        page = _render(templates, request, person, {
            "tables": tables, "charts": svgs, "choice": choice, "periods": PERIODS,
            "channels": CHANNEL_LABELS, "queues": QUEUE_LABELS, "small": report.SMALL, "notes": NOTES,
            "query": choice.query(),
            "channel_label": CHANNEL_LABELS[Channel(choice.channel)] if choice.channel else "",
            "queue_label": QUEUE_LABELS[QueueName(choice.queue)] if choice.queue else "",
            "shown_from": choice.filters.start.astimezone(zone).date(),
            "shown_to": (choice.filters.end - timedelta(seconds=1)).astimezone(zone).date(),
        })
        if choice.absurd:
            page.status_code = 400
        return page

    @router.get("/dashboard/stats/export/{key}.csv")
    def export(request: Request, person: Coordinator, key: str) -> Response:
        if key not in report.TITLES:
            return Response("Deze tabel bestaat niet.", status_code=404, media_type="text/plain; charset=utf-8")
        services, zone, now = context(request)
        choice = Choice(request, zone, now)
        if choice.absurd:
            return Response(choice.problem or "", status_code=400, media_type="text/plain; charset=utf-8")
        with services.factory() as session:
            tables = report.compute(session, choice.filters, zone=zone, catalogue=services.catalogue, now=now)
        body = "\ufeff" + report.to_csv(tables[key])  # the BOM lets spreadsheet programs read UTF-8
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{csv_name(key, choice.filters, zone)}"',
            "Cache-Control": "no-store",
        })

    return router


def _render(templates: Jinja2Templates, request: Request, person: Person, context: dict[str, Any]) -> Response:
    full = {"person": person, "csrf_token": person.csrf_token, **context}
    response = templates.TemplateResponse(request, "dashboard/stats.html", full)
    response.headers["Cache-Control"] = "no-store"
    return response
