"""After conversations on SMS, WhatsApp and the web chat, no parent's phone number, WhatsApp name
or web chat token is anywhere in the database or Redis, and no number or message text is in the
logs (DEBUG, every logger). The encrypted address columns hold ciphertext, never the number."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Text, cast, column, inspect, select, table

from bot.config import Settings
from bot.storage.models import AuditLog
from bot.triage.engine import Triage
from bot.web.app import build_services, create_app
from tests.channels.conftest import deliver, outbox_rows
from tests.channels.fake_twilio import FakeTwilio, TwilioLine, new_sid, payload, twilio_settings

SMS_PARENT = "+31611122233"
WHATSAPP_PARENT = "+31644455566"
DELETING_PARENT = "+31677788899"
UNREACHABLE_PARENT = "+31600011122"
PROFILE_NAME = "Priya van der Berg"

SMS_TEXTS = [
    "mijn baby slaapt zo slecht en ik ben kapot",
    "ik kan de huur deze maand niet betalen",
    "ja dankje",
]
WHATSAPP_TEXTS = [
    "Hallo, ik ben zwanger en zoek een verloskundige in Amsterdam",
    "mijn vriend schreeuwt de hele tijd tegen me",
]
WEB_TEXTS = ["ik voel me zo alleen met mijn zoontje", "mens"]
DELETED_TEXTS = ["mijn dochter eet bijna niets", "verwijder mijn gegevens", "ja"]


def _needles(number: str) -> list[str]:
    bare = number.lstrip("+")
    return [number, bare, "whatsapp:" + number, bare[2:]]  # also without the country code


def scan_database(engine: Engine, needles: list[str]) -> list[str]:
    """Every table, every column, cast to text: where does any needle occur?"""
    found = []
    inspector = inspect(engine)
    with engine.connect() as connection:
        for name in inspector.get_table_names():
            columns = [c["name"] for c in inspector.get_columns(name)]
            query = select(*[cast(column(c), Text).label(c) for c in columns]).select_from(table(name))
            for row in connection.execute(query):
                for key, value in row._mapping.items():
                    for needle in needles:
                        if value is not None and needle in value:
                            found.append(f"{name}.{key} holds {needle!r}")
    return found


def test_no_number_token_or_text_where_it_does_not_belong(
    settings: Settings, triage: Triage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger, at its most talkative
    with FakeTwilio() as fake:
        s = twilio_settings(settings, fake)
        services = build_services(s, triage=triage)
        try:
            # https: the web chat cookie is Secure when PUBLIC_BASE_URL is https.
            with TestClient(create_app(s, services), base_url="https://testserver") as client:
                line = TwilioLine(client, fake)
                for text in SMS_TEXTS:
                    line.says(SMS_PARENT, text)
                    deliver(services)
                for text in WHATSAPP_TEXTS:
                    line.says(WHATSAPP_PARENT, text, whatsapp=True, ProfileName=PROFILE_NAME)
                    deliver(services)
                for name in ("whatsapp_image_caption", "whatsapp_location", "whatsapp_voice"):
                    line.says(WHATSAPP_PARENT, whatsapp=True, template=name, ProfileName=PROFILE_NAME)
                for text in DELETED_TEXTS:
                    line.says(DELETING_PARENT, text)
                deliver(services)
                # Twilio refuses one number, quoting it in its error message.
                fake.fail_next(1, status=400, code=21211)
                line.says(UNREACHABLE_PARENT, "hoi")
                deliver(services)
                for message in list(fake.sent):
                    line.report(message, "delivered")

                client.get("/chat")
                token = client.cookies.get("ot_chat")
                assert token
                for text in WEB_TEXTS:
                    response = client.post("/chat/api/messages",
                                           json={"text": text, "client_id": uuid.uuid4().hex})
                    assert response.status_code == 202
                deliver(services)

            # The conversations really happened, on every channel.
            assert any(m.to == SMS_PARENT for m in fake.sent)
            assert any(m.to == "whatsapp:" + WHATSAPP_PARENT for m in fake.sent)
            assert any((m.body or "").startswith("Alles is verwijderd") for m in fake.sent)
            assert any(r.status.value == "failed" for r in outbox_rows(services))

            needles = [token, PROFILE_NAME]
            for number in (SMS_PARENT, WHATSAPP_PARENT, DELETING_PARENT, UNREACHABLE_PARENT):
                needles += _needles(number)
            assert scan_database(services.engine, needles) == []

            redis_text = " ".join(
                f"{key!r} {services.redis.dump(key)!r}" for key in services.redis.scan_iter()
            )
            assert [n for n in needles if n in redis_text] == []

            parent_texts = SMS_TEXTS + WHATSAPP_TEXTS + WEB_TEXTS + DELETED_TEXTS[:1]
            parent_texts += [payload("whatsapp_image_caption")["Body"]]
            logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
            assert caplog.records  # the capture works
            leaks = [n for n in needles + parent_texts if n in logged]
            assert leaks == []
        finally:
            asyncio.run(services.close())


def test_the_scan_finds_a_plain_number(settings: Settings, triage: Triage) -> None:
    """The scan itself works: a number written in plain text is found."""
    services = build_services(settings, triage=triage)
    try:
        with services.factory() as session, session.begin():
            session.add(AuditLog(action="test", detail={"note": "bel " + SMS_PARENT}))
        assert scan_database(services.engine, _needles(SMS_PARENT)) != []
        assert scan_database(services.engine, [new_sid()]) == []
    finally:
        asyncio.run(services.close())
