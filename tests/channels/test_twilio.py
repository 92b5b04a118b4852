"""SMS and WhatsApp through Twilio: whole conversations through the real webhooks (signed the
way Twilio signs them), delivered by the worker to a fake Twilio REST API on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, update

from bot.channels.base import DeliveryError, MediaKind, OutboundMessage
from bot.channels.twilio import TwilioSender, bare_number, media_kind_of, split_body
from bot.config import Settings
from bot.storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    OutboxStatus,
    QueueName,
    utcnow,
)
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.channels.conftest import deliver, outbox_rows, pending
from tests.channels.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    EMPTY_TWIML,
    PUBLIC_BASE_URL,
    SMS_FROM,
    WHATSAPP_FROM,
    FakeTwilio,
    TwilioLine,
    iter_payloads,
    new_sid,
    payload,
    sign,
    twilio_settings,
)

PARENT = "+31612345678"
OTHER_PARENT = "+31687654321"
MESSAGING = "/webhooks/twilio/messaging"
STATUS = "/webhooks/twilio/status"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def tw_settings(settings: Settings, fake: FakeTwilio) -> Settings:
    return twilio_settings(settings, fake)


@pytest.fixture
def tw_services(tw_settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(tw_settings, triage=triage)
    yield built
    asyncio.run(built.close())


@pytest.fixture
def line(tw_settings: Settings, tw_services: Services, fake: FakeTwilio) -> Iterator[TwilioLine]:
    with TestClient(create_app(tw_settings, tw_services)) as client:
        yield TwilioLine(client, fake)


def parent_messages(services: Services) -> list[Message]:
    with services.factory() as session:
        return list(session.scalars(
            select(Message).where(Message.author == Author.parent).order_by(Message.created_at)))


def conversations(services: Services) -> list[Conversation]:
    with services.factory() as session:
        return list(session.scalars(select(Conversation).order_by(Conversation.created_at)))


def make_due(services: Services) -> None:
    """Time passes: every pending reply is due now (instead of waiting for the backoff)."""
    with services.factory() as session, session.begin():
        session.execute(update(Outbox).where(Outbox.status == OutboxStatus.pending)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def welcome(text: str) -> bool:
    return "Oudertelefoon" in text and "112" in text


# Whole conversations -------------------------------------------------------------------------


def test_sms_conversation(line: TwilioLine, tw_services: Services, fake: FakeTwilio) -> None:
    line.says(PARENT, "waar vind ik een verloskundige")
    assert fake.sent == []  # the webhook answers at once; replies go out through the worker
    assert deliver(tw_services) == 2
    texts = line.received(PARENT)
    assert len(texts) == 2 and welcome(texts[0]) and "Hier kun je terecht" in texts[1]
    for sent in fake.to(PARENT):
        assert (sent.to, sent.from_) == (PARENT, SMS_FROM)
        assert sent.status_callback == PUBLIC_BASE_URL + STATUS
        assert sent.content_sid is None

    line.says(PARENT, "ik kan de huur deze maand niet betalen")
    assert deliver(tw_services) >= 1
    texts = line.received(PARENT)
    assert "Hier kun je terecht" in texts[-1] and sum(welcome(t) for t in texts) == 1

    # Twilio reports the delivery; "sent" arriving after "delivered" changes nothing.
    for sent in fake.to(PARENT):
        assert line.report(sent, "sent").text == EMPTY_TWIML
        assert line.report(sent, "delivered").status_code == 200
        assert line.report(sent, "sent").status_code == 200
    rows = outbox_rows(tw_services)
    assert {r.provider_message_id for r in rows} == {m.sid for m in fake.to(PARENT)}
    assert all(r.status is OutboxStatus.sent and r.delivery_status == "delivered" for r in rows)
    assert all(r.address_encrypted is None for r in rows)  # wiped once sent
    [conversation] = conversations(tw_services)
    assert conversation.channel is Channel.sms


def test_whatsapp_conversation(line: TwilioLine, tw_services: Services, fake: FakeTwilio) -> None:
    line.says(OTHER_PARENT, "Hallo, ik ben zwanger en zoek een verloskundige in Amsterdam", whatsapp=True)
    deliver(tw_services)
    address = "whatsapp:" + OTHER_PARENT
    texts = line.received(address)
    assert len(texts) == 2 and welcome(texts[0]) and "Hier kun je terecht" in texts[1]
    assert fake.to(OTHER_PARENT) == []  # nothing went out as SMS
    assert {m.from_ for m in fake.to(address)} == {"whatsapp:" + WHATSAPP_FROM}
    for sent in fake.to(address):
        line.report(sent, "delivered")
        line.report(sent, "read")
    assert [r.delivery_status for r in outbox_rows(tw_services)] == ["read", "read"]
    [conversation] = conversations(tw_services)
    assert conversation.channel is Channel.whatsapp


def test_every_recorded_inbound_payload_is_taken(line: TwilioLine, tw_services: Services) -> None:
    inbound = [(name, data) for name, data in iter_payloads() if not name.startswith("status_")]
    assert len(inbound) >= 5
    for name, data in inbound:
        # A fresh id only: Redis remembers ids it saw in earlier runs (replays of deleted ones).
        sid = new_sid(data["MessageSid"][:2])
        data.update(MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
        response = line.post(MESSAGING, data)
        assert (response.status_code, response.text) == (200, EMPTY_TWIML), name
    stored = {m.provider_message_id: m for m in parent_messages(tw_services)}
    assert set(stored) == {data["MessageSid"] for _, data in inbound}
    by_name = {name: stored[data["MessageSid"]] for name, data in inbound}
    assert by_name["sms_emoji"].text == payload("sms_emoji")["Body"]
    assert by_name["whatsapp_image_caption"].media_kind == "photo"
    assert by_name["whatsapp_image_caption"].text == payload("whatsapp_image_caption")["Body"]
    assert by_name["whatsapp_voice"].media_kind == "voice"
    assert (by_name["whatsapp_location"].media_kind, by_name["whatsapp_location"].text) == ("location", "")
    assert {c.channel for c in conversations(tw_services)} == {Channel.sms, Channel.whatsapp}


def test_the_same_number_is_the_same_conversation_after_a_restart(
    tw_settings: Settings, triage: Triage, fake: FakeTwilio
) -> None:
    pseudonyms = []
    for text in ("mijn baby slaapt zo slecht", "hij wordt elke nacht drie keer wakker"):
        services = build_services(tw_settings, triage=triage)
        with TestClient(create_app(tw_settings, services)) as client:
            TwilioLine(client, fake).says(PARENT, text)
            TwilioLine(client, fake).says(PARENT, text, whatsapp=True)
            pseudonyms.append(services.vault.pseudonym("sms", PARENT))
        rows = conversations(services)
        asyncio.run(services.close())
    assert pseudonyms[0] == pseudonyms[1]
    # One conversation per channel, each holding both messages.
    assert sorted(c.channel.value for c in rows) == ["sms", "whatsapp"]
    assert {c.pseudonym for c in rows if c.channel is Channel.sms} == {pseudonyms[0]}


# Authentication -----------------------------------------------------------------------------


def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    data = line.inbound(PARENT, "mijn baby slaapt zo slecht")
    good = sign(PUBLIC_BASE_URL + MESSAGING, data)
    tampered = {**data, "Body": "iets anders"}
    attempts = [
        line.post(MESSAGING, data, unsigned=True),
        line.post(MESSAGING, data, signature="bm90IGEgc2lnbmF0dXJl"),
        line.post(MESSAGING, data, signature=sign(PUBLIC_BASE_URL + MESSAGING, data, "0" * 32)),
        line.post(MESSAGING, data, signed_url="http://testserver" + MESSAGING),  # not our public URL
        line.post(MESSAGING, tampered, signature=good),
        line.post(STATUS, payload("status_sms_delivered"), unsigned=True),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert parent_messages(tw_services) == [] and conversations(tw_services) == []
    assert outbox_rows(tw_services) == []
    # The same post, correctly signed, is taken.
    assert line.post(MESSAGING, data, signature=good).status_code == 200
    assert len(parent_messages(tw_services)) == 1


def test_a_sha256_signature_named_in_the_settings_header_is_checked(
    line: TwilioLine, tw_services: Services
) -> None:
    url = PUBLIC_BASE_URL + MESSAGING
    for algorithm, expected in (("HMAC_SHA256", 200), ("HMAC_MD5", 403)):
        data = line.inbound(PARENT, "mijn baby slaapt zo slecht")
        signature = sign(url, data, AUTH_TOKEN, "HMAC_SHA256")
        response = line.client.post(MESSAGING, data=data, headers={
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": f"key=webhooks_sharedkey_1,algorithm={algorithm}",
        })
        assert response.status_code == expected, algorithm
    assert len(parent_messages(tw_services)) == 1


def test_another_account_is_refused(line: TwilioLine, tw_services: Services) -> None:
    other = "AC" + "1" * 32
    response = line.post(MESSAGING, line.inbound(PARENT, "hoi", AccountSid=other))
    assert response.status_code == 403
    status = payload("status_sms_delivered", AccountSid=other)
    assert line.post(STATUS, status).status_code == 403
    assert conversations(tw_services) == []


def test_a_webhook_url_with_a_query_string_is_signed_with_it(
    line: TwilioLine, tw_services: Services
) -> None:
    data = line.inbound(PARENT, "mijn baby slaapt zo slecht")
    path = MESSAGING + "?source=nl-sms&v=2"
    assert line.post(path, data).status_code == 200  # signed over base + path + query
    without_query = line.post(path, line.inbound(PARENT, "hoi"), signed_url=PUBLIC_BASE_URL + MESSAGING)
    assert without_query.status_code == 403
    assert len(parent_messages(tw_services)) == 1


def test_without_message_sid_or_from_the_request_is_bad(line: TwilioLine, tw_services: Services) -> None:
    data = line.inbound(PARENT, "hoi")
    for missing in ("MessageSid", "From"):
        partial = {k: v for k, v in data.items() if k != missing}
        assert line.post(MESSAGING, partial).status_code == 400
    assert conversations(tw_services) == []


# Replays, media, odd texts ------------------------------------------------------------------


def test_a_replayed_message_is_stored_once_and_answered_once(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    sid = new_sid()
    line.says(PARENT, "waar vind ik een verloskundige", sid=sid)
    deliver(tw_services)
    line.says(PARENT, "waar vind ik een verloskundige", sid=sid)  # Twilio retries the webhook
    deliver(tw_services)
    assert len(parent_messages(tw_services)) == 1
    assert len(line.received(PARENT)) == 2  # welcome + answer, once


def test_media_get_the_text_only_reply_and_are_kept(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    line.says(OTHER_PARENT, whatsapp=True, template="whatsapp_voice")
    deliver(tw_services)
    texts = line.received("whatsapp:" + OTHER_PARENT)
    assert welcome(texts[0]) and "Ik kan alleen tekst lezen" in texts[-1]
    line.says(OTHER_PARENT, whatsapp=True, template="whatsapp_location")
    deliver(tw_services)
    assert "Ik kan alleen tekst lezen" in line.received("whatsapp:" + OTHER_PARENT)[-1]
    # A photo with a caption: the caption is read and answered; the photo's kind is kept.
    line.says(OTHER_PARENT, "waar vind ik een verloskundige", whatsapp=True, template="whatsapp_image_caption")
    deliver(tw_services)
    assert "Hier kun je terecht" in line.received("whatsapp:" + OTHER_PARENT)[-1]
    # An MMS picture on SMS, without text.
    line.says(PARENT, NumMedia="1", MediaContentType0="image/png",
              MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1")
    deliver(tw_services)
    assert "Ik kan alleen tekst lezen" in line.received(PARENT)[-1]
    kept = [(m.channel.value, m.media_kind, m.text) for m in parent_messages(tw_services)]
    assert kept == [
        ("whatsapp", "voice", ""),
        ("whatsapp", "location", ""),  # the coordinates and the address are not kept
        ("whatsapp", "photo", "waar vind ik een verloskundige"),
        ("sms", "photo", ""),
    ]


def test_media_kinds() -> None:
    assert media_kind_of("image/jpeg") is MediaKind.photo
    assert media_kind_of("audio/ogg") is MediaKind.voice
    assert media_kind_of("video/mp4") is MediaKind.video
    assert media_kind_of("application/pdf") is MediaKind.document
    assert media_kind_of("text/vcard") is MediaKind.document
    assert bare_number(" whatsapp:+31612345678 ") == "+31612345678"
    assert bare_number("+31612345678") == "+31612345678"


def test_emoji_are_kept_and_answered(line: TwilioLine, tw_services: Services) -> None:
    line.says(PARENT, "😭😭😭")
    line.says(PARENT, "Ik ben zo moe 😭😭 en mijn dochter huilt de hele nacht 👶💔")
    deliver(tw_services)
    assert [m.text for m in parent_messages(tw_services)][-1] == \
        "Ik ben zo moe 😭😭 en mijn dochter huilt de hele nacht 👶💔"
    assert len(line.received(PARENT)) >= 3


def test_a_very_long_message_is_stored_and_answered(line: TwilioLine, tw_services: Services) -> None:
    text = ("ik weet niet waar ik moet beginnen, het is allemaal te veel. " * 200)[:10_000]
    line.says(PARENT, text)
    deliver(tw_services)
    [stored] = parent_messages(tw_services)
    assert stored.text == text
    texts = line.received(PARENT)
    assert texts and all(len(t) <= 1600 for t in texts)


def test_english(line: TwilioLine, tw_services: Services) -> None:
    line.says(PARENT, "Hello, I am pregnant and I need a midwife, where do I go?", whatsapp=True)
    deliver(tw_services)
    texts = line.received("whatsapp:" + PARENT)
    assert texts[0].startswith("Hi, this is the Oudertelefoon")
    assert "Where you can get help" in texts[-1]


def test_delete_my_data(line: TwilioLine, tw_services: Services) -> None:
    line.says(PARENT, "mijn baby slaapt zo slecht")
    line.says(PARENT, "verwijder mijn gegevens")
    deliver(tw_services)
    assert "verwijderen" in line.received(PARENT)[-1]
    yes = new_sid()
    line.says(PARENT, "ja", sid=yes)
    with tw_services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0
    deliver(tw_services)
    assert line.received(PARENT)[-1].startswith("Alles is verwijderd")
    rows = outbox_rows(tw_services)
    assert all(r.conversation_id is None and r.address_encrypted is None for r in rows)
    # Twilio redelivers the "ja" late: nothing comes back, nothing is sent again.
    line.says(PARENT, "ja", sid=yes)
    assert conversations(tw_services) == [] and pending(tw_services) == 0


def test_acute_message_gets_emergency_guidance_first(
    line: TwilioLine, tw_services: Services
) -> None:
    line.says(PARENT, "ik wil niet meer wakker worden")
    deliver(tw_services)
    texts = line.received(PARENT)
    assert texts[0].startswith("Denk je eraan om jezelf iets aan te doen") and "113" in texts[0]
    [conversation] = conversations(tw_services)
    assert conversation.status is ConversationStatus.queued
    assert conversation.queue is QueueName.professional and conversation.priority == 0


# Delivery: Twilio down, refusals, long replies ----------------------------------------------------


def test_a_reply_after_a_delivered_one_is_not_delayed(line: TwilioLine, tw_services: Services) -> None:
    line.says(PARENT, "mijn baby slaapt zo slecht")
    deliver(tw_services)
    line.says(PARENT, "ik kan de huur deze maand niet betalen")
    assert deliver(tw_services) >= 1  # REPLY_INTERVAL_SECONDS is 0 in tests


def test_twilio_down_for_a_while_delivers_later_once(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    fake.fail_next(3, status=503)
    line.says(PARENT, "waar vind ik een verloskundige")
    for _ in range(3):
        assert deliver(tw_services) == 0
        make_due(tw_services)
    assert [r.status for r in outbox_rows(tw_services)] == [OutboxStatus.pending] * 2
    assert outbox_rows(tw_services)[0].attempts == 3
    assert deliver(tw_services) == 2
    assert fake.calls == 5
    texts = line.received(PARENT)
    assert len(texts) == 2 and welcome(texts[0]) and "Hier kun je terecht" in texts[1]
    make_due(tw_services)
    assert deliver(tw_services) == 0 and len(fake.sent) == 2  # nothing twice


def test_a_permanent_refusal_fails_and_is_not_retried(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    fake.fail_next(2, status=400, code=21610)  # the parent texted STOP: unsubscribed
    line.says(PARENT, "waar vind ik een verloskundige")
    for _ in range(3):
        deliver(tw_services)
        make_due(tw_services)
    rows = outbox_rows(tw_services)
    assert [r.status for r in rows] == [OutboxStatus.failed] * 2
    assert all("21610" in (r.last_error or "") and PARENT not in (r.last_error or "") for r in rows)
    assert all(r.address_encrypted is None for r in rows)
    assert fake.calls == 2 and fake.sent == []


def test_an_invalid_number_error_does_not_leak_the_number(
    tw_settings: Settings, fake: FakeTwilio
) -> None:
    fake.fail_next(1, status=400, code=21211)  # Twilio's message quotes the number

    async def run() -> DeliveryError:
        sender = TwilioSender(tw_settings)
        try:
            with pytest.raises(DeliveryError) as caught:
                await sender.send(OutboundMessage("o1", Channel.sms, PARENT, "hoi"))
            return caught.value
        finally:
            await sender.close()

    error = asyncio.run(run())
    assert error.retryable is False and "21211" in str(error) and "612345678" not in str(error)


def test_network_errors_and_rate_limits_are_retryable(tw_settings: Settings, fake: FakeTwilio) -> None:
    async def attempt(settings: Settings) -> bool:
        sender = TwilioSender(settings, timeout=2.0)
        try:
            await sender.send(OutboundMessage("o1", Channel.sms, PARENT, "hoi"))
        except DeliveryError as error:
            return error.retryable
        finally:
            await sender.close()
        raise AssertionError("expected a DeliveryError")

    fake.fail_next(1, status=429, code=20429)
    assert asyncio.run(attempt(tw_settings)) is True
    fake.fail_next(1, status=500)
    assert asyncio.run(attempt(tw_settings)) is True
    # Nobody listening: connection refused.
    with FakeTwilio() as gone:
        closed_base = gone.base_url
    assert asyncio.run(attempt(tw_settings.model_copy(update={"twilio_api_base": closed_base}))) is True
    # Wrong credentials are not fixed by trying again.
    wrong = tw_settings.model_copy(update={"twilio_auth_token": SecretStr("0" * 32)})
    assert asyncio.run(attempt(wrong)) is False
    assert fake.sent == []


def test_a_long_sms_reply_goes_out_in_parts_in_order_and_a_retry_sends_only_the_rest(
    tw_settings: Settings, fake: FakeTwilio
) -> None:
    text = " ".join(f"zin {i} van een heel lang antwoord 👶." for i in range(300))
    fake.fail_next(1, status=503, after=1)

    async def run() -> str | None:
        sender = TwilioSender(tw_settings)
        message = OutboundMessage("o-long", Channel.sms, PARENT, text)
        try:
            with pytest.raises(DeliveryError):
                await sender.send(message)
            return (await sender.send(message)).provider_message_id
        finally:
            await sender.close()

    last_sid = asyncio.run(run())
    parts = [m.body or "" for m in fake.to(PARENT)]
    assert len(parts) == len(split_body(text)) >= 3
    assert all(len(p.encode("utf-16-le")) // 2 <= 1600 for p in parts)
    assert " ".join(parts) == text  # in order, nothing lost, nothing twice
    assert last_sid == fake.to(PARENT)[-1].sid


def test_split_body() -> None:
    assert split_body("kort") == ["kort"]
    assert split_body("") == [""]
    assert split_body("a" * 3500) == ["a" * 1600, "a" * 1600, "a" * 300]
    emoji = "😭" * 1000  # two UTF-16 units each, as Twilio counts
    assert [len(p) for p in split_body(emoji)] == [800, 200]


# WhatsApp's 24-hour window --------------------------------------------------------------------


def _a_person_replies_a_day_later(services: Services) -> None:
    """The parent's last message is 25 hours old when a volunteer's reply is queued."""
    with services.factory() as session, session.begin():
        conversation = session.scalars(select(Conversation)).one()
        conversation.last_inbound_at = utcnow() - timedelta(hours=25)
        session.add(Outbox(conversation_id=conversation.id, channel=conversation.channel,
                           address_encrypted=conversation.address_encrypted,
                           text="Hoi, ik ben Sanne, vrijwilliger. Hoe gaat het nu met je?"))


def test_whatsapp_outside_24_hours_without_template_is_undeliverable(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    line.says(PARENT, "waar vind ik een verloskundige", whatsapp=True)
    deliver(tw_services)
    before = len(fake.sent)
    _a_person_replies_a_day_later(tw_services)
    deliver(tw_services)
    assert len(fake.sent) == before
    late = outbox_rows(tw_services)[-1]
    assert late.status is OutboxStatus.undeliverable and late.address_encrypted is None


def test_whatsapp_outside_24_hours_sends_the_template(
    settings: Settings, triage: Triage, fake: FakeTwilio
) -> None:
    template = "HX" + "b" * 32
    s = twilio_settings(settings, fake, twilio_whatsapp_template_sid=template)
    services = build_services(s, triage=triage)
    try:
        with TestClient(create_app(s, services)) as client:
            twilio = TwilioLine(client, fake)
            twilio.says(PARENT, "waar vind ik een verloskundige", whatsapp=True)
            deliver(services)
            assert all(m.body and not m.content_sid for m in fake.sent)  # inside the window: text
            _a_person_replies_a_day_later(services)
            assert deliver(services) == 1
            last = fake.sent[-1]
            assert (last.to, last.content_sid, last.body) == ("whatsapp:" + PARENT, template, None)
            assert last.from_ == "whatsapp:" + WHATSAPP_FROM
            twilio.report(last, "delivered")
        late = outbox_rows(services)[-1]
        assert late.status is OutboxStatus.sent and late.delivery_status == "delivered"
    finally:
        asyncio.run(services.close())


# Status callbacks ------------------------------------------------------------------------------


def test_a_status_for_an_unknown_message_is_ignored(line: TwilioLine, tw_services: Services) -> None:
    response = line.post(STATUS, payload("status_sms_delivered"))
    assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    response = line.post(STATUS, payload("status_sms_undelivered", MessageStatus="exploded"))
    assert response.status_code == 200
    assert outbox_rows(tw_services) == []


def test_an_undelivered_status_is_recorded(
    line: TwilioLine, tw_services: Services, fake: FakeTwilio
) -> None:
    line.says(PARENT, "hoi")
    deliver(tw_services)
    [sent] = fake.to(PARENT)
    line.report(sent, "undelivered")
    [row] = outbox_rows(tw_services)
    assert row.delivery_status == "undelivered"


def test_the_sender_refuses_without_a_from_number(tw_settings: Settings) -> None:
    async def run() -> bool:
        sender = TwilioSender(tw_settings.model_copy(update={"twilio_sms_from": None}))
        try:
            await sender.send(OutboundMessage("o1", Channel.sms, PARENT, "hoi"))
        except DeliveryError as error:
            return error.retryable
        finally:
            await sender.close()
        raise AssertionError("expected a DeliveryError")

    assert asyncio.run(run()) is False

