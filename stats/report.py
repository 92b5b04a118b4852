"""The coordinators' statistics, computed from the anonymous facts (never from transcripts).

Everything is counted in SQL (GROUP BY) over the facts of the period: per UTC hour where the
local day, week or hour of the week matters (at most 24 x days groups, folded into local time
here), per value elsewhere. Waiting-time percentiles use `percentile_cont` on PostgreSQL and a
Python fallback on SQLite (the embedded, small deployment).

Small cells: a count below SMALL is shown as "<5" (`suppress`) and exported as empty (`to_csv`);
a share, median or p90 computed from fewer than SMALL contacts is not computed at all (None).
Table cells: int = a count (suppressed when small), float = a measure (minutes, percent),
Range = a row total around hidden cells (see `row_total`), None = not shown, str = a label.

Row totals (`row_total`): a row without hidden cells has its exact total. A row with hidden cells
(each one of 1..SMALL-1) gets its total as the range those cells allow: with the shown cells
summing to S and k hidden cells, "S+k–S+k(SMALL-1)". That range is exactly what a reader can
already work out from the row, so the total gives no hidden cell away by subtraction, however
many cells are hidden and whatever their values, while a day of 80 contacts with one small
channel still reads "77–80" instead of nothing. (An exact total would need a second, large cell
hidden as well; the page's channel filter shows that cell on its own, so it would protect nothing.)

Periods: "the last n days" are n whole local calendar days, today included (`Filters.last_days`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, cast, func, or_, select
from sqlalchemy.orm import Session

from bot.intents.catalogue import Catalogue
from bot.labels import CHANNEL_LABELS, OUTCOME_LABELS, QUEUE_LABELS, RISK_LABELS, THEME_LABELS
from bot.rules import QueueName
from bot.storage.models import (
    Channel,
    ContactFact,
    ContactTheme,
    Shift,
    Verdict,
    aware,
)
from bot.triage.types import Route

SMALL = 5
MAX_DAYS = 366

ROUTE_LABELS: dict[Route, str] = {
    Route.bot: "bot",
    Route.volunteer: "vrijwilliger",
    Route.professional: "hulpverlener",
    Route.emergency: "noodhulp",
}
VERDICT_LABELS: dict[Verdict, str] = {Verdict.yes: "ja", Verdict.somewhat: "een beetje", Verdict.no: "nee"}
WEEKDAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

#: The tables, in page order, with their Dutch titles.
TITLES: dict[str, str] = {
    "contacts_per_day": "Contacten per dag, per kanaal",
    "hour_of_week": "Contacten per uur van de week",
    "on_shift": "Mensen in dienst per uur van de week (gemiddeld)",
    "themes_per_week": "Thema's per week",
    "risk": "Risico",
    "route": "Route",
    "bot_vs_person": "Door de bot beantwoord of naar een mens",
    "waiting_per_queue_week": "Wachttijd per wachtrij per week (minuten)",
    "after_hours": "Buiten openingstijden",
    "abandoned": "Ouder weg voordat iemand het gesprek oppakte",
    "outcomes": "Uitkomsten van gesprekken",
    "referrals_per_service": "Doorverwijzingen per dienst",
    "verdicts": "Oordeel van ouders: 'Heb je hier iets aan gehad?'",
    "corrections_per_theme": "Correcties van de bot per thema",
    "confusion": "Verwarring tussen thema's (uit correcties)",
}


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    channel: Channel | None = None
    queue: QueueName | None = None

    @classmethod
    def last_days(cls, days: int, now: datetime, zone: ZoneInfo | None = None, **kw: Any) -> Filters:
        """The last `days` local calendar days, today (up to `now`) included: exactly `days` days,
        from local midnight `days - 1` days ago up to tomorrow's local midnight. Without `zone`
        the days are UTC days."""
        zone = zone or ZoneInfo("UTC")
        now = aware(now) or datetime.now(UTC)
        today = now.astimezone(zone).date()
        return cls.between(today - timedelta(days=max(days, 1) - 1), today, zone, **kw)

    @classmethod
    def between(cls, first: date, last: date, zone: ZoneInfo, **kw: Any) -> Filters:
        """Local days `first` up to and including `last`."""
        start = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
        return cls(start=start, end=end, **kw)


@dataclass(frozen=True)
class Range:
    """A total known to lie between `low` and `high` (inclusive): shown as "low–high"."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.low}\u2013{self.high}"


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[object]]


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def suppress(value: int) -> str | int:
    """A count for display: below SMALL (but not 0) as "<5"."""
    if 0 < value < SMALL:
        return f"<{SMALL}"
    return value


