"""The on-call SMS (handoff.oncall) with the real pipeline, desk, worker and SQL (SQLite or
PostgreSQL) and Redis, delivered to the fake Twilio REST API on 127.0.0.1: one SMS per episode when
an acute conversation waits and nobody at all is present, with themes, risk and a link, and
nothing of the parent's."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    Channel,
    Conversation,
    ConversationStatus,
    Outbox,
    OutboxStatus,
    Role,
    Shift,
    utcnow,
)
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from bot.worker import Worker, backoff
from handoff.oncall import ACTION, STALE_AFTER, OnCall
from tests.channels.conftest import deliver, run_async
from tests.channels.fake_twilio import (
    PUBLIC_BASE_URL,
    SMS_FROM,
    FakeTwilio,
    TwilioLine,
    twilio_settings,
)
from tests.people import Parent, person

ON_CALL = "+31611112222"
PARENT = "+31612345678"
DANGER = "mijn man slaat me en staat nu voor de deur, ik ben bang"
DANGER_WORDS = ("slaat", "deur", "bang")
SUICIDE = "ik wil niet meer leven, ik heb de pillen al klaarliggen"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def oc_settings(settings: Settings, fake: FakeTwilio) -> Settings:
    return twilio_settings(settings, fake, on_call_phone=ON_CALL)


@pytest.fixture
def oc_services(oc_settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(oc_settings, triage=triage)
    yield built
    run_async(built.close)


def alerts(services: Services) -> list[AuditLog]:
    with services.factory() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == ACTION)
                                    .order_by(AuditLog.id)))


def alert_rows(services: Services) -> list[Outbox]:
    """The on-call SMS in the outbox (the only rows without a conversation on channel sms)."""
    with services.factory() as session:
        return list(session.scalars(select(Outbox).where(
            Outbox.conversation_id.is_(None), Outbox.channel == Channel.sms).order_by(Outbox.created_at)))


def conversation(services: Services, conversation_id: str) -> Conversation:
    with services.factory() as session:
        found = session.get(Conversation, conversation_id)
        assert found is not None
        return found


def away(services: Services, user_id: str, seconds: int) -> None:
    """The person's dashboard was last seen `seconds` ago."""
    with services.factory() as session, session.begin():
        session.execute(update(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None))
                        .values(last_seen_at=utcnow() - timedelta(seconds=seconds)))


# The SMS ----------------------------------------------------------------------------------------


def test_acute_sms_with_nobody_present_alerts_on_call_once(
    oc_settings: Settings, oc_services: Services, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(oc_settings, oc_services)) as client:
        line = TwilioLine(client, fake)
        line.says(PARENT, DANGER)
        [only] = [c for c in (conversation(oc_services, a.conversation_id or "") for a in alerts(oc_services))]
        assert only.status is ConversationStatus.queued and only.priority == 0
        deliver(oc_services)

        [sms] = fake.to(ON_CALL)
        link = f"{PUBLIC_BASE_URL}/dashboard/conversations/{only.id}"
        assert sms.from_ == SMS_FROM
        assert sms.body == ("Oudertelefoon: een gesprek met spoed wacht (onderwerp: huiselijk geweld, "
                            f"risico: acuut). Er is niemand online. Open: {link}")
        assert not any(word in (sms.body or "") for word in DANGER_WORDS)
        assert PARENT not in (sms.body or "") and only.pseudonym not in (sms.body or "")
        # The link is the dashboard's conversation page (behind the login), not a dead end.
        page = client.get(link.removeprefix(PUBLIC_BASE_URL), follow_redirects=False)
        assert page.status_code in (302, 303, 307) and "login" in page.headers["location"]
        # The parent got their own answer (emergency guidance) on their own number.
        assert any("112" in text for text in line.received(PARENT))

        # A second acute message in the same wait: no second SMS, from the pipeline or the round.
        line.says(PARENT, "hij schreeuwt dat hij me gaat vermoorden, ik ben bang")
        assert oc_services.on_call is not None and oc_services.on_call.tick() == 0
        deliver(oc_services)
        assert len(fake.to(ON_CALL)) == 1

    [audit] = alerts(oc_services)
    assert audit.conversation_id == only.id and audit.user_id is None
    assert audit.detail is not None and audit.detail["risk"] == "acute"
    assert audit.detail["themes"] == ["domestic_violence"]
    assert ON_CALL not in str(audit.detail) and PARENT not in str(audit.detail)
    [row] = alert_rows(oc_services)
    assert row.status is OutboxStatus.sent and row.address_encrypted is None  # number wiped
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "on-call alert queued" in logged
    for secret in (ON_CALL, PARENT, *DANGER_WORDS):
        assert secret not in logged


