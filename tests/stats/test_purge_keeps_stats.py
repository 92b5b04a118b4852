"""The retention purge deletes transcripts and addresses and keeps every statistic.

Runs on SQLite and, when DATABASE_URL names one, on PostgreSQL. The worker's own purge
(`bot.web.app.purge_now`, what `oudertelefoon worker` runs as housekeeping) is run with its clock
moved past RETENTION_DAYS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

import bot.web.app as app_module
from bot.storage.models import (
    ContactFact,
    ContactTheme,
    Conversation,
    Correction,
    Handoff,
    Message,
    Outbox,
    Role,
    utcnow,
)
from bot.web.app import Services, purge_now
from handoff.desk import Outcome
from stats import demo
from tests.channels.conftest import deliver, services  # noqa: F401 (a fixture)
from tests.people import Parent, person

try:
    from stats import report
except ImportError:  # written separately; the raw facts are compared either way
    report = None  # type: ignore[assignment]


@pytest.fixture
def database_url(any_database_url: str) -> str:
    """Both databases in one run: SQLite always, PostgreSQL where DATABASE_URL names one."""
    return any_database_url


def _count(services: Services, model: Any, *where: Any) -> int:
    with services.factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _snapshot(services: Services, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """Every fact and theme row as plain values, and the statistics page's tables."""
    columns = [c.key for c in ContactFact.__table__.columns]
    with services.factory() as session:
        facts = {f.id: {c: getattr(f, c) for c in columns} for f in session.scalars(select(ContactFact))}
        themes = set(session.execute(select(ContactTheme.fact_id, ContactTheme.theme, ContactTheme.hour)).all())
        tables = None
        if report is not None:
            filters = report.Filters(start=now - timedelta(days=40), end=now + timedelta(hours=1))
            tables = report.compute(session, filters, zone=zone, catalogue=services.catalogue, now=now)
    return {"facts": facts, "themes": themes, "tables": tables}


def test_purge_deletes_transcripts_and_addresses_and_keeps_the_statistics(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = services.settings
    zone = ZoneInfo(settings.timezone)
    # Real contacts through the pipeline and the desk: a bot answer, and a handed-over
    # conversation closed with a correction and a verdict.
    bot_parent, helped_parent = Parent(services), Parent(services)
    bot_parent.says("ik kan de huur deze maand niet betalen, bel me op 06-12345678")
    helped_id = helped_parent.wants_volunteer()
    sanne = person(services, Role.volunteer)
    services.desk.claim(helped_id, sanne)
    services.desk.close(helped_id, sanne, Outcome.referred_network, corrected_themes=["loneliness"])
    helped_parent.says("ja")
    # And a made-up month around them.
    now = utcnow()
    with services.factory() as session, session.begin():
        made = demo.generate(session, days=30, contacts_per_day=40, seed=5, now=now, zone=zone,
                             catalogue=services.catalogue)
    deliver(services)  # replies sent: the outbox forgets the addresses

    assert _count(services, Conversation) == 2
    facts_before = _count(services, ContactFact)
    assert facts_before == made + 2
    corrections_before = _count(services, Correction)
    assert _count(services, Correction, Correction.conversation_id.is_not(None)) == 1
    before = _snapshot(services, zone, now)
    real = [f for f in before["facts"].values() if f["verdict"] is not None and f["corrected"]
            and f["outcome"] == "referred_network"]
    assert real  # the closed conversation's fact is there

    # The worker's purge with today's clock keeps everything: nothing is old yet.
    purge_now(services)
    assert _count(services, Conversation) == 2

    # Move the worker's clock past the retention period.
    later = utcnow() + timedelta(days=settings.retention_days + 1)
    monkeypatch.setattr(app_module, "utcnow", lambda: later)
    purge_now(services)

    # Transcripts and addresses are gone.
    assert _count(services, Conversation) == 0
    assert _count(services, Message) == 0
    assert _count(services, Handoff) == 0
    assert _count(services, Outbox, Outbox.address_encrypted.is_not(None)) == 0
    assert _count(services, Outbox, Outbox.conversation_id.is_not(None)) == 0
    # Every fact and theme row stays, unchanged, and so do the corrections (without their link).
    after = _snapshot(services, zone, now)
    assert _count(services, ContactFact) == facts_before
    assert after["facts"] == before["facts"]
    assert after["themes"] == before["themes"]
    assert _count(services, Correction) == corrections_before
    assert _count(services, Correction, Correction.conversation_id.is_not(None)) == 0
    # The statistics page shows the same numbers before and after.
    if report is not None:
        assert after["tables"] == before["tables"]
        assert after["tables"]["contacts_per_day"].rows


def test_the_purge_cutoff_follows_the_moved_clock(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """One day short of the retention period nothing is purged; one day past it, it is."""
    parent = Parent(services)
    parent.says("waar vind ik een verloskundige")
    start = datetime.now(UTC)
    days = services.settings.retention_days
    monkeypatch.setattr(app_module, "utcnow", lambda: start + timedelta(days=days - 1))
    purge_now(services)
    assert _count(services, Conversation) == 1
    monkeypatch.setattr(app_module, "utcnow", lambda: start + timedelta(days=days + 1))
    purge_now(services)
    assert _count(services, Conversation) == 0
    assert _count(services, ContactFact) == 1 and _count(services, ContactTheme) >= 1