def row_total(values: Sequence[int]) -> int | Range:
    """A row's total that gives no hidden cell away (see the module's doc string).

    No hidden cell: the exact total. k hidden cells (each 1..SMALL-1) next to shown cells summing
    to `shown`: the range shown+k .. shown+k*(SMALL-1), which is all the row already tells. One
    hidden cell and nothing else: the range is 1..SMALL-1, an ordinary small count (int)."""
    hidden = [v for v in values if 0 < v < SMALL]
    if not hidden:
        return sum(values)
    shown = sum(v for v in values if not 0 < v < SMALL)
    low, high = shown + len(hidden), shown + len(hidden) * (SMALL - 1)
    if high < SMALL:  # only small cells: the total is small too and shown as "<5"
        return sum(values)
    return Range(low, high)


def to_csv(table: Table) -> str:
    """The table as CSV (semicolon-free, comma separated). Small counts and unknown values are empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        cells: list[object] = []
        for value in row:
            if value is None:
                cells.append("")
            elif is_count(value):
                cells.append("" if 0 < value < SMALL else value)  # type: ignore[operator]
            elif isinstance(value, float):
                cells.append(f"{value:.1f}")
            elif isinstance(value, Range):
                cells.append(str(value))
            else:
                cells.append(value)
        writer.writerow(cells)
    return out.getvalue()


# Helpers ---------------------------------------------------------------------------------------

def _facts_where(filters: Filters) -> list[Any]:
    conditions: list[Any] = [ContactFact.hour >= filters.start, ContactFact.hour < filters.end]
    if filters.channel is not None:
        conditions.append(ContactFact.channel == filters.channel)
    if filters.queue is not None:
        conditions.append(ContactFact.queue == filters.queue)
    return conditions


def _themes_select(filters: Filters, *columns: Any) -> Select[Any]:
    """A select over ContactTheme in the period; joined to the facts only when filtered."""
    query = select(*columns).select_from(ContactTheme).where(
        ContactTheme.hour >= filters.start, ContactTheme.hour < filters.end)
    if filters.channel is not None or filters.queue is not None:
        query = query.join(ContactFact, ContactFact.id == ContactTheme.fact_id)
        if filters.channel is not None:
            query = query.where(ContactFact.channel == filters.channel)
        if filters.queue is not None:
            query = query.where(ContactFact.queue == filters.queue)
    return query


def _local(hour: datetime, zone: ZoneInfo) -> datetime:
    return (aware(hour) or hour).astimezone(zone)


def _week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _days(filters: Filters, zone: ZoneInfo) -> list[date]:
    first = _local(filters.start, zone).date()
    last = _local(filters.end - timedelta(seconds=1), zone).date()
    count = min((last - first).days + 1, MAX_DAYS + 1)
    return [first + timedelta(days=i) for i in range(max(count, 0))]


def day_label(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()][:2]} {day.day} {MONTHS[day.month - 1]}"


def week_label(monday: date) -> str:
    return f"week {monday.isocalendar().week} ({monday.day} {MONTHS[monday.month - 1]})"


def theme_label(theme: str | None) -> str:
    if theme is None:
        return "(geen)"
    return THEME_LABELS.get(theme, theme)


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _share(count: int, total: int) -> float | None:
    """A percentage, only for a count that is itself shown (not small)."""
    if total <= 0 or count < SMALL:
        return None
    return round(100.0 * count / total, 1)


def _shares_table(key: str, label: str, counts: dict[Any, int], labels: dict[Any, str]) -> Table:
    total = sum(counts.values())
    rows: list[list[object]] = []
    for value, name in labels.items():
        count = counts.get(value, 0)
        rows.append([name, count, _share(count, total)])
    for value, count in counts.items():  # values without a label (should not happen)
        if value not in labels:
            rows.append([str(value), count, _share(count, total)])
    return Table(key, TITLES[key], [label, "Contacten", "Aandeel (%)"], rows)


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _minutes(seconds: float | None, n: int) -> float | None:
    if seconds is None or n < SMALL:
        return None
    return round(float(seconds) / 60.0, 1)


# The tables --------------------------------------------------------------------------------------

def _per_hour(session: Session, filters: Filters) -> list[tuple[datetime, Channel, int]]:
    query = (select(ContactFact.hour, ContactFact.channel, func.count())
             .where(*_facts_where(filters)).group_by(ContactFact.hour, ContactFact.channel))
    return [(aware(h) or h, c, n) for h, c, n in session.execute(query)]


def _contacts_per_day(per_hour: Iterable[tuple[datetime, Channel, int]], days: list[date],
                      zone: ZoneInfo) -> Table:
    counts: dict[tuple[date, Channel], int] = defaultdict(int)
    for hour, channel, n in per_hour:
        counts[(_local(hour, zone).date(), channel)] += n
    channels = list(Channel)
    rows: list[list[object]] = []
    for day in days:
        values = [counts.get((day, c), 0) for c in channels]
        rows.append([day.isoformat(), *values, row_total(values)])
    return Table("contacts_per_day", TITLES["contacts_per_day"],
                 ["Dag", *[CHANNEL_LABELS[c] for c in channels], "Totaal"], rows)


def _hour_of_week(per_hour: Iterable[tuple[datetime, Channel, int]], zone: ZoneInfo) -> Table:
    grid = [[0] * 24 for _ in range(7)]
    for hour, _channel, n in per_hour:
        local = _local(hour, zone)
        grid[local.weekday()][local.hour] += n
    rows: list[list[object]] = [[WEEKDAYS[d], *grid[d]] for d in range(7)]
    return Table("hour_of_week", TITLES["hour_of_week"], ["Dag", *[f"{h:02d}" for h in range(24)]], rows)


def hour_of_week(session: Session, filters: Filters, zone: ZoneInfo) -> Table:
    """The page's "contacts per hour of the week" table on its own (the same SQL and folding):
    the roster's week view shows it next to the hours nobody is planned (bot.web.roster)."""
    return _hour_of_week(_per_hour(session, filters), zone)