def test_someone_present_means_no_sms(oc_services: Services, fake: FakeTwilio) -> None:
    sanne = person(oc_services, Role.volunteer)  # any role counts: nobody at all must be there
    oc_services.desk.start_shift(sanne)
    parent = Parent(oc_services)
    conversation_id = parent.says(SUICIDE)
    assert conversation(oc_services, conversation_id).priority == 0
    assert oc_services.on_call is not None and oc_services.on_call.tick() == 0
    deliver(oc_services)
    assert fake.to(ON_CALL) == [] and alerts(oc_services) == [] and alert_rows(oc_services) == []


def test_presence_expiring_alerts_on_the_worker_round(
    oc_settings: Settings, oc_services: Services, fake: FakeTwilio
) -> None:
    pro = person(oc_services, Role.professional)
    oc_services.desk.start_shift(pro)
    parent = Parent(oc_services)
    conversation_id = parent.says(SUICIDE)
    assert alert_rows(oc_services) == []  # someone was there when it came in
    # Still within PRESENCE_TIMEOUT_SECONDS: present, no SMS.
    away(oc_services, pro.user_id, oc_settings.presence_timeout_seconds - 10)
    assert oc_services.on_call is not None and oc_services.on_call.tick() == 0
    # Their dashboard has been away longer than the timeout: nobody is present any more. The
    # worker started by the app (its round, as in production) sends the SMS.
    away(oc_services, pro.user_id, oc_settings.presence_timeout_seconds + 1)
    with TestClient(create_app(oc_settings, oc_services, run_worker=True)):
        deadline = time.monotonic() + 20
        while not fake.to(ON_CALL) and time.monotonic() < deadline:
            time.sleep(0.1)
    [sms] = fake.to(ON_CALL)
    assert "psychische gezondheid" in (sms.body or "") and "acuut" in (sms.body or "")
    assert f"/dashboard/conversations/{conversation_id}" in (sms.body or "")
    assert oc_services.on_call.tick() == 0  # the next round: already alerted
    assert len(alerts(oc_services)) == 1


def test_a_new_episode_after_pickup_and_return(oc_services: Services, fake: FakeTwilio) -> None:
    on_call = oc_services.on_call
    assert on_call is not None
    parent = Parent(oc_services)
    conversation_id = parent.says(SUICIDE)
    deliver(oc_services)
    assert len(fake.to(ON_CALL)) == 1
    # A professional comes, picks it up, has to give it back (still there): no SMS.
    pro = person(oc_services, Role.professional)
    oc_services.desk.start_shift(pro)
    oc_services.desk.claim(conversation_id, pro)
    oc_services.desk.release(conversation_id, pro)
    assert conversation(oc_services, conversation_id).status is ConversationStatus.queued
    assert conversation(oc_services, conversation_id).priority == 0
    parent.says("is er al iemand?")
    assert on_call.tick() == 0
    # They go off shift: the conversation waits acute again with nobody there, a new episode.
    oc_services.desk.stop_shift(pro.user_id)
    assert on_call.tick() == 1
    assert on_call.tick() == 0
    parent.says(SUICIDE)
    deliver(oc_services)
    assert len(fake.to(ON_CALL)) == 2
    assert [a.detail["episode"] for a in alerts(oc_services) if a.detail] == [0, 1]


def test_without_on_call_phone_nothing_is_sent(settings: Settings, triage: Triage, fake: FakeTwilio) -> None:
    services = build_services(twilio_settings(settings, fake), triage=triage)
    try:
        assert services.settings.on_call_phone is None
        parent = Parent(services)
        conversation_id = parent.says(SUICIDE)
        assert conversation(services, conversation_id).priority == 0
        assert services.on_call is not None and services.on_call.tick() == 0
        deliver(services)
        assert fake.sent == [] and alerts(services) == [] and alert_rows(services) == []
    finally:
        run_async(services.close)


def test_twilio_failing_is_retried_and_the_parent_is_answered(
    oc_services: Services, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, 503)
    parent = Parent(oc_services)
    conversation_id = parent.says(SUICIDE)
    replies = parent.replies()
    assert replies and any("113" in text for _, text in replies)  # the turn completed
    now = utcnow() + timedelta(seconds=1)  # the replies are spaced by milliseconds: all due
    sent = run_async(Worker(oc_services.factory, oc_services.vault, oc_services.senders,
                            clock=lambda: now).run_once)
    with oc_services.factory() as session:
        parents = list(session.scalars(select(Outbox).where(Outbox.conversation_id == conversation_id)))
    assert parents and all(r.status is OutboxStatus.sent for r in parents)  # not held up
    assert sent == len(parents)
    [row] = alert_rows(oc_services)
    assert row.status is OutboxStatus.pending and row.attempts == 1
    assert row.last_error == "twilio answered 503"
    assert fake.to(ON_CALL) == []
    later = now + backoff(1) + timedelta(seconds=1)
    assert run_async(Worker(oc_services.factory, oc_services.vault, oc_services.senders,
                            clock=lambda: later).run_once) == 1
    assert len(fake.to(ON_CALL)) == 1
    [row] = alert_rows(oc_services)
    assert row.status is OutboxStatus.sent and row.address_encrypted is None
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert f"delivery of {row.id} on sms failed (will retry)" in logged
    for secret in (ON_CALL, "leven", "pillen"):
        assert secret not in logged


