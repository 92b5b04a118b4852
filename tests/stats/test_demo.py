"""The demo generator: a realistic month of anonymous statistics, and `oudertelefoon demo-data`."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import REPO_ROOT, Settings
from bot.intents.catalogue import load_catalogue
from bot.storage import db
from bot.storage.models import Channel, ContactFact, ContactTheme, Conversation, Correction, Message
from stats import demo

NOW = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)  # a Wednesday afternoon
ZONE = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    db.upgrade(settings.effective_database_url)
    engine = db.make_engine(settings.effective_database_url)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def month(factory: sessionmaker[Session], settings: Settings) -> list[ContactFact]:
    with db.transaction(factory) as session:
        made = demo.generate(session, days=30, seed=3, now=NOW, zone=ZONE,
                             catalogue=load_catalogue(settings.aanbod_dir))
    with factory() as session:
        facts = list(session.scalars(select(ContactFact)))
    assert len(facts) == made
    return facts


def test_a_month_of_contacts_with_a_daily_and_weekly_rhythm(month: list[ContactFact]) -> None:
    assert 30 * 100 < len(month) < 30 * 140  # about 120 a day
    hours = [f.hour.replace(tzinfo=f.hour.tzinfo or UTC) for f in month]
    assert min(hours) >= NOW - timedelta(days=31) and max(hours) <= NOW  # nothing in the future
    assert all(h.minute == 0 and h.second == 0 for h in hours)  # kept to the hour
    local = Counter(h.astimezone(ZONE).hour for h in hours)
    evening = sum(local[h] for h in (19, 20, 21, 22))
    morning = sum(local[h] for h in (6, 7, 8, 9))
    night = sum(local[h] for h in (0, 1, 2))
    assert evening > 3 * morning and night > morning
    per_weekday = Counter(h.astimezone(ZONE).weekday() for h in hours)
    assert per_weekday[0] > per_weekday[5]  # Monday busier than Saturday


def test_channel_theme_and_risk_mix(month: list[ContactFact]) -> None:
    channels = Counter(f.channel for f in month)
    order = [c for c, _ in channels.most_common()]
    assert order == [Channel.whatsapp, Channel.web, Channel.sms, Channel.telegram, Channel.phone]
    themes = Counter(t for f in month for t in f.themes)
    assert themes.most_common(1)[0][0] in {"parenting", "money"}
    assert len(themes) == 15
    assert any(len(f.themes) > 1 for f in month) and any(not f.themes for f in month)
    risks = Counter(f.risk.value for f in month)
    n = len(month)
    assert (risks["none"] + risks["concern"]) / n > 0.85
    assert 0 < risks["acute"] < risks["high"] < risks["concern"] < risks["none"]
    assert risks["acute"] / n < 0.03


def test_routes_follow_risk_and_about_a_third_is_handed_over(month: list[ContactFact]) -> None:
    for fact in month:
        if fact.risk.value == "acute":
            assert fact.route.value == "emergency"
        elif fact.risk.value == "high":
            assert fact.route.value == "professional"
        else:
            assert fact.route.value in {"bot", "volunteer"}
        if fact.handed_over:
            assert fact.route.value != "bot" and fact.queue is not None
        else:
            assert fact.queue is None and fact.waited_seconds is None and not fact.abandoned
    handed = [f for f in month if f.handed_over]
    assert 0.28 < len(handed) / len(month) < 0.42


def test_waits_handling_outcomes_and_referrals(month: list[ContactFact], settings: Settings) -> None:
    catalogue = load_catalogue(settings.aanbod_dir)
    picked_up = [f for f in month if f.handed_over and not f.abandoned]
    assert all(600 <= (f.handled_seconds or 0) <= 2400 for f in picked_up)  # 10 to 40 minutes
    inside = [f.waited_seconds for f in picked_up if not f.after_hours and f.waited_seconds is not None]
    outside = [f.waited_seconds for f in picked_up if f.after_hours and f.waited_seconds is not None]
    assert statistics.median(outside) > 2 * statistics.median(inside)
    abandoned = [f for f in month if f.abandoned]
    assert abandoned and all(f.waited_seconds is None and f.outcome is None for f in abandoned)
    assert {f.outcome for f in picked_up} >= {"helped", "referred_service", "referred_network", "no_response"}
    referred = [f.referred_to for f in month if f.referred_to]
    assert referred and all(r in catalogue for r in referred)
    given = [i for f in month for i in f.catalogue_given]
    assert given and all(i in catalogue for i in given)
    assert not any(catalogue.get(i).emergency_only for i in given)
    verdicts = Counter(f.verdict.value for f in month if f.verdict is not None)
    assert verdicts["yes"] > verdicts["somewhat"] > verdicts["no"] > 0


def test_theme_rows_and_corrections(month: list[ContactFact], factory: sessionmaker[Session]) -> None:
    with factory() as session:
        rows = {(fid, theme) for fid, theme in session.execute(select(ContactTheme.fact_id, ContactTheme.theme))}
        corrections = list(session.scalars(select(Correction)))
        # Only anonymous aggregates: no conversation, no message.
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    assert rows == {(f.id, t) for f in month for t in f.themes}
    corrected = [f for f in month if f.corrected]
    assert corrected and len(corrections) == len(corrected)
    assert all(f.corrected_themes and f.corrected_themes != f.themes for f in corrected)
    assert all(c.conversation_id is None and c.user_id is None and c.texts_masked for c in corrections)
    text = " ".join(t for c in corrections for t in c.texts_masked)
    assert not re.search(r"\d{6,}|@|\b\d{4} ?[A-Z]{2}\b", text)  # masked
    # All wait for review: a made-up sentence must never reach the training data unseen.
    assert all(c.accepted is None and c.reviewed_at is None for c in corrections)


def test_same_seed_same_data() -> None:
    first = [v for v, _ in demo.rows(days=3, contacts_per_day=50, seed=9, now=NOW)]
    again = [v for v, _ in demo.rows(days=3, contacts_per_day=50, seed=9, now=NOW)]
    other = [v for v, _ in demo.rows(days=3, contacts_per_day=50, seed=10, now=NOW)]
    assert first == again and first != other
    exact = list(demo.rows(days=90, contacts_per_day=0, total=5000, seed=1, now=NOW))
    assert len(exact) == 5000  # the bench's exact count


def test_the_statistics_page_computes_from_demo_data(month: list[ContactFact],
                                                      factory: sessionmaker[Session]) -> None:
    from stats import report

    with factory() as session:
        tables = report.compute(session, report.Filters.last_days(30, NOW, ZONE), zone=ZONE, now=NOW)
    assert tables["contacts_per_day"].rows


# --------------------------------------------------------------------------- the command


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"NLU_BACKEND", "RASA_URL"}}
    environ.update({"OUDERTELEFOON_VAR_DIR": str(settings.var_dir), "OUDERTELEFOON_ENV": "test",
                    "LOG_LEVEL": "WARNING", "DATABASE_URL": settings.effective_database_url, **env})
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], check=False, capture_output=True, text=True,
                          env=environ, timeout=180, cwd=REPO_ROOT)


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(ContactFact)) or 0


def test_demo_data_command_prints_what_it_made(settings: Settings, factory: sessionmaker[Session]) -> None:
    result = _cli(settings, "demo-data", "--days", "7", "--seed", "2")
    assert result.returncode == 0, result.stderr
    match = re.search(r"demo-data: (\d+) made-up contacts over 7 days", result.stdout)
    assert match, result.stdout
    assert int(match.group(1)) == _count(factory) > 0


def test_demo_data_refuses_in_production(settings: Settings, factory: sessionmaker[Session],
                                         tmp_path: Path) -> None:
    result = _cli(settings, "demo-data", OUDERTELEFOON_ENV="production", SECRET_KEY="s" * 64)
    assert result.returncode == 2
    assert "production" in result.stderr
    assert _count(factory) == 0