def _on_shift(session: Session, filters: Filters, zone: ZoneInfo, now: datetime) -> Table:
    """The average number of people on shift in each hour of the week, over the period.

    Shifts are few (people, not contacts): they are read and spread over their hours here."""
    end = min(filters.end, now)
    query = select(Shift.user_id, Shift.queue, Shift.started_at, Shift.ended_at).where(
        Shift.started_at < end, or_(Shift.ended_at.is_(None), Shift.ended_at > filters.start))
    if filters.queue is not None:
        query = query.where(Shift.queue == filters.queue)
    people: dict[datetime, set[str]] = defaultdict(set)  # UTC hour -> users on shift then
    for user_id, _queue, started, ended in session.execute(query):
        begin = max(aware(started) or started, filters.start)
        stop = min(aware(ended) or end, end)
        hour = begin.replace(minute=0, second=0, microsecond=0)
        while hour < stop:
            people[hour].add(user_id)
            hour += timedelta(hours=1)
    # How often each hour of the week occurs in the period, to average over.
    occurs = [[0] * 24 for _ in range(7)]
    hour = filters.start.replace(minute=0, second=0, microsecond=0)
    while hour < end:  # hours still to come (the rest of today) are not averaged over
        local = _local(hour, zone)
        occurs[local.weekday()][local.hour] += 1
        hour += timedelta(hours=1)
    total = [[0] * 24 for _ in range(7)]
    for moment, users in people.items():
        local = _local(moment, zone)
        total[local.weekday()][local.hour] += len(users)
    rows: list[list[object]] = []
    for d in range(7):
        rows.append([WEEKDAYS[d], *[round(total[d][h] / occurs[d][h], 1) if occurs[d][h] else 0.0
                                    for h in range(24)]])
    return Table("on_shift", TITLES["on_shift"], ["Dag", *[f"{h:02d}" for h in range(24)]], rows)