def test_twilio_refusing_gives_up_with_a_log_line(
    oc_services: Services, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, 400, 21211)  # Twilio's "invalid number", quoting it in its message
    Parent(oc_services).says(SUICIDE)
    deliver(oc_services)
    [row] = alert_rows(oc_services)
    assert row.status is OutboxStatus.failed and row.last_error == "twilio refused: 400 error 21211"
    assert row.address_encrypted is None
    assert oc_services.on_call is not None and oc_services.on_call.tick() == 0  # not again
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert f"delivery of {row.id} on sms failed (giving up)" in logged and ON_CALL not in logged


def test_two_processes_at_once_send_one_sms(oc_settings: Settings, oc_services: Services) -> None:
    # Someone present keeps the pipeline from alerting; then they are gone, and two workers
    # (each with its own engine, as two processes have) look at the same moment.
    pro = person(oc_services, Role.professional)
    oc_services.desk.start_shift(pro)
    conversation_id = Parent(oc_services).says(SUICIDE)
    away(oc_services, pro.user_id, oc_settings.presence_timeout_seconds + 1)
    engines = [db.make_engine(oc_settings.effective_database_url) for _ in range(2)]
    try:
        checkers = [OnCall(oc_settings, db.session_factory(e), oc_services.vault) for e in engines]
        barrier = threading.Barrier(len(checkers))
        results: list[bool] = []
        errors: list[BaseException] = []

        def run(checker: OnCall) -> None:
            barrier.wait()
            try:
                results.append(checker.check(conversation_id))
            except BaseException as error:  # noqa: BLE001 - handed to the assertion below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(c,)) for c in checkers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == [] and sorted(results) == [False, True]
    assert len(alert_rows(oc_services)) == 1 and len(alerts(oc_services)) == 1


def test_a_long_stale_conversation_is_not_alerted_by_the_round(oc_services: Services) -> None:
    pro = person(oc_services, Role.professional)
    oc_services.desk.start_shift(pro)
    conversation_id = Parent(oc_services).says(SUICIDE)
    long_ago = utcnow() - STALE_AFTER - timedelta(hours=1)
    with oc_services.factory() as session, session.begin():
        session.execute(update(Conversation).where(Conversation.id == conversation_id).values(
            last_message_at=long_ago, queued_at=long_ago, created_at=long_ago))
    oc_services.desk.stop_shift(pro.user_id)
    assert oc_services.on_call is not None and oc_services.on_call.tick() == 0
    assert alert_rows(oc_services) == []


# Settings ---------------------------------------------------------------------------------------


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("ON_CALL_PHONE", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_SMS_FROM"):
        monkeypatch.delenv(name, raising=False)
    return load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=str(tmp_path), **values)


TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "x" * 32,
          "TWILIO_SMS_FROM": "+3197010201234"}


def test_on_call_phone_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(tmp_path, monkeypatch).on_call_phone is None
    assert _load(tmp_path, monkeypatch, ON_CALL_PHONE="  ").on_call_phone is None
    assert _load(tmp_path, monkeypatch, ON_CALL_PHONE=ON_CALL, **TWILIO).on_call_phone == ON_CALL
    for bad in ("0611112222", "+31 6 1111 2222", "bel mij"):
        with pytest.raises(ConfigError, match=r"ON_CALL_PHONE: must be a phone number in E\.164"):
            _load(tmp_path, monkeypatch, ON_CALL_PHONE=bad, **TWILIO)
    # Set, but the SMS could never go out: refused at start, naming what is missing.
    for missing in TWILIO:
        values = {k: v for k, v in TWILIO.items() if k != missing}
        with pytest.raises(ConfigError, match=r"ON_CALL_PHONE is set but .*TWILIO_SMS_FROM"):
            _load(tmp_path, monkeypatch, ON_CALL_PHONE=ON_CALL, **values)


def test_a_unique_key_per_episode() -> None:
    from handoff.oncall import episode_key

    first = str(uuid.uuid4())
    assert episode_key(first, 0) == episode_key(first, 0) and len(episode_key(first, 0)) == 36
    assert episode_key(first, 0) != episode_key(first, 1) != episode_key(str(uuid.uuid4()), 1)
