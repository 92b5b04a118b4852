""""stop en wis" on every text channel (web chat, Telegram, SMS through Twilio): the conversation
and its messages are deleted at once, without the question, whatever its status (talking to the
bot, waiting for a choice, queued, or claimed by a person); the parent still gets "delete_done" on
their own channel; the queue index and the dashboards let go of it. A phrase that is only close
("ik wil stoppen en alles wissen") keeps the question. Everything runs through the real endpoints,
the real pipeline and desk, SQL and Redis; Telegram and Twilio are the local fakes."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.config import REPO_ROOT, Settings
from bot.pipeline import _command
from bot.storage.models import (
    Base,
    Channel,
    ContactFact,
    Conversation,
    ConversationStatus,
    Handoff,
    Message,
    QueueName,
    Role,
)
from bot.web.app import Services, create_app
from handoff.desk import NotFound
from handoff.events import Event, channel
from tests.channels.conftest import deliver, outbox_rows
from tests.channels.fake_telegram import FakeTelegram
from tests.channels.fake_twilio import FakeTwilio, TwilioLine, twilio_settings
from tests.people import person

TELEGRAM_PAYLOADS = REPO_ROOT / "tests" / "payloads" / "telegram"
TELEGRAM_SECRET = "wh-secret_0123456789abcdefghijklmnop"
RECORDED_CHAT_ID = "5830172946"
SMS_PARENT = "+31623456789"
OTHER_SMS_PARENT = "+31698765432"

WIPE_VARIANTS = ["stop en wis", "Stop en wis.", "  STOP EN WIS!! ", "stop & wis", "stop&wis",
                 "stop en wissen", "'stop en wis'", "“Stop  en  wis”", "stop en wis?\n"]
NEAR_PHRASES = ["ik wil stoppen en alles wissen", "stop en wis alles", "stop en wis nu",
                "wis alles", "stop", "stopenwis", "stop wis", "stop en wist", "hou op en wis",
                "/stop en wis"]


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio) -> Settings:
    """Every text channel on: Telegram and Twilio pointed at their fakes."""
    return twilio_settings(settings, fake_twilio).model_copy(update={
        "telegram_bot_token": SecretStr(fake_telegram.token),
        "telegram_webhook_secret": SecretStr(TELEGRAM_SECRET),
        "telegram_api_base": fake_telegram.url,
    })


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    # https: PUBLIC_BASE_URL is https here, so the web chat cookie is Secure.
    with TestClient(create_app(settings, services), base_url="https://testserver") as test_client:
        yield test_client


def text(services: Services, key: str, lang: str = "nl") -> str:
    return services.texts.get(key, lang)


def count(services: Services, model: type[Base]) -> int:
    with services.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def conversations(services: Services) -> list[Conversation]:
    with services.factory() as session:
        return list(session.scalars(select(Conversation)))


def assert_all_gone(services: Services) -> None:
    """No conversation, no message, no handoff; the outbox points to nothing and, once
    delivered, holds no address."""
    assert count(services, Conversation) == 0
    assert count(services, Message) == 0
    assert count(services, Handoff) == 0
    rows = outbox_rows(services)
    assert rows and all(row.conversation_id is None for row in rows)
    deliver(services)
    assert all(row.address_encrypted is None for row in outbox_rows(services))


# The phrase --------------------------------------------------------------------------------------

@pytest.mark.parametrize("phrase", WIPE_VARIANTS)
def test_the_exact_phrase_is_the_wipe_command(phrase: str) -> None:
    assert _command(phrase) == "wipe"


@pytest.mark.parametrize("phrase", NEAR_PHRASES)
def test_a_near_phrase_is_not(phrase: str) -> None:
    assert _command(phrase) != "wipe"


# The web chat ------------------------------------------------------------------------------------

class WebParent:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        page = client.get("/chat")
        assert page.status_code == 200

    def says(self, words: str) -> dict[str, Any]:
        response = self.client.post("/chat/api/messages",
                                    json={"text": words, "client_id": uuid.uuid4().hex})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def sees(self) -> list[dict[str, Any]]:
        response = self.client.get("/chat/api/messages")
        assert response.status_code == 200
        return list(response.json()["messages"])


def test_web_chat_deletes_at_once_and_says_so(client: TestClient, services: Services) -> None:
    parent = WebParent(client)
    parent.says("mijn baby slaapt zo slecht en ik ben kapot")
    parent.says("ik kan de huur deze maand niet betalen")
    assert len(conversations(services)) == 1
    answer = parent.says("Stop en wis!")
    # The page is told at once, with the server's own words: it can no longer read them from
    # the conversation, which is gone.
    assert answer["deleted"] is True
    assert answer["notice"] == [text(services, "delete_done")]
    assert parent.sees() == []
    assert not any(row.text == text(services, "delete_confirm") for row in outbox_rows(services))
    assert_all_gone(services)
    # Statistics stay: anonymous, no text.
    assert count(services, ContactFact) >= 1
    # Writing again starts afresh, with the welcome.
    again = parent.says("hoi")
    assert "deleted" not in again
    seen = parent.sees()
    assert [m["text"] for m in seen if m["from"] == "parent"] == ["hoi"]
    assert "112" in seen[-1]["text"]


def test_web_chat_in_english_gets_the_english_text(client: TestClient, services: Services) -> None:
    parent = WebParent(client)
    parent.says("Hello, I am pregnant and I need a midwife, where do I go?")
    answer = parent.says("stop en wis")
    assert answer["notice"] == [text(services, "delete_done", "en")]
    assert count(services, Conversation) == 0


def test_web_chat_near_phrase_still_asks(client: TestClient, services: Services) -> None:
    parent = WebParent(client)
    parent.says("mijn baby slaapt zo slecht")
    answer = parent.says("ik wil stoppen en alles wissen")
    assert "deleted" not in answer
    assert parent.sees()[-1]["text"] == text(services, "delete_confirm")
    [conversation] = conversations(services)
    assert conversation.awaiting == "confirm_delete"
    # The usual way still works, and the page is told in the same way.
    assert parent.says("ja")["notice"] == [text(services, "delete_done")]
    assert count(services, Conversation) == 0


def test_web_chat_while_waiting_for_a_choice_or_the_confirmation(
    client: TestClient, services: Services
) -> None:
    parent = WebParent(client)
    parent.says("ik wil graag met iemand praten")
    [conversation] = conversations(services)
    assert conversation.awaiting == "choose_queue"
    assert parent.says("stop en wis")["deleted"] is True  # not read as a choice
    assert count(services, Conversation) == 0

    parent.says("verwijder mijn gegevens")
    [conversation] = conversations(services)
    assert conversation.awaiting == "confirm_delete"
    assert parent.says("stop & wis")["deleted"] is True
    assert count(services, Conversation) == 0


def test_web_chat_while_queued_leaves_the_queue(client: TestClient, services: Services) -> None:
    parent = WebParent(client)
    parent.says("ik wil graag met iemand praten")
    parent.says("1")
    [conversation] = conversations(services)
    assert conversation.status is ConversationStatus.queued
    assert services.desk.index.waiting(QueueName.volunteer) == [conversation.id]
    assert parent.says("stop en wissen")["notice"] == [text(services, "delete_done")]
    assert services.desk.index.waiting(QueueName.volunteer) == []
    volunteer = person(services)
    assert services.desk.snapshot(volunteer).waiting == []
    assert services.desk.claim_next(volunteer) is None
    assert_all_gone(services)
    with services.factory() as session:
        fact = session.scalars(select(ContactFact)).one()
        assert fact.handed_over and fact.abandoned  # left before anyone picked up


# Telegram ----------------------------------------------------------------------------------------

class TelegramParent:
    """A parent in a private Telegram chat (the recorded text_message payload, refilled)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.chat_id = str(random.randrange(1_000_000_000, 9_999_999_999))
        self._next = random.randrange(100_000_000, 900_000_000)

    def says(self, words: str) -> None:
        raw = (TELEGRAM_PAYLOADS / "text_message.json").read_text(encoding="utf-8")
        data = json.loads(raw.replace(RECORDED_CHAT_ID, self.chat_id))
        self._next += 1
        data["update_id"] = self._next
        data["message"]["text"] = words
        response = self.client.post("/webhooks/telegram", json=data,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert response.status_code == 200 and response.json() == {"ok": True}, response.text

    def received(self, fake: FakeTelegram) -> list[str]:
        return [body for chat, body in fake.sent if chat == self.chat_id]


def test_telegram(client: TestClient, services: Services, fake_telegram: FakeTelegram) -> None:
    parent = TelegramParent(client)
    parent.says("mijn dochter eet bijna niets")
    deliver(services)
    assert parent.received(fake_telegram)
    parent.says("stop en wis.")
    deliver(services)
    assert parent.received(fake_telegram)[-1] == text(services, "delete_done")
    assert text(services, "delete_confirm") not in parent.received(fake_telegram)
    assert_all_gone(services)

    other = TelegramParent(client)
    other.says("mijn dochter eet bijna niets")
    deliver(services)
    before = len(other.received(fake_telegram))
    other.says("stop en wis alles")
    deliver(services)
    assert other.received(fake_telegram)[before:] == [text(services, "delete_confirm")]
    [conversation] = conversations(services)
    assert conversation.channel is Channel.telegram and conversation.awaiting == "confirm_delete"


# SMS through Twilio ------------------------------------------------------------------------------

def test_sms(client: TestClient, services: Services, fake_twilio: FakeTwilio,
             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    line = TwilioLine(client, fake_twilio)
    line.says(SMS_PARENT, "ik kan de huur deze maand niet betalen")
    deliver(services)
    line.says(SMS_PARENT, "STOP EN WIS")
    deliver(services)
    assert line.received(SMS_PARENT)[-1] == text(services, "delete_done")
    assert text(services, "delete_confirm") not in line.received(SMS_PARENT)
    assert_all_gone(services)

    line.says(OTHER_SMS_PARENT, "ik kan de huur deze maand niet betalen")
    deliver(services)
    before = len(line.received(OTHER_SMS_PARENT))
    line.says(OTHER_SMS_PARENT, "ik wil stoppen en alles wissen")
    deliver(services)
    assert line.received(OTHER_SMS_PARENT)[before:] == [text(services, "delete_confirm")]
    assert len(conversations(services)) == 1

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("huur deze maand", "STOP EN WIS", "stoppen en alles wissen",
                   SMS_PARENT, SMS_PARENT.lstrip("+"), OTHER_SMS_PARENT):
        assert secret not in logged


# While a person has the conversation -------------------------------------------------------------

def test_sms_while_a_person_has_it(client: TestClient, services: Services,
                                   fake_twilio: FakeTwilio) -> None:
    line = TwilioLine(client, fake_twilio)
    line.says(SMS_PARENT, "ik wil graag met iemand praten")
    line.says(SMS_PARENT, "1")
    [conversation] = conversations(services)
    assert conversation.status is ConversationStatus.queued
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    services.desk.claim(conversation.id, sanne)
    services.desk.reply(conversation.id, sanne, "Hoi, ik ben Sanne. Hoe gaat het nu?")
    deliver(services)
    assert line.received(SMS_PARENT)[-1] == "Hoi, ik ben Sanne. Hoe gaat het nu?"
    assert services.desk.index.claimed_by(conversation.id) == sanne.user_id
    mine = services.desk.snapshot(sanne).mine
    assert [item.conversation_id for item in mine] == [conversation.id]

    events = services.redis.pubsub(ignore_subscribe_messages=True)
    events.subscribe(channel(services.settings.redis_prefix))
    try:
        line.says(SMS_PARENT, "stop en wis")
        deliver(services)
        got: list[Event] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.type == "closed" for e in got):
            raw = events.get_message(timeout=0.5)  # None also for the subscribe confirmation
            if raw is not None:
                got.append(Event.from_json(raw["data"]))
    finally:
        events.close()

    # The parent is told, on their own phone, though a person had the conversation.
    assert line.received(SMS_PARENT)[-1] == text(services, "delete_done")
    assert_all_gone(services)
    # The desk lets go: no claim marker, nothing in anyone's lists, a clear answer to a reply,
    # and the dashboards were told it is gone.
    assert services.desk.index.claimed_by(conversation.id) is None
    snapshot = services.desk.snapshot(sanne)
    assert snapshot.mine == [] and snapshot.waiting == [] and snapshot.claimed_by_others == []
    with pytest.raises(NotFound):
        services.desk.reply(conversation.id, sanne, "Ben je er nog?")
    with pytest.raises(NotFound):
        services.desk.card(conversation.id, sanne)
    assert Event("closed", conversation_id=conversation.id) in got


def test_web_chat_while_a_professional_has_it(client: TestClient, services: Services) -> None:
    parent = WebParent(client)
    parent.says("ik wil graag met iemand praten")
    parent.says("2")
    [conversation] = conversations(services)
    assert conversation.queue is QueueName.professional
    professional = person(services, Role.professional)
    services.desk.start_shift(professional)
    assert services.desk.claim_next(professional) == conversation.id
    answer = parent.says("stop en wis")
    assert answer["deleted"] is True and answer["notice"] == [text(services, "delete_done")]
    assert parent.sees() == []
    assert services.desk.index.claimed_by(conversation.id) is None
    assert services.desk.snapshot(professional).mine == []
    assert_all_gone(services)