def _themes_per_week(session: Session, filters: Filters, weeks: list[date], zone: ZoneInfo) -> Table:
    query = _themes_select(filters, ContactTheme.hour, ContactTheme.theme, func.count()).group_by(
        ContactTheme.hour, ContactTheme.theme)
    counts: dict[tuple[str, date], int] = defaultdict(int)
    for hour, theme, n in session.execute(query):
        counts[(theme, _week_of(_local(hour, zone).date()))] += n
    themes = [t for t in THEME_LABELS if any(k[0] == t for k in counts)]
    themes += sorted({k[0] for k in counts} - set(themes))
    rows: list[list[object]] = []
    for theme in themes:
        values = [counts.get((theme, w), 0) for w in weeks]
        rows.append([theme_label(theme), *values, row_total(values)])
    return Table("themes_per_week", TITLES["themes_per_week"],
                 ["Thema", *[week_label(w) for w in weeks], "Totaal"], rows)


#: The fact columns counted together in one GROUP BY (one scan of the period for the tables of
#: counts per value); their combinations are few (hundreds), however many facts there are.
CUBE = (ContactFact.risk, ContactFact.route, ContactFact.handed_over, ContactFact.after_hours,
        ContactFact.outcome, ContactFact.queue, ContactFact.abandoned, ContactFact.verdict,
        ContactFact.referred_to)
RISK, ROUTE, HANDED, AFTER, OUTCOME, QUEUE, ABANDONED, VERDICT, REFERRED = range(len(CUBE))


def _cube(session: Session, filters: Filters) -> list[tuple[Any, ...]]:
    query = select(*CUBE, func.count()).where(*_facts_where(filters)).group_by(*CUBE)
    return [tuple(row) for row in session.execute(query)]


def _sum(cube: Iterable[tuple[Any, ...]], *by: int, when: Any = None) -> dict[Any, int]:
    """Counts per value (or tuple of values) of the cube's columns `by`."""
    out: dict[Any, int] = defaultdict(int)
    for row in cube:
        if when is not None and not when(row):
            continue
        key = row[by[0]] if len(by) == 1 else tuple(row[i] for i in by)
        out[key] += row[-1]
    return dict(out)


def _waiting(session: Session, filters: Filters, weeks: list[date], zone: ZoneInfo) -> Table:
    base = [*_facts_where(filters), ContactFact.handed_over.is_(True), ContactFact.queue.is_not(None),
            ContactFact.waited_seconds.is_not(None)]
    stats: dict[tuple[QueueName, date], tuple[int, float | None, float | None]] = {}
    if session.get_bind().dialect.name == "postgresql":
        week = func.date_trunc("week", func.timezone(str(zone), ContactFact.hour))
        query = (select(ContactFact.queue, week, func.count(),
                        func.percentile_cont(0.5).within_group(ContactFact.waited_seconds),
                        func.percentile_cont(0.9).within_group(ContactFact.waited_seconds))
                 .where(*base).group_by(ContactFact.queue, week))
        for queue, monday, n, p50, p90 in session.execute(query):
            stats[(queue, monday.date())] = (n, p50, p90)
    else:
        values: dict[tuple[QueueName, date], list[int]] = defaultdict(list)
        query = select(ContactFact.queue, ContactFact.hour, ContactFact.waited_seconds).where(*base)
        for queue, hour, waited in session.execute(query.execution_options(yield_per=10_000)):
            if queue is not None and waited is not None:  # always: `base` leaves out the others
                values[(queue, _week_of(_local(hour, zone).date()))].append(waited)
        for key, found in values.items():
            stats[key] = (len(found), float(median(found)), _percentile(found, 0.9))
    rows: list[list[object]] = []
    queues = [filters.queue] if filters.queue is not None else list(QueueName)
    for queue in queues:
        for monday in weeks:
            n, p50, p90 = stats.get((queue, monday), (0, None, None))
            rows.append([QUEUE_LABELS[queue], week_label(monday), n, _minutes(p50, n), _minutes(p90, n)])
    return Table("waiting_per_queue_week", TITLES["waiting_per_queue_week"],
                 ["Wachtrij", "Week", "Opgepakt", "Mediaan (min)", "P90 (min)"], rows)


