"""Bad input gets a clear error and loses nothing (issue 12): a message with odd characters is
stored and answered on every channel (web chat, SMS, WhatsApp, Telegram). NUL (which PostgreSQL
cannot store) and other control characters are removed, tab and line breaks kept, a lone
surrogate (half an emoji) becomes U+FFFD, everything else (right-to-left text, emoji with
joiners, combining marks, 10,000 characters) is kept exactly."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select

from bot.channels.base import InvalidInput, clean_provider_id, clean_text
from bot.config import Settings
from bot.storage.models import Channel, Message, Outbox
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.channels.fake_telegram import FakeTelegram
from tests.channels.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_BASE_URL,
    SMS_FROM,
    WHATSAPP_FROM,
    FakeTwilio,
    new_sid,
    sign,
)

TG_SECRET = "odd-chars-secret_0123456789abcdef"
MESSAGING = "/webhooks/twilio/messaging"

# (what the parent sends, what must be stored)
ODD_TEXTS: list[tuple[str, str]] = [
    ("mijn baby\x00 slaapt zo slecht", "mijn baby slaapt zo slecht"),
    ("\x00ik kan de huur\x07 niet\x1b betalen\x7f\x85", "ik kan de huur niet betalen"),
    ("ik ben bang \ud83d voor mijn partner", "ik ben bang \ufffd voor mijn partner"),
    ("regel een\nregel\ttwee\r\nklaar", "regel een\nregel\ttwee\r\nklaar"),
    ("أنا خائفة على طفلي \u200f", "أنا خائفة على طفلي \u200f"),
    ("מה אני עושה \u202bעכשיו\u202c", "מה אני עושה \u202bעכשיו\u202c"),
    ("👨‍👩‍👧 we hebben ruzie 😢🏳️‍🌈", "👨‍👩‍👧 we hebben ruzie 😢🏳️‍🌈"),
    ("Z̷a̸l̵g̶o̴ zorgen", "Z̷a̸l̵g̶o̴ zorgen"),
    ("schulden " * 1250, "schulden " * 1250),  # 11,250 characters
    ("\ufeff\u200b\u2028 ik wil praten \uffff", "\ufeff\u200b\u2028 ik wil praten \uffff"),
]


# The normalisation itself -------------------------------------------------------------------

@given(st.text(alphabet=st.characters(codec=None), max_size=200))
@hsettings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_clean_text_keeps_everything_but_controls_and_surrogates(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # always storable and sendable
    assert "\x00" not in cleaned
    assert all(c in "\t\n\r" or unicodedata.category(c) not in ("Cc", "Cs") for c in cleaned)
    assert clean_text(cleaned) == cleaned
    if all(c in "\t\n\r" or unicodedata.category(c) not in ("Cc", "Cs") for c in text):
        assert cleaned == text  # nothing else is touched


def test_provider_ids_the_column_cannot_hold_are_refused() -> None:
    assert clean_provider_id("SM" + "a" * 32) == "SM" + "a" * 32
    assert clean_provider_id("x" * 128) == "x" * 128
    for bad in ("x" * 129, "SM\x00abc", "SM\ud83d", "a\nb"):
        with pytest.raises(InvalidInput) as refused:
            clean_provider_id(bad)
        assert bad not in str(refused.value)


# Every channel, through its real endpoint ----------------------------------------------------

@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeTelegram]]:
    with FakeTwilio() as twilio, FakeTelegram() as telegram:
        yield twilio, telegram


def all_channels(settings: Settings, twilio: FakeTwilio, telegram: FakeTelegram) -> Settings:
    """The test settings with every channel on (pointed at the fakes), no web chat limits."""
    update: dict[str, Any] = {
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_sms_from": SMS_FROM,
        "twilio_whatsapp_from": WHATSAPP_FROM,
        "twilio_api_base": twilio.base_url,
        "telegram_bot_token": SecretStr(telegram.token),
        "telegram_webhook_secret": SecretStr(TG_SECRET),
        "telegram_api_base": telegram.url,
    }
    for name in ("web_chat_per_chat", "web_chat_per_address", "web_chat_new_per_address"):
        if name in Settings.model_fields:
            update[name] = 1_000_000  # the fuzz is one address; the limits are tested elsewhere
    return settings.model_copy(update=update)


@pytest.fixture
def odd_services(settings: Settings, triage: Triage,
                 fakes: tuple[FakeTwilio, FakeTelegram]) -> Iterator[Services]:
    built = build_services(all_channels(settings, *fakes), triage=triage)
    yield built
    asyncio.run(built.close())


@pytest.fixture
def odd_client(odd_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(odd_services.settings, odd_services),
                    base_url=PUBLIC_BASE_URL) as client:
        yield client


# Fresh numbers, chat and update ids (not `random`: hypothesis seeds it alike for every example,
# and a real Redis shared between test runs remembers update ids).
_NUMBERS = itertools.count(secrets.randbelow(2**40) * 1000)


class Channels:
    """Sends one message as a new parent on a channel, the way that channel's provider does."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def web(self, text: str, *, raw: bytes | None = None) -> Any:
        self.client.cookies.clear()  # a new parent: a new chat session
        page = self.client.get("/chat")
        token = page.cookies.get("ot_chat")
        body = raw if raw is not None else json.dumps({"text": text, "client_id": uuid.uuid4().hex})
        return self.client.post("/chat/api/messages", content=body,
                                headers={"content-type": "application/json",
                                         "cookie": f"ot_chat={token}"})

    def twilio(self, text: str, *, whatsapp: bool = False, sid: str | None = None,
               **extra: str) -> Any:
        number = f"+316{next(_NUMBERS) % 10**8:08d}"
        prefix = "whatsapp:" if whatsapp else ""
        form = {"AccountSid": ACCOUNT_SID, "MessageSid": sid or new_sid(), "From": prefix + number,
                "To": prefix + (WHATSAPP_FROM if whatsapp else SMS_FROM), "Body": text,
                "NumMedia": "0", **extra}
        return self.client.post(MESSAGING, data=form, headers={
            "X-Twilio-Signature": sign(PUBLIC_BASE_URL + MESSAGING, form)})

    def telegram(self, text: str, *, raw: bytes | None = None) -> Any:
        chat = 1_000_000_000 + next(_NUMBERS) % 9_000_000_000
        update = {"update_id": next(_NUMBERS), "message": {
            "message_id": 1, "date": 1_700_000_000, "text": text,
            "chat": {"id": chat, "type": "private", "first_name": "Ouder"},
            "from": {"id": chat, "is_bot": False, "first_name": "Ouder"}}}
        body = raw if raw is not None else json.dumps(update).encode("utf-8")
        return self.client.post("/webhooks/telegram", content=body, headers={
            "X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "content-type": "application/json"})

    def send(self, channel: str, text: str) -> Any:
        if channel == "sms":
            return self.twilio(text)
        if channel == "whatsapp":
            return self.twilio(text, whatsapp=True)
        return getattr(self, channel)(text)


def answered(services: Services, stored_text: str, channel: Channel) -> bool:
    """The message is stored with exactly this text and has a reply queued (or sent)."""
    with services.factory() as session:
        ids = session.scalars(select(Message.id).where(Message.channel == channel,
                                                       Message.text == stored_text)).all()
        return bool(ids) and all(
            session.scalar(select(Outbox.id).where(Outbox.reply_to == i).limit(1)) is not None
            for i in ids)


@pytest.mark.parametrize("channel", ["web", "sms", "whatsapp", "telegram"])
def test_odd_characters_are_stored_and_answered(channel: str, odd_client: TestClient,
                                                odd_services: Services) -> None:
    channels = Channels(odd_client)
    for sent, stored in ODD_TEXTS:
        if channel in ("sms", "whatsapp") and any("\ud800" <= c <= "\udfff" for c in sent):
            continue  # Twilio posts UTF-8: half an emoji cannot arrive (its bytes become U+FFFD)
        response = channels.send(channel, sent)
        assert response.status_code in (200, 202), (response.status_code, response.text)
        assert answered(odd_services, stored[:20_000], Channel(channel)), repr(sent[:60])


def test_half_an_emoji_as_raw_bytes_or_escape_is_kept(odd_client: TestClient,
                                                      odd_services: Services) -> None:
    """What a broken client sends: the escape "\\ud83d" (valid JSON) or its UTF-8 bytes."""
    channels = Channels(odd_client)
    escape = b'{"text": "ik ben boos \\ud83d op hem", "client_id": "' + uuid.uuid4().hex.encode() + b'"}'
    raw = b'{"text": "ik ben verdrietig \xed\xa0\xbd nu", "client_id": "' + uuid.uuid4().hex.encode() + b'"}'
    assert channels.web("", raw=escape).status_code == 202
    assert channels.web("", raw=raw).status_code == 202
    assert answered(odd_services, "ik ben boos \ufffd op hem", Channel.web)
    assert answered(odd_services, "ik ben verdrietig \ufffd nu", Channel.web)
    tg = (b'{"update_id": 77, "message": {"message_id": 1, "date": 1, "text": "help \\udc00 mij", '
          b'"chat": {"id": 4242424242, "type": "private", "first_name": "A"}}}')
    assert channels.telegram("", raw=tg).status_code == 200
    assert answered(odd_services, "help \ufffd mij", Channel.telegram)


def test_bodies_that_are_not_json_get_a_clear_error(odd_client: TestClient,
                                                    odd_services: Services) -> None:
    channels = Channels(odd_client)
    cid = uuid.uuid4().hex.encode()
    for body, status in [
        (b'{"text": "hoi", "client_id": "' + cid + b'"', 422),  # cut off
        (b'{"text": NaN, "client_id": "' + cid + b'"}', 422),
        (b'{"text": Infinity, "client_id": "' + cid + b'"}', 422),
        (b'{"text": "hoi", "client_id": -Infinity}', 422),
        (b'{"text": "caf\xe9", "client_id": "' + cid + b'"}', 400),  # latin-1, not UTF-8
        (b"\xff\xfe\x00\x00", 422),  # a UTF-32 byte order mark, then nothing: not JSON
        (b"[" * 5000 + b"]" * 5000, 400),  # nested too deep to parse
        (b'{"text": "' + b"a" * 100_001 + b'", "client_id": "' + cid + b'"}', 422),
    ]:
        response = channels.web("", raw=body)
        assert response.status_code == status, (body[:40], response.status_code, response.text[:300])
        assert "input" not in response.json()["detail"][0] if status == 422 else True
    # Telegram: not an update.
    for body in [b'{"update_id": ' + b"9" * 5000 + b"}", b'{"update_id": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                 b'{"update_id": -1}', b'{"update_id": 1e400}', b"\xff", b'{"update_id": NaN}']:
        assert channels.telegram("", raw=body).status_code == 400, body[:40]
    # Twilio: a MessageSid longer than Twilio's (and our column) is refused, nothing stored.
    assert channels.twilio("ik kan niet meer", sid="SM" + "a" * 200).status_code == 400
    assert channels.twilio("ik kan niet meer", sid="SM\x00" + "a" * 31).status_code == 400
    with odd_services.factory() as session:
        assert session.scalar(select(Message.id).where(Message.text == "ik kan niet meer")) is None
    # And nothing got in the way of the next parent.
    assert channels.web("ik kan de huur niet betalen").status_code == 202
    assert answered(odd_services, "ik kan de huur niet betalen", Channel.web)


def test_the_phone_line_takes_odd_words_and_refuses_odd_call_sids(odd_client: TestClient,
                                                                 odd_services: Services) -> None:
    def post(path: str, form: dict[str, str]) -> Any:
        form = {"AccountSid": ACCOUNT_SID, "From": "+31612345678", "To": SMS_FROM, **form}
        return odd_client.post(path, data=form, headers={
            "X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, form)})

    call = "CA" + secrets.token_hex(16)
    assert post("/webhooks/twilio/voice", {"CallSid": call}).status_code == 200
    said = post("/webhooks/twilio/voice/gather?attempt=1&lang=nl",
                {"CallSid": call, "SpeechResult": "mijn baby\x00 huilt de hele nacht",
                 "Confidence": "0.9"})
    assert said.status_code == 200, said.text
    with odd_services.factory() as session:
        assert session.scalar(select(Message.id).where(
            Message.channel == Channel.phone, Message.text == "mijn baby huilt de hele nacht"))
    # A CallSid Twilio would never send: a clear 400, also where it is only looked up.
    for sid in ("CA\x00" + "a" * 32, "CA" + "a" * 100):
        assert post("/webhooks/twilio/voice", {"CallSid": sid}).status_code == 400
        assert post("/webhooks/twilio/voice/status",
                    {"CallSid": sid, "CallStatus": "completed"}).status_code == 400
