"""Opening hours per queue ("09:00-23:00") and when the next shift starts. Pure functions.

`Schedule` is what the pipeline, the dialogues and the wait estimate ask about when someone is
expected for a queue: `Hours` (fixed daily opening hours from the settings) is one, the roster
(handoff.roster.RosterSchedule, handed in by the composition root) the other, with `Hours` as its
fallback while a queue has no planned shifts at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class Schedule(Protocol):
    """When someone is expected for one queue ("open": by the rota someone should be there).
    Who is really there is another question (handoff.presence); this one only looks ahead.

    - `is_open`: the rota has someone at `moment`.
    - `next_opening`: `moment` itself when open, else the next moment someone is expected;
      None when nobody is expected at all (a roster with nothing planned ahead).
    - `next_opening_after_close`: when the rota has someone again after the period `moment` is
      in has ended (or, when closed now, the next opening); None when it never closes or
      nothing is planned after it.
    - `closes_at`: when the period `moment` is in ends; None when closed now or always open.
    - `text`: the daily hours as "09:00-23:00", or None when they are not fixed daily hours
      (a roster).
    """

    def is_open(self, moment: datetime, zone: ZoneInfo) -> bool: ...

    def next_opening(self, moment: datetime, zone: ZoneInfo) -> datetime | None: ...

    def next_opening_after_close(self, moment: datetime, zone: ZoneInfo) -> datetime | None: ...

    def closes_at(self, moment: datetime, zone: ZoneInfo) -> datetime | None: ...

    def text(self) -> str | None: ...


@dataclass(frozen=True)
class Hours:
    """Daily opening hours; `end` 24:00 means midnight. Start == end means always open."""

    start_minute: int
    end_minute: int

    @property
    def always(self) -> bool:
        return self.start_minute == 0 and self.end_minute == 24 * 60

    def text(self) -> str:
        return f"{_fmt(self.start_minute)}-{_fmt(self.end_minute)}"

    def is_open(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone)
        minute = local.hour * 60 + local.minute
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute  # past midnight

    def next_opening(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The next moment the line opens (or `moment` itself when open now)."""
        if self.is_open(moment, zone):
            return moment
        local = moment.astimezone(zone)
        opening = datetime.combine(local.date(), _clock(self.start_minute), tzinfo=zone)
        if opening <= local:
            opening = datetime.combine(local.date() + timedelta(days=1), _clock(self.start_minute), tzinfo=zone)
        return opening

    def next_opening_after_close(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """When the line opens again after the opening period `moment` is in has closed (or, when
        closed now, the next opening). None when it never closes (00:00-24:00)."""
        if not self.is_open(moment, zone):
            return self.next_opening(moment, zone)
        if self.always:
            return None
        closing = self.closes_at(moment, zone)
        assert closing is not None
        return self.next_opening(closing, zone)

    def closes_at(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """When the opening period `moment` is in ends; None when closed now or always open."""
        if not self.is_open(moment, zone) or self.always:
            return None
        local = moment.astimezone(zone)
        minute = local.hour * 60 + local.minute
        day = local.date()
        if self.start_minute > self.end_minute and minute >= self.start_minute:
            day += timedelta(days=1)  # open past midnight: it closes tomorrow
        # Wall-clock time on that day (24:00 is the next midnight), then back to a real moment.
        naive = datetime.combine(day, time(0)) + timedelta(minutes=self.end_minute)
        return naive.replace(tzinfo=zone)


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _clock(minute: int) -> time:
    return time(minute // 60 % 24, minute % 60)


def parse_hours(value: str) -> Hours:
    match = _HOURS.match(value)
    if not match:
        raise ValueError('must look like "09:00-23:00"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError('must look like "09:00-23:00" with real times')
    return Hours(h1 * 60 + m1, h2 * 60 + m2)
