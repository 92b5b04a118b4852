"""A realistic month of anonymous statistics for a demo (`oudertelefoon demo-data`) and the bench.

Everything here is made up: contact facts (one per contact, kept to the hour) with their theme
rows, a few corrections with invented, masked parent sentences, and past shifts of the demo users
when they exist. No conversation, message, pseudonym or address is created.

The rhythm follows what a parents' line sees: more contacts in the evening and at night, a busier
Sunday evening and Monday, a quieter Saturday; WhatsApp before the web chat, SMS, Telegram and the
phone; parenting, money and mental health as the big themes; risk mostly none or concern, a few
high and rarely acute, with routes that follow the risk; about a third handed over to a person,
with longer waits after hours.

`rows()` yields plain column tuples (shared by `generate()` and bench/stats_report, which copies a
million of them into the database); `generate()` inserts a demo month with the ORM's bulk insert.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.hours import Hours, parse_hours
from bot.intents.catalogue import Catalogue, load_catalogue
from bot.privacy import mask
from bot.rules import QueueName
from bot.storage.models import (
    Channel,
    ContactFact,
    ContactTheme,
    Correction,
    Shift,
    User,
    Verdict,
    utcnow,
)
from bot.triage.types import Risk, Route

# Column order of `rows()`: the bench copies in this order.
FACT_COLUMNS: tuple[str, ...] = (
    "id", "hour", "channel", "language", "region", "themes", "risk", "route", "after_hours",
    "parent_messages", "catalogue_given", "handed_over", "queue", "waited_seconds", "handled_seconds",
    "abandoned", "outcome", "referred_to", "corrected", "corrected_themes", "verdict",
)
THEME_COLUMNS: tuple[str, ...] = ("fact_id", "theme", "hour")

# Local hour of day 0..23: quiet mornings, busy evenings, and the night is not empty.
HOUR_WEIGHTS = (5, 4, 3, 2, 1.5, 1, 1, 1.5, 2.5, 3.5, 4, 4.5,
                4.5, 4.5, 4.5, 5, 5.5, 6, 6.5, 8, 9.5, 10, 9, 7)
# Monday .. Sunday
WEEKDAY_FACTOR = (1.15, 1.05, 1.0, 1.0, 0.9, 0.8, 1.05)
CHANNELS = (Channel.whatsapp, Channel.web, Channel.sms, Channel.telegram, Channel.phone)
CHANNEL_WEIGHTS = (40, 27, 15, 10, 8)
LANGUAGES = ("nl", "en", "tr", "ar", "pl")
LANGUAGE_WEIGHTS = (84, 7, 3, 4, 2)
REGIONS = (None, "amsterdam", "rotterdam", "utrecht_gooi", "groningen", "nijmegen")
REGION_WEIGHTS = (58, 28, 5, 4, 2.5, 2.5)
THEMES = ("parenting", "money", "mental_health", "child_health", "baby_care", "housing", "relationship",
          "childcare_work_school", "loneliness", "pregnancy", "language_and_forms", "rights_and_status",
          "domestic_violence", "family_planning", "addiction")
THEME_WEIGHTS = (16, 14, 10, 10, 9, 8, 7, 7, 5, 5, 4, 3, 3, 2, 2)
# Where the bot tends to be wrong: the theme a volunteer corrects it to.
CONFUSED = {
    "parenting": "child_health", "child_health": "baby_care", "baby_care": "child_health",
    "mental_health": "loneliness", "loneliness": "mental_health", "money": "housing",
    "housing": "money", "relationship": "domestic_violence", "domestic_violence": "relationship",
    "language_and_forms": "rights_and_status", "rights_and_status": "language_and_forms",
    "childcare_work_school": "money", "pregnancy": "family_planning", "family_planning": "pregnancy",
    "addiction": "mental_health",
}
OUTCOMES = ("helped", "referred_service", "referred_network", "no_response")
OUTCOME_WEIGHTS = (46, 26, 16, 12)
VERDICTS = (Verdict.yes, Verdict.somewhat, Verdict.no)
VERDICT_WEIGHTS = (55, 30, 15)

# Invented parent sentences per corrected theme, for the coordinators' review (masked on insert).
DEMO_SENTENCES: dict[str, tuple[str, ...]] = {
    "child_health": ("mijn zoontje heeft al drie dagen koorts en eet slecht",
                     "ze hoest 's nachts zo erg, moet ik naar de huisarts?"),
    "baby_care": ("hij drinkt maar een beetje uit de fles, is dat normaal",
                  "hoe vaak moet ik haar in bad doen"),
    "loneliness": ("sinds de verhuizing ken ik hier niemand meer",
                   "ik zit de hele dag alleen thuis met de kleine"),
    "mental_health": ("ik slaap niet meer en alles is me te veel",
                      "ik ben steeds zo somber sinds de bevalling"),
    "housing": ("de huisbaas wil dat we eruit gaan, bel me op 06-12345678",
                "we wonen met vier kinderen in een kamer"),
    "money": ("de toeslag is gestopt en nu lukt de huur niet",
              "ik heb schulden en durf de post niet open te maken"),
    "domestic_violence": ("mijn partner schreeuwt elke avond en de kinderen zijn bang",
                          "hij pakt mijn telefoon af als ik iemand wil bellen"),
    "relationship": ("we maken alleen nog ruzie over de opvoeding",
                     "mijn ex houdt zich niet aan de omgangsregeling"),
    "rights_and_status": ("mag ik met mijn verblijfsvergunning kinderbijslag krijgen",
                          "wat zijn mijn rechten als ik ga scheiden"),
    "language_and_forms": ("ik snap de brief van de gemeente niet, mail ik naar info@voorbeeld.nl?",
                           "wie kan me helpen met het formulier voor de opvang"),
    "family_planning": ("welke anticonceptie kan ik gebruiken als ik borstvoeding geef",
                        "we willen een tweede kindje maar het lukt niet"),
    "pregnancy": ("ik ben 12 weken zwanger en weet niet bij wie ik moet zijn",
                  "waar vind ik een verloskundige in 1012 AB"),
    "money_other": ("ik kan de eigen bijdrage niet betalen",),
}


@dataclass(frozen=True)
class Made:
    """What `make` inserted."""

    facts: int
    themes: int
    handed_over: int
    corrections: int
    shifts: int
    start: datetime
    end: datetime


def _catalogue_by_theme(catalogue: Catalogue | None) -> dict[str, tuple[str, ...]]:
    if catalogue is None:
        return {}
    by_theme: dict[str, list[str]] = {}
    allowed = {e.id for e in catalogue if not (e.emergency_only or e.for_children_only)}
    for entry in catalogue:
        if entry.id not in allowed:
            continue
        for theme in entry.themes:
            by_theme.setdefault(getattr(theme, "value", str(theme)), []).append(entry.id)
    for theme, best in catalogue.best.items():  # the sheet's best entries first
        key = getattr(theme, "value", str(theme))
        rest = [i for i in by_theme.get(key, []) if i not in best]
        by_theme[key] = [i for i in best if i in allowed] + rest
    return {k: tuple(v) for k, v in by_theme.items() if v}


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def rows(*, days: int, contacts_per_day: float, seed: int = 1, now: datetime | None = None,
         zone: ZoneInfo | None = None, hours: Hours | None = None, catalogue: Catalogue | None = None,
         total: int | None = None) -> Iterator[tuple[tuple[object, ...], list[str]]]:
    """(fact tuple in FACT_COLUMNS order, themes) for `days` local days ending today, about
    `contacts_per_day` a day (or exactly `total` in all). Values are plain: ids and enum values as
    str, hours as aware UTC datetimes, JSON columns as Python lists."""
    rng = random.Random(seed)
    zone = zone or ZoneInfo("Europe/Amsterdam")
    hours = hours or parse_hours("09:00-23:00")
    now = (now or utcnow()).astimezone(UTC)
    by_theme = _catalogue_by_theme(catalogue)
    all_entries = tuple(sorted({i for ids in by_theme.values() for i in ids}))
    choices, random_ = rng.choices, rng.random
    hour_cum, channel_cum = _cumulative(HOUR_WEIGHTS), _cumulative(CHANNEL_WEIGHTS)
    language_cum, region_cum = _cumulative(LANGUAGE_WEIGHTS), _cumulative(REGION_WEIGHTS)
    theme_cum, outcome_cum = _cumulative(THEME_WEIGHTS), _cumulative(OUTCOME_WEIGHTS)
    verdict_cum = _cumulative(VERDICT_WEIGHTS)
    channels = [c.value for c in CHANNELS]
    verdicts = [v.value for v in VERDICTS]
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    factors = [WEEKDAY_FACTOR[(first + timedelta(days=d)).weekday()] for d in range(days)]
    if total is not None:
        scale = total / sum(factors)
        per_day = [int(f * scale) for f in factors]
        for d in range(total - sum(per_day)):
            per_day[d % days] += 1
    else:
        per_day = [max(0, round(rng.gauss(contacts_per_day * f, (contacts_per_day * f) ** 0.5)))
                   for f in factors]
    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    # UTC hour and after-hours flag of each local (day, hour), computed once.
    for d in range(days):
        day: date = first + timedelta(days=d)
        slots = []
        for h in range(24):
            local = datetime.combine(day, time(h), tzinfo=zone)
            utc = local.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            slots.append((utc, not hours.is_open(local, zone), local))
        for _ in range(per_day[d]):
            h = choices(range(24), cum_weights=hour_cum)[0]
            hour, after_hours, local = slots[h]
            if hour > now:  # today is not over yet
                if total is None:
                    continue
                hour, after_hours, local = slots[now.astimezone(zone).hour]
            fact_id = new_id()
            r = random_()
            count = 0 if r < 0.04 else 1 if r < 0.75 else 2 if r < 0.95 else 3
            themes: list[str] = []
            while len(themes) < count:
                theme = choices(THEMES, cum_weights=theme_cum)[0]
                if theme not in themes:
                    themes.append(theme)
            heavy = "domestic_violence" in themes or "mental_health" in themes or "addiction" in themes
            r = random_()
            if heavy:
                risk = "acute" if r < 0.05 else "high" if r < 0.22 else "concern" if r < 0.7 else "none"
            else:
                risk = "acute" if r < 0.01 else "high" if r < 0.055 else "concern" if r < 0.33 else "none"
            r = random_()
            if risk == "acute":
                route, handed = "emergency", r < 0.85
            elif risk == "high":
                route, handed = "professional", r < 0.9
            elif risk == "concern":
                route = "volunteer" if r < 0.58 else "bot"
                handed = route == "volunteer" and random_() < 0.92
            else:
                route = "volunteer" if r < 0.21 else "bot"
                handed = route == "volunteer" and random_() < 0.9
            queue = ("professional" if route in ("professional", "emergency") else "volunteer") if handed else None
            given: list[str] = []
            if themes and by_theme and random_() < (0.8 if not handed else 0.25):
                pool = by_theme.get(themes[0], ())
                if pool:
                    given = list(pool[:choices((1, 2, 3), weights=(3, 4, 3))[0]])
            waited = handled = outcome = referred = verdict = None
            abandoned = corrected = False
            corrected_themes = None
            if handed:
                messages = rng.randint(3, 16)
                if random_() < (0.22 if after_hours else 0.06):
                    abandoned = True
                else:
                    if after_hours and queue == "volunteer":
                        moment = local + timedelta(minutes=rng.uniform(0, 59))
                        opening = hours.next_opening(moment, zone)
                        waited = int((opening - moment).total_seconds()) + int(rng.lognormvariate(5.5, 0.8))
                    else:
                        median = 90 if risk == "acute" else 420 if queue == "professional" else 300
                        waited = int(rng.lognormvariate(0, 0.9) * median)
                        if after_hours:
                            waited = int(waited * 2.5)
                    handled = int(rng.triangular(600, 2400, 1200))
                    if risk == "acute" and random_() < 0.6:
                        outcome = "emergency_services"
                    else:
                        outcome = choices(OUTCOMES, cum_weights=outcome_cum)[0]
                    if outcome == "referred_service" and by_theme:
                        pool = by_theme.get(themes[0], ()) if themes else ()
                        referred = rng.choice(pool[:4] if pool else all_entries)
                    if themes and random_() < 0.09:
                        corrected = True
                        wrong = rng.randrange(len(themes))
                        corrected_themes = list(themes)
                        swap = CONFUSED[themes[wrong]]
                        corrected_themes[wrong] = swap
                        corrected_themes = list(dict.fromkeys(corrected_themes))
                    if random_() < 0.35:
                        verdict = choices(verdicts, cum_weights=verdict_cum)[0]
            else:
                messages = rng.randint(1, 4)
                if random_() < 0.1:
                    verdict = choices(verdicts, cum_weights=verdict_cum)[0]
            yield ((fact_id, hour, choices(channels, cum_weights=channel_cum)[0],
                    choices(LANGUAGES, cum_weights=language_cum)[0],
                    choices(REGIONS, cum_weights=region_cum)[0], themes, risk, route, after_hours,
                    messages, given, handed, queue, waited, handled, abandoned, outcome, referred,
                    corrected, corrected_themes, verdict), themes)


def _shifts(session: Session, first: datetime, days: int, zone: ZoneInfo, now: datetime,
            rng: random.Random) -> list[dict[str, object]]:
    """Past evening shifts of the demo volunteer and day shifts of the demo professional."""
    users = dict(session.execute(select(User.username, User.id).where(
        User.username.in_(("demo-vrijwilliger", "demo-hulpverlener", "demo-coordinator")))).all())
    plan = []
    if "demo-vrijwilliger" in users:
        plan.append((users["demo-vrijwilliger"], QueueName.volunteer, (18, 22), {0, 1, 3, 6}))
    if "demo-hulpverlener" in users:
        plan.append((users["demo-hulpverlener"], QueueName.professional, (9, 17), {0, 1, 2, 3, 4}))
    if "demo-coordinator" in users:
        plan.append((users["demo-coordinator"], QueueName.volunteer, (13, 17), {2, 5}))
    out: list[dict[str, object]] = []
    start_day = first.astimezone(zone).date()
    for d in range(days):
        day = start_day + timedelta(days=d)
        for user_id, queue, (begin, end), weekdays in plan:
            if day.weekday() not in weekdays or rng.random() < 0.15:
                continue
            started = datetime.combine(day, time(begin), tzinfo=zone).astimezone(UTC)
            ended = datetime.combine(day, time(end), tzinfo=zone).astimezone(UTC)
            started += timedelta(minutes=rng.randint(-10, 15))
            if ended >= now:
                continue
            out.append({"id": str(uuid.uuid4()), "user_id": user_id, "queue": queue,
                        "started_at": started, "ended_at": ended, "last_seen_at": ended})
    return out


def make(session: Session, *, days: int = 30, contacts_per_day: float = 120, seed: int = 1,
         now: datetime | None = None, zone: ZoneInfo | None = None, hours: Hours | None = None,
         catalogue: Catalogue | None = None, shifts: bool = True) -> Made:
    """Insert a demo period of facts, theme rows, corrections and (optionally) shifts."""
    if days < 1:
        raise ValueError("days must be at least 1")
    now = (now or utcnow()).astimezone(UTC)
    zone = zone or ZoneInfo("Europe/Amsterdam")
    if catalogue is None:
        from bot.config import REPO_ROOT

        catalogue = load_catalogue(REPO_ROOT / "data" / "aanbod")
    rng = random.Random(seed * 7919 + 1)
    facts = themes = handed = corrections = 0
    first: datetime | None = None
    last: datetime | None = None
    fact_batch: list[dict[str, object]] = []
    theme_batch: list[dict[str, object]] = []
    correction_batch: list[dict[str, object]] = []

    def flush() -> None:
        if fact_batch:
            session.execute(insert(ContactFact), fact_batch)
        if theme_batch:
            session.execute(insert(ContactTheme), theme_batch)
        if correction_batch:
            session.execute(insert(Correction), correction_batch)
        fact_batch.clear()
        theme_batch.clear()
        correction_batch.clear()

    for values, fact_themes in rows(days=days, contacts_per_day=contacts_per_day, seed=seed, now=now,
                                    zone=zone, hours=hours, catalogue=catalogue):
        row = dict(zip(FACT_COLUMNS, values))
        row["channel"] = Channel(row["channel"])
        row["risk"] = Risk(row["risk"])
        row["route"] = Route(row["route"])
        row["queue"] = QueueName(row["queue"]) if row["queue"] else None
        row["verdict"] = Verdict(row["verdict"]) if row["verdict"] else None
        fact_batch.append(row)
        hour = row["hour"]
        assert isinstance(hour, datetime)
        first = hour if first is None or hour < first else first
        last = hour if last is None or hour > last else last
        facts += 1
        handed += bool(row["handed_over"])
        for theme in fact_themes:
            theme_batch.append({"fact_id": row["id"], "theme": theme, "hour": hour})
            themes += 1
        if row["corrected"]:
            corrections += 1
            predicted, right = list(fact_themes), list(cast("list[str] | None", row["corrected_themes"]) or [])
            new = next((t for t in right if t not in predicted), right[0])
            sentences = DEMO_SENTENCES.get(new) or DEMO_SENTENCES["money_other"]
            at = hour + timedelta(minutes=rng.randint(20, 90))
            # Never reviewed: an accepted made-up sentence could be exported as training data.
            reviewed = False
            correction_batch.append({
                "id": str(uuid.uuid4()), "created_at": min(at, now), "conversation_id": None,
                "user_id": None, "predicted": predicted, "corrected": right,
                "texts_masked": [mask(rng.choice(sentences))],
                "reviewed_at": at + timedelta(days=rng.randint(1, 5)) if reviewed else None,
                "accepted": (rng.random() < 0.8) if reviewed else None, "reviewed_by": None,
            })
        if len(fact_batch) >= 2000:
            flush()
    flush()
    shift_rows = _shifts(session, first or now, days, zone, now, rng) if shifts and facts else []
    if shift_rows:
        session.execute(insert(Shift), shift_rows)
    return Made(facts=facts, themes=themes, handed_over=handed, corrections=corrections,
                shifts=len(shift_rows), start=first or now, end=last or now)


def generate(session: Session, *, days: int = 30, contacts_per_day: float = 120, seed: int = 1,
             now: datetime | None = None, zone: ZoneInfo | None = None, hours: Hours | None = None,
             catalogue: Catalogue | None = None) -> int:
    """Insert a realistic period of anonymous demo statistics; returns how many contacts."""
    return make(session, days=days, contacts_per_day=contacts_per_day, seed=seed, now=now, zone=zone,
                hours=hours, catalogue=catalogue).facts


def json_text(value: object) -> str | None:
    """A JSON column's text (for the bench's COPY); None stays NULL."""
    return None if value is None else json.dumps(value)