def _abandoned(cube: list[tuple[Any, ...]], filters: Filters) -> Table:
    counts = _sum(cube, QUEUE, ABANDONED, when=lambda row: row[HANDED])
    rows: list[list[object]] = []
    queues = [filters.queue] if filters.queue is not None else list(QueueName)
    for queue in queues:
        gone = sum(n for (q, a), n in counts.items() if q == queue and a)
        taken = sum(n for (q, a), n in counts.items() if q == queue and not a)
        rows.append([QUEUE_LABELS[queue], gone, taken, _share(gone, gone + taken)])
    return Table("abandoned", TITLES["abandoned"],
                 ["Wachtrij", "Ouder weg", "Opgepakt of nog bezig", "Ouder weg (%)"], rows)


def _referrals(cube: list[tuple[Any, ...]], catalogue: Catalogue | None) -> Table:
    counts = _sum(cube, REFERRED, when=lambda row: row[REFERRED] is not None)
    rows: list[list[object]] = []
    for entry_id, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        name = entry_id
        if catalogue is not None and entry_id in catalogue:
            name = catalogue.get(entry_id).name
        rows.append([name, n])
    return Table("referrals_per_service", TITLES["referrals_per_service"], ["Dienst", "Doorverwijzingen"], rows)


def _theme_cube(session: Session, filters: Filters) -> list[tuple[Any, ...]]:
    """Per theme, whether corrected, and the verdict: one join of themes and facts."""
    query = _themes_select(filters, ContactTheme.theme, ContactFact.corrected, ContactFact.verdict,
                           func.count())
    if filters.channel is None and filters.queue is None:
        query = query.join(ContactFact, ContactFact.id == ContactTheme.fact_id)
    query = query.group_by(ContactTheme.theme, ContactFact.corrected, ContactFact.verdict)
    return [(theme, bool(corrected), verdict, n) for theme, corrected, verdict, n in session.execute(query)]


def _themes_in(counts: Iterable[Any]) -> list[str]:
    found = {key[0] for key in counts}
    return [t for t in THEME_LABELS if t in found] + sorted(found - set(THEME_LABELS))


def _verdicts(cube: list[tuple[Any, ...]], theme_cube: list[tuple[Any, ...]]) -> Table:
    verdicts = list(Verdict)
    rows: list[list[object]] = []

    def add(kind: str, counts: dict[tuple[Any, Any], int], labels: dict[Any, str]) -> None:
        for value, name in labels.items():
            values = [counts.get((value, v), 0) for v in verdicts]
            if sum(values):
                rows.append([kind, name, *values])

    has_verdict = lambda row: row[VERDICT] is not None
    add("route", _sum(cube, ROUTE, VERDICT, when=has_verdict), ROUTE_LABELS)
    add("wachtrij", _sum(cube, QUEUE, VERDICT, when=has_verdict), QUEUE_LABELS)
    themes = _sum(theme_cube, 0, 2, when=lambda row: row[2] is not None)
    add("thema", themes, {t: theme_label(t) for t in _themes_in(themes)})
    return Table("verdicts", TITLES["verdicts"],
                 ["Naar", "Waarde", *[VERDICT_LABELS[v] for v in verdicts]], rows)


