"""stats.report: the statistics from the anonymous facts, on SQLite and PostgreSQL, small cells hidden."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.storage import db
from bot.storage.models import (
    Channel,
    ContactFact,
    ContactTheme,
    QueueName,
    Role,
    Shift,
    User,
    Verdict,
)
from bot.triage.types import Risk, Route
from bot.web.stats import build_charts
from stats import charts
from stats.report import Filters, Range, Table, compute, row_total, suppress, to_csv

ZONE = ZoneInfo("Europe/Amsterdam")
# A Wednesday in winter (Amsterdam is UTC+1).
NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(any_database_url: str) -> Iterator[Engine]:
    db.upgrade(any_database_url)
    made = db.make_engine(any_database_url)
    yield made
    made.dispose()


def add(session: Session, count: int, hour: datetime, themes: tuple[str, ...] = ("money",), **fields: object) -> None:
    for _ in range(count):
        values: dict[str, object] = {"channel": Channel.web, "risk": Risk.none, "route": Route.bot,
                                     "catalogue_given": [], **fields}
        fact = ContactFact(hour=hour, themes=list(themes), **values)
        session.add(fact)
        session.flush()
        for theme in themes:
            session.add(ContactTheme(fact_id=fact.id, theme=theme, hour=hour))


def rows_by_label(table: Table) -> dict[str, list[object]]:
    return {str(row[0]): row[1:] for row in table.rows}


def test_suppress_and_csv() -> None:
    assert [suppress(n) for n in (0, 1, 4, 5, 12)] == [0, "<5", "<5", 5, 12]
    table = Table("t", "T", ["Naam", "Aantal", "Mediaan"], [["a", 3, 2.5], ["b", 7, None], ["c", 0, 1.25]])
    parsed = list(csv.reader(io.StringIO(to_csv(table))))
    assert parsed == [["Naam", "Aantal", "Mediaan"], ["a", "", "2.5"], ["b", "7", ""], ["c", "0", "1.2"]]


def test_counts_per_day_hour_of_week_and_shares(engine: Engine) -> None:
    monday_evening = datetime(2026, 1, 12, 19, tzinfo=UTC)  # 20:00 in Amsterdam
    sunday_late = datetime(2026, 1, 11, 23, tzinfo=UTC)  # Monday 00:00 in Amsterdam
    with Session(engine) as session, session.begin():
        add(session, 6, monday_evening, channel=Channel.whatsapp, risk=Risk.concern)
        add(session, 7, sunday_late, channel=Channel.sms, route=Route.volunteer, handed_over=True,
            queue=QueueName.volunteer, after_hours=True)
        add(session, 2, monday_evening, channel=Channel.telegram, risk=Risk.high)
        add(session, 9, NOW - timedelta(days=40))  # outside the period
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)

    per_day = rows_by_label(tables["contacts_per_day"])
    assert len(per_day) == 30 and "2026-01-12" in per_day  # exactly 30 local days, today the last
    assert next(iter(per_day)) == "2025-12-16" and list(per_day)[-1] == "2026-01-14"
    columns = tables["contacts_per_day"].columns
    monday = dict(zip(columns[1:], per_day["2026-01-12"]))
    # Telegram's 2 is hidden; an exact total (15) would give it away (15 - 7 - 6), so the total is
    # the range the row itself allows: 13 shown + 1..4 hidden.
    assert monday == {"webchat": 0, "Telegram": 2, "sms": 7, "WhatsApp": 6, "telefoon": 0,
                      "Totaal": Range(14, 17)}
    assert charts.label(monday["Totaal"]) == "14\u201317"
    assert sum(sum(row[1:-1]) for row in tables["contacts_per_day"].rows) == 15  # type: ignore[arg-type]

    week = rows_by_label(tables["hour_of_week"])
    assert week["maandag"][20] == 8 and week["maandag"][0] == 7 and week["zondag"][23] == 0
    assert sum(sum(v for v in row) for row in week.values()) == 15  # type: ignore[misc]

    risk = rows_by_label(tables["risk"])
    assert risk["zorg"] == [6, 40.0] and risk["geen"] == [7, 46.7]
    assert risk["hoog"] == [2, None]  # a small count has no share either
    assert rows_by_label(tables["bot_vs_person"])["een mens"] == [7, 46.7]
    assert rows_by_label(tables["after_hours"])["buiten openingstijden"] == [7, 46.7]
    assert rows_by_label(tables["route"])["vrijwilliger"][0] == 7

    only_sms = compute(Session(engine), Filters.last_days(30, NOW, ZONE, channel=Channel.sms), zone=ZONE, now=NOW)
    assert sum(row[-1] for row in only_sms["contacts_per_day"].rows) == 7  # type: ignore[misc]
    assert rows_by_label(only_sms["themes_per_week"])["geld"][-1] == 7
    volunteers = compute(Session(engine), Filters.last_days(30, NOW, ZONE, queue=QueueName.volunteer), zone=ZONE, now=NOW)
    assert rows_by_label(volunteers["risk"])["geen"][0] == 7


def test_a_theme_with_three_contacts_never_shows_three(engine: Engine) -> None:
    hour = datetime(2026, 1, 13, 9, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        add(session, 3, hour, themes=("addiction",), channel=Channel.phone, corrected=True,
            corrected_themes=["loneliness"], verdict=Verdict.no, referred_to="jellinek")
        add(session, 12, hour - timedelta(days=1), themes=("money", "housing"), verdict=Verdict.yes)
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)
    svgs = build_charts(tables)

    themes = rows_by_label(tables["themes_per_week"])
    assert 3 in themes["verslaving"]  # the number is there, for suppression to hide
    for key, table in tables.items():
        text = to_csv(table)
        for row in csv.reader(io.StringIO(text)):
            assert "3" not in row, (key, row)
        for row in table.rows:
            shown = [charts.label(v) for v in row]
            assert "3" not in shown, (key, shown)
    rows = list(csv.reader(io.StringIO(to_csv(tables["themes_per_week"]))))
    verslaving = next(r for r in rows if r[0] == "verslaving")
    assert verslaving[-1] == "" and "<5" not in verslaving
    assert next(r for r in rows if r[0] == "geld")[-1] == "12"
    for key, svg in svgs.items():
        # Every number a person reads in a chart: text nodes and tooltips. Tick labels of an axis
        # of minutes (the waiting chart's panels: 0, 1, 2, ...) are a scale, not a count.
        svg = re.sub(r'<text class="axis"[^>]*>[^<]*</text>', "", svg) if key == "waiting_per_queue_week" else svg
        for text in re.findall(r">([^<>]+)<", svg):
            value = text.rsplit(":", 1)[-1].strip()  # a label, or a tooltip "week 3, thema: value"
            assert value != "3", (key, text)
    assert "verslaving" in svgs["themes_per_week"] and "&lt;5" in svgs["themes_per_week"]
    # The three are drawn at the same size as any other small count (1 or 4 would look the same).
    corrections = rows_by_label(tables["corrections_per_theme"])
    assert corrections["verslaving"] == [3, 3, None] and corrections["geld"] == [12, 0, None]
    assert tables["confusion"].rows == [["verslaving", "eenzaamheid", 3]]
    assert charts.label(tables["confusion"].rows[0][2]) == "<5"


def test_waiting_median_and_p90_need_five_values(engine: Engine) -> None:
    monday = datetime(2026, 1, 12, 10, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        for i in range(1, 11):  # 1..10 minutes
            add(session, 1, monday, handed_over=True, queue=QueueName.volunteer, waited_seconds=60 * i)
        for i in range(1, 5):  # only four
            add(session, 1, monday, handed_over=True, queue=QueueName.professional, waited_seconds=600 * i,
                abandoned=i == 1)
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)
    waits = {(row[0], row[1]): row[2:] for row in tables["waiting_per_queue_week"].rows}
    assert waits[("vrijwilligers", "week 3 (12 jan)")] == [10, 5.5, 9.1]  # percentile_cont: 330 s, 546 s
    assert waits[("hulpverleners", "week 3 (12 jan)")] == [4, None, None]
    assert waits[("vrijwilligers", "week 2 (5 jan)")] == [0, None, None]
    parsed = list(csv.reader(io.StringIO(to_csv(tables["waiting_per_queue_week"]))))
    assert ["hulpverleners", "week 3 (12 jan)", "", "", ""] in parsed
    assert ["vrijwilligers", "week 3 (12 jan)", "10", "5.5", "9.1"] in parsed
    abandoned = rows_by_label(tables["abandoned"])
    assert abandoned["hulpverleners"] == [1, 3, None] and abandoned["vrijwilligers"] == [0, 10, None]


def test_outcomes_referrals_verdicts_and_shifts(engine: Engine) -> None:
    hour = datetime(2026, 1, 13, 18, tzinfo=UTC)  # Tuesday 19:00 local
    with Session(engine) as session, session.begin():
        add(session, 6, hour, themes=("parenting",), handed_over=True, queue=QueueName.volunteer,
            route=Route.volunteer, outcome="referred_service", referred_to="opvoedpunt", verdict=Verdict.yes)
        add(session, 5, hour, themes=("parenting",), verdict=Verdict.somewhat)
        user = User(username="sanne", display_name="Sanne", role=Role.volunteer, password_hash="x", languages=["nl"])
        session.add(user)
        session.flush()
        session.add(Shift(user_id=user.id, queue=QueueName.volunteer, started_at=hour,
                          ended_at=hour + timedelta(hours=2)))
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(7, NOW, ZONE), zone=ZONE, now=NOW)
    outcomes = rows_by_label(tables["outcomes"])
    assert outcomes["Doorverwezen naar een dienst"] == [6, 100.0]
    assert tables["referrals_per_service"].rows == [["opvoedpunt", 6]]
    verdicts = {(row[0], row[1]): row[2:] for row in tables["verdicts"].rows}
    assert verdicts[("route", "vrijwilliger")] == [6, 0, 0]
    assert verdicts[("route", "bot")] == [0, 5, 0]
    assert verdicts[("wachtrij", "vrijwilligers")] == [6, 0, 0]
    assert verdicts[("thema", "opvoeding")] == [6, 5, 0]
    on_shift = rows_by_label(tables["on_shift"])
    assert on_shift["dinsdag"][19] == 1.0 and on_shift["dinsdag"][20] == 1.0 and on_shift["dinsdag"][21] == 0.0


def test_compute_is_grouped_in_sql(engine: Engine) -> None:
    """A few thousand facts: the queries return groups, not rows (a sanity check of the speed)."""
    import time

    start = Filters.last_days(30, NOW, ZONE).start  # the period: 30 local days, today the last
    with Session(engine) as session, session.begin():
        rows = []
        themes = []
        for i in range(3000):
            fact_id = f"f{i:08d}"
            hour = start + timedelta(hours=i % (24 * 30))
            rows.append({"id": fact_id, "hour": hour, "channel": list(Channel)[i % 5], "themes": ["money"],
                         "risk": Risk.none, "route": Route.bot, "catalogue_given": [], "language": "nl",
                         "after_hours": False, "parent_messages": 1, "handed_over": i % 3 == 0,
                         "queue": QueueName.volunteer if i % 3 == 0 else None,
                         "waited_seconds": 60 + i % 600 if i % 3 == 0 else None, "abandoned": False,
                         "corrected": i % 20 == 0, "corrected_themes": ["housing"] if i % 20 == 0 else None})
            themes.append({"fact_id": fact_id, "theme": "money", "hour": hour})
        session.execute(ContactFact.__table__.insert(), rows)
        session.execute(ContactTheme.__table__.insert(), themes)
    with Session(engine) as session:
        began = time.perf_counter()
        tables = compute(session, Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)
        took = time.perf_counter() - began
    assert sum(sum(row[1:-1]) for row in tables["contacts_per_day"].rows) == 3000  # type: ignore[arg-type]
    assert took < 5, took


def test_row_totals() -> None:
    assert row_total([7, 6, 0]) == 13  # nothing hidden: exact
    assert row_total([0, 0, 0]) == 0
    assert row_total([32, 22, 12, 11, 3]) == Range(78, 81)  # a day of 80 with one small channel
    assert row_total([7, 6, 2, 0]) == Range(14, 17)  # 13 shown + one hidden 1..4
    assert row_total([7, 6, 1, 1]) == Range(15, 21)  # an exact 15 would show both are 1
    assert row_total([3, 0, 0]) == 3  # only one small cell: the total is that cell, "<5"
    assert charts.label(row_total([3, 0, 0])) == "<5"
    assert row_total([1, 1]) == Range(2, 8)
    parsed = list(csv.reader(io.StringIO(to_csv(Table("t", "T", ["d", "a", "b", "Totaal"],
                                                      [["x", 40, 2, row_total([40, 2])]])))))
    assert parsed[1] == ["x", "40", "", "41\u201344"]


def _published(values: tuple[int, ...]) -> tuple[object, ...]:
    """What a reader sees of a row: small cells as "<5", the total as row_total shows it."""
    return (*(charts.label(v) for v in values), charts.label(row_total(values)))


@pytest.mark.parametrize("cells", [2, 3, 4])
def test_a_total_never_narrows_a_hidden_cell(cells: int) -> None:
    """Every row of `cells` counts 0..12: among all rows that look the same on the page, each
    hidden ("<5") cell still takes every value 1..4. So a reader who knows the rule, the threshold
    and every other cell learns nothing from the total (the old rule showed [7, 6, 1, 1] as 15:
    both hidden cells had to be 1). And a row total of at least 5 is always shown."""
    import itertools

    seen: dict[tuple[object, ...], list[tuple[int, ...]]] = {}
    for values in itertools.product(range(13), repeat=cells):
        seen.setdefault(_published(values), []).append(values)
        total = row_total(values)
        if sum(values) >= 5:
            assert total is not None and charts.label(total) not in ("", "\u2013", "<5"), values
            if isinstance(total, Range):
                assert total.low <= sum(values) <= total.high and total.high - total.low <= 3 * cells
            else:
                assert total == sum(values)
    for shown, rows in seen.items():
        for i, cell in enumerate(shown[:-1]):
            if cell == "<5":
                assert {row[i] for row in rows} == {1, 2, 3, 4}, (shown, rows)


def test_the_old_rule_was_less_safe_and_hid_big_totals() -> None:
    """What the issue saw: a day of about 80 with one small channel had no total at all."""
    values = (40, 20, 12, 6, 3)
    assert isinstance(row_total(values), Range) and charts.label(row_total(values)) == "79\u201382"


@pytest.mark.parametrize("days", [7, 30, 90])
@pytest.mark.parametrize("now", [
    datetime(2026, 1, 14, 12, 0, tzinfo=UTC),  # midday
    datetime(2026, 1, 14, 23, 30, tzinfo=UTC),  # 00:30 local: a new local day
    datetime(2026, 1, 14, 22, 59, tzinfo=UTC),  # 23:59 local
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # the morning clocks go forward
    datetime(2026, 10, 25, 3, 0, tzinfo=UTC),  # the day clocks go back
    datetime(2026, 4, 2, 10, 0, tzinfo=UTC),  # a week after the change
])
def test_the_last_n_days_are_exactly_n_local_days(days: int, now: datetime) -> None:
    from stats.report import _days

    filters = Filters.last_days(days, now, ZONE)
    shown = _days(filters, ZONE)
    today = now.astimezone(ZONE).date()
    assert len(shown) == days and shown[-1] == today and shown[0] == today - timedelta(days=days - 1)
    start, end = filters.start.astimezone(ZONE), filters.end.astimezone(ZONE)
    assert (start.hour, start.minute) == (0, 0) and (end.hour, end.minute) == (0, 0)
    assert start.date() == shown[0] and end.date() == today + timedelta(days=1)
    assert filters.start <= now < filters.end


def test_custom_periods_are_exact_too() -> None:
    from stats.report import _days

    first = datetime(2026, 3, 1).date()
    for last_day in (1, 28, 31):
        last = datetime(2026, 3, last_day).date()
        shown = _days(Filters.between(first, last, ZONE), ZONE)
        assert shown[0] == first and shown[-1] == last and len(shown) == last_day


def test_period_edges_count_the_right_facts(engine: Engine) -> None:
    """The first local hour of the first day is in; the last hour before it is out."""
    first = Filters.last_days(7, NOW, ZONE).start  # 2026-01-08 00:00 local = 2026-01-07 23:00 UTC
    assert first == datetime(2026, 1, 7, 23, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        add(session, 5, first)
        add(session, 9, first - timedelta(hours=1))
        add(session, 6, NOW)
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(7, NOW, ZONE), zone=ZONE, now=NOW)
    per_day = rows_by_label(tables["contacts_per_day"])
    assert len(per_day) == 7 and per_day["2026-01-08"][-1] == 5 and per_day["2026-01-14"][-1] == 6
    assert sum(row[-1] for row in tables["contacts_per_day"].rows) == 11  # type: ignore[misc]



def test_people_on_shift_are_averaged_over_hours_that_have_been(engine: Engine) -> None:
    """Today's hours still to come are not in the average (30 days, NOW a Wednesday 13:00 local:
    Wednesday 20:00 has been 4 times, not 5)."""
    evening = datetime(2026, 1, 7, 19, tzinfo=UTC)  # Wednesday 20:00 local
    with Session(engine) as session, session.begin():
        for name in ("sanne", "joost"):
            user = User(username=name, display_name=name, role=Role.volunteer, password_hash="x", languages=["nl"])
            session.add(user)
            session.flush()
            session.add(Shift(user_id=user.id, queue=QueueName.volunteer, started_at=evening,
                              ended_at=evening + timedelta(hours=1)))
    with Session(engine) as session:
        tables = compute(session, Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)
    assert rows_by_label(tables["on_shift"])["woensdag"][20] == 0.5  # 2 people / 4 Wednesdays