def _corrections(theme_cube: list[tuple[Any, ...]]) -> Table:
    counts = _sum(theme_cube, 0, 1)
    rows: list[list[object]] = []
    for theme in _themes_in(counts):
        corrected = counts.get((theme, True), 0)
        total = corrected + counts.get((theme, False), 0)
        rows.append([theme_label(theme), total, corrected, _share(corrected, total)])
    return Table("corrections_per_theme", TITLES["corrections_per_theme"],
                 ["Thema (volgens de bot)", "Contacten", "Gecorrigeerd", "Gecorrigeerd (%)"], rows)


def _confusion(session: Session, filters: Filters) -> Table:
    """Predicted x corrected theme, from the corrected contacts: a theme the bot gave that the
    person removed, against a theme the person added. Grouped in SQL by the pair of theme lists
    (as text: few distinct pairs), expanded here."""
    predicted, corrected = cast(ContactFact.themes, String), cast(ContactFact.corrected_themes, String)
    # Select the JSON columns through the grouped text: some databases cannot group JSON itself.
    query = (select(predicted, corrected, func.count())
             .where(*_facts_where(filters), ContactFact.corrected.is_(True))
             .group_by(predicted, corrected))
    pairs: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for given_text, right_text, n in session.execute(query):
        given = json.loads(given_text) if given_text else []
        right = json.loads(right_text) if right_text else []
        removed = [t for t in given if t not in right] or [None]
        added = [t for t in right if t not in given] or [None]
        for a in removed:
            for b in added:
                if a is not None or b is not None:
                    pairs[(a, b)] += n
    rows: list[list[object]] = [[theme_label(a), theme_label(b), n]
                                for (a, b), n in sorted(pairs.items(), key=lambda i: (-i[1], str(i[0])))]
    return Table("confusion", TITLES["confusion"], ["De bot zei", "De medewerker koos", "Contacten"], rows)


def compute(session: Session, filters: Filters, *, zone: ZoneInfo,
            catalogue: Catalogue | None = None, now: datetime | None = None) -> dict[str, Table]:
    """Every table of the statistics page for `filters`, keyed as TITLES."""
    now = aware(now) or datetime.now(UTC)
    days = _days(filters, zone)
    weeks = sorted({_week_of(d) for d in days})
    per_hour = _per_hour(session, filters)
    tables: dict[str, Table] = {}
    tables["contacts_per_day"] = _contacts_per_day(per_hour, days, zone)
    tables["hour_of_week"] = _hour_of_week(per_hour, zone)
    tables["on_shift"] = _on_shift(session, filters, zone, now)
    tables["themes_per_week"] = _themes_per_week(session, filters, weeks, zone)
    cube = _cube(session, filters)
    theme_cube = _theme_cube(session, filters)
    tables["risk"] = _shares_table("risk", "Risico", _sum(cube, RISK), dict(RISK_LABELS))
    tables["route"] = _shares_table("route", "Route", _sum(cube, ROUTE), dict(ROUTE_LABELS))
    handed = {bool(k): n for k, n in _sum(cube, HANDED).items()}
    tables["bot_vs_person"] = _shares_table("bot_vs_person", "Afgehandeld door", handed,
                                            {False: "alleen de bot", True: "een mens"})
    tables["waiting_per_queue_week"] = _waiting(session, filters, weeks, zone)
    after = {bool(k): n for k, n in _sum(cube, AFTER).items()}
    tables["after_hours"] = _shares_table("after_hours", "Wanneer", after,
                                          {False: "binnen openingstijden", True: "buiten openingstijden"})
    tables["abandoned"] = _abandoned(cube, filters)
    outcomes = _sum(cube, OUTCOME, when=lambda row: row[OUTCOME] is not None)
    tables["outcomes"] = _shares_table("outcomes", "Uitkomst", outcomes, dict(OUTCOME_LABELS))
    tables["referrals_per_service"] = _referrals(cube, catalogue)
    tables["verdicts"] = _verdicts(cube, theme_cube)
    tables["corrections_per_theme"] = _corrections(theme_cube)
    tables["confusion"] = _confusion(session, filters)
    return tables


__all__ = ["SMALL", "TITLES", "Filters", "Range", "Table", "compute", "hour_of_week", "row_total", "suppress",
           "to_csv"]
