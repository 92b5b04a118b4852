"""The telephone line: signed Twilio Voice webhooks for every path of a call, the TwiML parsed as
XML and asserted verb by verb and attribute by attribute (bot.channels.voice)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from bot.accounts.sessions import Person
from bot.channels import voice
from bot.config import REPO_ROOT, Settings
from bot.storage.models import (
    AuditLog,
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Handoff,
    Message,
    Outbox,
    QueueName,
    Risk,
    Role,
    Shift,
    User,
    utcnow,
)
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app, get_services
from tests.channels.conftest import deliver
from tests.channels.fake_twilio import (
    ACCOUNT_SID,
    PUBLIC_BASE_URL,
    SMS_FROM,
    FakeTwilio,
    new_sid,
    sign,
    twilio_settings,
)
from tests.people import person

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "twilio" / "voice"
CALLER = "+31612345678"
LINE = "+31203699999"  # our Twilio number, as in the recorded payloads
VOLUNTEER_PHONE = "+31611111111"
SECOND_PHONE = "+31622222222"
PROFESSIONAL_PHONE = "+31633333333"
BASE = PUBLIC_BASE_URL + voice.VOICE_PATH

BABY = "Mijn baby slaapt zo slecht en ik ben zo moe."
SUICIDE = "ik wil niet meer leven, ik wil er een eind aan maken"
VIOLENCE = "mijn man slaat me en ik ben bang"
ENGLISH = "I feel so lonely and sad, I want to talk to someone"


def closed_hours() -> str:
    """Opening hours that do not include the present moment (one hour, two hours from now)."""
    local = datetime.now(ZoneInfo("Europe/Amsterdam"))
    start = (local.hour + 2) % 24
    return f"{start:02d}:00-{start + 1:02d}:00"


def recorded(name: str, **fields: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    data.update(fields)
    return data


class Caller:
    """Twilio on one call: signed form posts to the voice webhooks, TwiML parsed back."""

    def __init__(self, client: TestClient, number: str = CALLER) -> None:
        self.client = client
        self.number = number
        self.sid = new_sid("CA")

    def post(self, url: str, params: dict[str, str], *, signature: str | None = None) -> Response:
        """A form post to an absolute URL we handed to Twilio (signed over exactly that URL)."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"X-Twilio-Signature": signature if signature is not None else sign(url, params)}
        return self.client.post(path, data=params, headers=headers)

    def fields(self, name: str, **extra: str) -> dict[str, str]:
        return recorded(name, CallSid=self.sid, From=self.number, Caller=self.number, **extra)

    def twiml(self, url: str, params: dict[str, str]) -> ET.Element:
        response = self.post(url, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        root = ET.fromstring(response.content)
        assert root.tag == "Response"
        return root

    def dials(self) -> ET.Element:
        return self.twiml(BASE, self.fields("incoming_call"))

    def says(self, text: str, *, url: str | None = None, confidence: str = "0.91") -> ET.Element:
        return self.twiml(url or gather_url(), self.fields("gather_speech", SpeechResult=text,
                                                           Confidence=confidence))

    def presses(self, digits: str, url: str | None = None) -> ET.Element:
        return self.twiml(url or gather_url(), self.fields("gather_digits", Digits=digits))

    def silent(self, url: str) -> ET.Element:
        return self.twiml(url, self.fields("gather_empty"))


def gather_url(attempt: int = 1, lang: str = "nl", mode: str = "") -> str:
    url = f"{BASE}/gather?attempt={attempt}&lang={lang}"
    return url + (f"&mode={mode}" if mode else "")


def tags(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_say(node: ET.Element, lang: str, *contains: str) -> None:
    assert node.tag == "Say"
    assert node.get("language") == lang
    for part in contains:
        assert part in (node.text or ""), (part, node.text)


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


def _services(settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(settings, triage=triage)
    yield built
    asyncio.run(built.close())


def _client(settings: Settings, services: Services) -> Iterator[TestClient]:
    app = create_app(settings, services)
    if not any(getattr(route, "path", None) == voice.VOICE_PATH for route in app.routes):
        app.include_router(voice.build_router(get_services))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def open_settings(settings: Settings, fake: FakeTwilio) -> Settings:
    return twilio_settings(settings, fake, volunteer_hours="00:00-24:00",
                           professional_hours="00:00-24:00")


@pytest.fixture
def closed_settings(settings: Settings, fake: FakeTwilio) -> Settings:
    hours = closed_hours()
    return twilio_settings(settings, fake, volunteer_hours=hours, professional_hours=hours)


@pytest.fixture
def services(open_settings: Settings, triage: Triage) -> Iterator[Services]:
    yield from _services(open_settings, triage)


@pytest.fixture
def client(open_settings: Settings, services: Services) -> Iterator[TestClient]:
    yield from _client(open_settings, services)


@pytest.fixture
def closed_services(closed_settings: Settings, triage: Triage) -> Iterator[Services]:
    yield from _services(closed_settings, triage)


@pytest.fixture
def closed_client(closed_settings: Settings, closed_services: Services) -> Iterator[TestClient]:
    yield from _client(closed_settings, closed_services)


def on_shift(services: Services, role: Role, phone: str | None) -> str:
    """A volunteer or professional on shift, with their own number for calls (encrypted)."""
    return on_shift_person(services, role, phone).user_id


def on_shift_person(services: Services, role: Role, phone: str | None) -> Person:
    someone = person(services, role)
    with services.factory() as session, session.begin():
        user = session.get(User, someone.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt(phone) if phone else None
        session.add(Shift(user_id=user.id, started_at=utcnow(),
                          queue=QueueName.volunteer if role is Role.volunteer else QueueName.professional))
    return someone


def conversation_of(services: Services) -> Conversation:
    with services.factory() as session:
        rows = list(session.scalars(select(Conversation).where(Conversation.channel == Channel.phone)))
        assert len(rows) == 1
        session.expunge_all()
        return rows[0]


def parent_texts(services: Services) -> list[str]:
    with services.factory() as session:
        return [m.text for m in session.scalars(select(Message).where(
            Message.author == Author.parent).order_by(Message.created_at))]


def audit(services: Services, action: str) -> list[AuditLog]:
    with services.factory() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


# The greeting ---------------------------------------------------------------------------------


def test_incoming_call_greets_and_gathers_speech_or_a_key(client: TestClient) -> None:
    root = Caller(client).dials()
    assert tags(root) == ["Say", "Gather"]
    assert_say(root[0], "nl-NL", "Oudertelefoon", "anoniem", "1 1 2", "30 dagen")
    gather = root[1]
    assert gather.get("input") == "speech dtmf"
    assert gather.get("language") == "nl-NL"
    assert gather.get("action") == gather_url()
    assert gather.get("method") == "POST"
    assert gather.get("speechTimeout") == "auto"
    assert gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "true"
    assert tags(gather) == ["Say"]
    assert_say(gather[0], "nl-NL", "1 voor een vrijwilliger", "2 voor een hulpverlener",
               "3 voor informatie", "press 9")


@pytest.mark.parametrize("path", [voice.VOICE_PATH, voice.GATHER_PATH, voice.CHOICE_PATH,
                                  voice.WHISPER_PATH, voice.WHISPER_ANSWER_PATH,
                                  voice.DIAL_STATUS_PATH, voice.WAIT_PATH, voice.CALL_STATUS_PATH])
def test_a_bad_or_missing_signature_is_refused(client: TestClient, services: Services,
                                               path: str) -> None:
    caller = Caller(client)
    fields = caller.fields("gather_speech", SpeechResult=BABY)
    url = PUBLIC_BASE_URL + path
    assert caller.post(url, fields, signature=sign(url, fields, "0" * 32)).status_code == 403
    assert caller.post(url, fields, signature="").status_code == 403
    tampered = sign(url, fields)
    assert caller.post(url, {**fields, "From": "+31699999999"}, signature=tampered).status_code == 403
    assert parent_texts(services) == []


# Acute ------------------------------------------------------------------------------------------


def test_acute_with_nobody_on_duty_repeats_the_guidance_and_offers_113(
        client: TestClient, services: Services, open_settings: Settings) -> None:
    caller = Caller(client)
    caller.dials()
    root = caller.says(SUICIDE)
    assert tags(root) == ["Say", "Say", "Gather", "Say", "Hangup"]
    assert_say(root[0], "nl-NL", "1 1 3", "0 8 0 0, 0 1 1 3", "1 1 2")
    assert root[1].text == root[0].text  # the guidance, repeated
    gather = root[2]
    assert (gather.get("input"), gather.get("numDigits")) == ("dtmf", "1")
    action = query(gather.get("action") or "")
    assert (action["mode"], action["target"], action["lang"]) == ("acute", "113", "nl")
    assert_say(gather[0], "nl-NL", "Druk 1", "1 1 3")
    assert_say(root[3], "nl-NL", "bovenaan")
    # The call is at the top of the professional queue, on the dashboard.
    conversation = conversation_of(services)
    assert conversation.status is ConversationStatus.queued
    assert (conversation.queue, conversation.priority) == (QueueName.professional, 0)
    assert conversation.highest_risk is Risk.acute
    assert conversation.id in services.desk.index.waiting(QueueName.professional)
    # Pressing 1 connects to the configured number.
    connected = caller.presses("1", url=gather.get("action"))
    assert tags(connected) == ["Say", "Dial"]
    assert_say(connected[0], "nl-NL", "1 1 3")
    dial = connected[1]
    assert dial.get("callerId") == LINE
    assert tags(dial) == ["Number"]
    assert dial[0].text == open_settings.voice_emergency_dial_113 == "+318000113"
    assert len(audit(services, "voice_emergency_dial")) == 1


def test_acute_low_confidence_is_still_acute(client: TestClient, services: Services) -> None:
    root = Caller(client).says(VIOLENCE, confidence="0.2")
    assert_say(root[0], "nl-NL", "Veilig Thuis", "0 8 0 0, 2 0 0 0", "1 1 2")
    gather = root[2]
    assert query(gather.get("action") or "")["target"] == "veilig_thuis"
    assert parent_texts(services) == [VIOLENCE]


def test_acute_with_a_professional_on_duty_dials_them_with_a_whisper(
        client: TestClient, services: Services) -> None:
    professional = on_shift(services, Role.professional, PROFESSIONAL_PHONE)
    on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    caller = Caller(client)
    root = caller.says(VIOLENCE)
    assert tags(root) == ["Say", "Say", "Dial"]
    assert_say(root[0], "nl-NL", "Veilig Thuis", "1 1 2")
    assert_say(root[1], "nl-NL", "hulpverlener")
    dial = root[2]
    assert dial.get("callerId") == LINE  # the professional's phone never shows the caller
    assert dial.get("timeout") == "20"
    conversation = conversation_of(services)
    action = query(dial.get("action") or "")
    assert urlsplit(dial.get("action") or "").path == voice.DIAL_STATUS_PATH
    assert (action["conversation"], action["tried"], action["kind"]) == (
        conversation.id, professional, "violence_now")  # the danger kind (taxonomy.md)
    assert tags(dial) == ["Number"]
    number = dial[0]
    assert number.text == PROFESSIONAL_PHONE
    assert number.get("url") == (f"{BASE}/whisper?conversation={conversation.id}&user={professional}")
    # The whisper says it is urgent; nobody answers: guidance again and Veilig Thuis by a key.
    whisper = caller.twiml(number.get("url") or "", recorded("whisper", To=PROFESSIONAL_PHONE))
    assert_say(whisper[0][0], "nl-NL", "spoed", "huiselijk geweld", "acuut", VIOLENCE)
    fallback = caller.twiml(dial.get("action") or "", caller.fields("dial_action_no_answer"))
    assert tags(fallback) == ["Say", "Gather", "Say", "Hangup"]
    assert query(fallback[1].get("action") or "")["target"] == "veilig_thuis"
    assert conversation_of(services).status is ConversationStatus.queued


# Opening hours: a person, with a whisper ------------------------------------------------------


def test_office_hours_whisper_accept_connects_the_call(client: TestClient, services: Services) -> None:
    volunteer = on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    caller = Caller(client)
    caller.dials()
    root = caller.says(BABY)
    assert tags(root) == ["Say", "Dial"]
    assert_say(root[0], "nl-NL", "niet opnieuw")
    dial = root[1]
    conversation = conversation_of(services)
    assert dial.get("action") == (f"{BASE}/dial-status?conversation={conversation.id}&lang=nl"
                                  f"&queue=volunteer&tried={volunteer}")
    assert (dial.get("method"), dial.get("callerId"), dial.get("timeout")) == ("POST", LINE, "20")
    assert [n.text for n in dial] == [VOLUNTEER_PHONE]
    whisper_url = dial[0].get("url") or ""
    assert whisper_url == f"{BASE}/whisper?conversation={conversation.id}&user={volunteer}"

    whisper = caller.twiml(whisper_url, recorded("whisper"))
    assert tags(whisper) == ["Gather", "Hangup"]
    gather = whisper[0]
    assert (gather.get("input"), gather.get("numDigits")) == ("dtmf", "1")
    assert gather.get("action") == f"{BASE}/whisper/answer?conversation={conversation.id}&user={volunteer}"
    assert tags(gather) == ["Say", "Say"]
    assert_say(gather[0], "nl-NL", "Een ouder belt", "verzorging baby", "Risico: zorg", BABY)
    assert CALLER not in (gather[0].text or "")
    assert_say(gather[1], "nl-NL", "Druk 1", "Druk 2")
    assert len(audit(services, "voice_whisper")) == 1

    accepted = caller.twiml(gather.get("action") or "", recorded("whisper_answer", Digits="1"))
    assert tags(accepted) == []  # an empty <Response/>: the calls connect
    done = caller.twiml(dial.get("action") or "", caller.fields("dial_action_completed"))
    assert tags(done) == ["Say", "Hangup"]
    assert [a.user_id for a in audit(services, "voice_accepted")] == [volunteer]
    # Theirs on the dashboard too: claimed by the volunteer who pressed 1, not queued.
    claimed = conversation_of(services)
    assert (claimed.status, claimed.claimed_by) == (ConversationStatus.claimed, volunteer)
    assert claimed.call_sid == caller.sid


def test_office_hours_whisper_pass_rings_the_next_then_nobody_accepting_enqueues(
        client: TestClient, services: Services, open_settings: Settings) -> None:
    first = on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    second = on_shift(services, Role.volunteer, SECOND_PHONE)
    on_shift(services, Role.volunteer, None)  # on shift, but no number for calls
    caller = Caller(client)
    dial = caller.says(BABY)[1]
    assert [n.text for n in dial] == [VOLUNTEER_PHONE]
    whisper = caller.twiml(dial[0].get("url") or "", recorded("whisper"))
    passed = caller.twiml(whisper[0].get("action") or "", recorded("whisper_answer", Digits="2"))
    assert tags(passed) == ["Hangup"]
    assert [a.user_id for a in audit(services, "voice_passed")] == [first]

    # Twilio reports the <Dial> (the person hung up in the whisper): the next person rings.
    after_first = caller.twiml(dial.get("action") or "", caller.fields("dial_action_completed"))
    assert tags(after_first) == ["Dial"]
    second_dial = after_first[0]
    assert [n.text for n in second_dial] == [SECOND_PHONE]
    assert query(second_dial.get("action") or "")["tried"] == f"{first},{second}"
    assert query(second_dial[0].get("url") or "")["user"] == second

    # Nobody else: the caller waits in the queue, and the call is on the dashboard queue.
    waiting = caller.twiml(second_dial.get("action") or "", caller.fields("dial_action_no_answer"))
    assert tags(waiting) == ["Say", "Enqueue"]
    assert_say(waiting[0], "nl-NL", "wacht")
    enqueue = waiting[1]
    assert enqueue.text == voice.TWILIO_QUEUE
    conversation = conversation_of(services)
    assert enqueue.get("waitUrl") == f"{BASE}/wait?conversation={conversation.id}&lang=nl"
    assert enqueue.get("waitUrlMethod") == "POST"
    assert conversation.status is ConversationStatus.queued
    assert conversation.queue is QueueName.volunteer and conversation.queued_at is not None
    assert conversation.id in services.desk.index.waiting(QueueName.volunteer)
    with services.factory() as session:
        assert session.scalar(select(Handoff.reason).where(Handoff.conversation_id == conversation.id)) \
            == "telefoon: wacht aan de lijn"

    # Hold: the expected wait, then a pause (no music configured); the card hides the number.
    hold = caller.twiml(enqueue.get("waitUrl") or "", caller.fields("queue_wait"))
    assert tags(hold) == ["Say", "Pause"]
    assert_say(hold[0], "nl-NL", "minuten")
    volunteer = person(services, Role.volunteer)
    card = services.desk.card(conversation.id, volunteer)
    assert CALLER not in repr(card) and BABY in repr(card)
    assert CALLER.lstrip("+") not in repr(services.desk.snapshot(volunteer))


def test_hold_music_from_settings(open_settings: Settings, triage: Triage) -> None:
    settings = open_settings.model_copy(update={"voice_hold_music_url": "https://cdn.example/hold.mp3"})
    for services in _services(settings, triage):
        for client in _client(settings, services):
            caller = Caller(client)
            root = caller.says(BABY)
            assert tags(root) == ["Say", "Enqueue"]  # open, but nobody on shift with a phone
            hold = caller.twiml(root[1].get("waitUrl") or "", caller.fields("queue_wait"))
            assert tags(hold) == ["Say", "Play"]
            assert hold[1].text == "https://cdn.example/hold.mp3"
            assert_say(hold[0], "nl-NL", "zodra")


# After hours --------------------------------------------------------------------------------------


def test_after_hours_sms_only_with_consent_and_a_callback(
        closed_client: TestClient, closed_services: Services, fake: FakeTwilio) -> None:
    services = closed_services
    caller = Caller(closed_client)
    caller.dials()
    root = caller.says(BABY)
    assert tags(root) == ["Say", "Say", "Say", "Say", "Gather", "Say", "Hangup"]
    assert_say(root[0], "nl-NL", "Er is nu niemand", "weer iemand", "0 8 8, 0 7 6 7 0 0 0")
    assert re.search(r"(Vandaag|Morgen) vanaf \d\d:00", root[0].text or "")
    assert_say(root[1], "nl-NL", "Hier kun je terecht")
    gather = root[4]
    assert (gather.get("input"), gather.get("numDigits")) == ("dtmf", "1")
    action = query(gather.get("action") or "")
    assert (action["mode"], action["queue"], action["lang"]) == ("after", "volunteer", "nl")
    entry_ids = action["entries"].split(",")
    assert 1 <= len(entry_ids) <= 2
    for spoken, entry_id in zip(root[2:4], entry_ids):
        entry = services.catalogue.get(entry_id)
        assert_say(spoken, "nl-NL", entry.name)
        if entry.contact is not None and entry.contact.phone is not None:
            assert voice.spoken_number(entry.contact.phone) in (spoken.text or "")
    assert_say(gather[0], "nl-NL", "Druk 1", "sms", "Druk 2", "terugbellen")
    # Nothing is sent without the key press.
    assert deliver(services) == 0 and fake.sent == []

    sms = caller.presses("1", url=gather.get("action"))
    assert tags(sms) == ["Say", "Say", "Hangup"]
    assert_say(sms[0], "nl-NL", "sms")
    caller.presses("1", url=gather.get("action"))  # a replayed key press sends nothing twice
    with services.factory() as session:
        rows = list(session.scalars(select(Outbox).where(Outbox.channel == Channel.sms)))
    assert len(rows) == 1
    assert rows[0].address_encrypted is not None
    assert services.vault.decrypt(rows[0].address_encrypted) == CALLER
    assert deliver(services) == 1
    [text] = [m.body for m in fake.to(CALLER)]
    assert text is not None and services.catalogue.get(entry_ids[0]).name in text

    callback = caller.presses("2", url=gather.get("action"))
    assert tags(callback) == ["Say", "Say", "Hangup"]
    assert_say(callback[0], "nl-NL", "terugbel")
    conversation = conversation_of(services)
    assert conversation.status is ConversationStatus.queued
    assert conversation.queue_reason == "telefoon: terugbelverzoek"
    assert conversation.id in services.desk.index.waiting(QueueName.volunteer)
    assert services.vault.decrypt(conversation.address_encrypted or b"") == CALLER
    assert parent_texts(services) == [BABY]
    assert len(audit(services, "voice_callback_requested")) == 1


def test_after_hours_other_key_says_goodbye(closed_client: TestClient, closed_services: Services) -> None:
    caller = Caller(closed_client)
    gather = caller.says(BABY)[4]
    root = caller.presses("7", url=gather.get("action"))
    assert tags(root) == ["Say", "Hangup"]
    assert conversation_of(closed_services).status is ConversationStatus.bot


# No speech, keys, English -------------------------------------------------------------------------


def test_no_speech_twice_falls_back_to_the_key_menu(client: TestClient, services: Services) -> None:
    caller = Caller(client)
    first = caller.silent(gather_url(1))
    assert tags(first) == ["Gather"]
    assert first[0].get("action") == gather_url(2)
    assert first[0].get("input") == "speech dtmf"
    assert_say(first[0][0], "nl-NL", "Sorry")
    # Low confidence counts as no speech (and is not stored).
    second = caller.says("mompel mompel", url=gather_url(2), confidence="0.1")
    assert tags(second) == ["Gather", "Say", "Hangup"]
    menu = second[0]
    assert (menu.get("input"), menu.get("numDigits")) == ("dtmf", "1")
    assert menu.get("action") == gather_url(3, mode="menu")
    assert_say(menu[0], "nl-NL", "Druk 1", "Druk 2", "Druk 3", "press 9")
    assert parent_texts(services) == []


def test_dtmf_menu_professional_and_information(client: TestClient, services: Services) -> None:
    caller = Caller(client)
    root = caller.presses("2", url=gather_url(3, mode="menu"))
    assert tags(root) == ["Say", "Enqueue"]  # nobody on shift with a phone
    conversation = conversation_of(services)
    assert conversation.queue is QueueName.professional
    with services.factory() as session:
        [stored] = session.scalars(select(Message).where(Message.author == Author.parent))
        assert (stored.text, stored.media_kind, stored.handled_at is not None) == ("", "voice", True)

    other = Caller(client, "+31687654321")
    info = other.presses("3")
    assert tags(info) == ["Gather"]
    assert info[0].get("action") == gather_url(1, mode="info")
    assert_say(info[0][0], "nl-NL", "informatie")
    spoken = other.says("waar vind ik een verloskundige", url=info[0].get("action"))
    assert tags(spoken)[-3:] == ["Gather", "Say", "Hangup"]
    assert_say(spoken[0], "nl-NL", "Hier kun je terecht")
    offer = spoken[-3]
    assert query(offer.get("action") or "")["mode"] == "info"
    assert_say(offer[0], "nl-NL", "sms", "praten")
    # 2: talk with someone -> nobody on shift -> the waiting queue.
    talk = other.presses("2", url=offer.get("action"))
    assert tags(talk) == ["Say", "Enqueue"]


def test_english_by_key_9_and_by_speech(client: TestClient, services: Services) -> None:
    caller = Caller(client)
    root = caller.presses("9")
    assert tags(root) == ["Gather"]
    gather = root[0]
    assert gather.get("language") == "en-GB"
    assert gather.get("action") == gather_url(1, lang="en")
    assert_say(gather[0], "en-GB", "Please say")
    on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    connected = caller.says(ENGLISH, url=gather.get("action"))
    assert tags(connected) == ["Say", "Dial"]
    assert_say(connected[0], "en-GB", "connecting")
    assert query(connected[1].get("action") or "")["lang"] == "en"
    whisper = caller.twiml(connected[1][0].get("url") or "", recorded("whisper"))
    assert_say(whisper[0][0], "nl-NL", "Engels")  # the whisper is Dutch, and says so

    # Speaking English to the Dutch greeting switches too; the next gather listens in en-GB.
    other = Caller(client, "+31687654321")
    silent = other.silent(gather_url(1, lang="en"))
    assert silent[0].get("language") == "en-GB"
    assert_say(silent[0][0], "en-GB", "Sorry")
    with services.factory() as session:
        languages = set(session.scalars(select(Conversation.language)))
    assert languages == {"en"}


# Robustness ------------------------------------------------------------------------------------


def test_a_repeated_call_sid_stores_nothing_twice(client: TestClient, services: Services) -> None:
    caller = Caller(client)
    first = caller.says(BABY)
    second = caller.says(BABY)
    assert ET.tostring(first) == ET.tostring(second)
    assert parent_texts(services) == [BABY]
    with services.factory() as session:
        assert len(list(session.scalars(select(Conversation)))) == 1
        assert len(list(session.scalars(select(Handoff)))) == 1
    # The same words at a later step of the same call are a new message.
    caller.says(BABY, url=gather_url(2))
    assert parent_texts(services) == [BABY, BABY]


def test_a_speech_result_of_5000_characters(client: TestClient, services: Services) -> None:
    on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    words = ("mijn baby slaapt zo slecht en ik ben zo moe " * 200)[:5000]
    caller = Caller(client)
    root = caller.says(words)
    assert tags(root) == ["Say", "Dial"]
    assert parent_texts(services) == [words.strip()]
    whisper = caller.twiml(root[1][0].get("url") or "", recorded("whisper"))
    assert len(whisper[0][0].text or "") < voice.MAX_WHISPER_CHARS + 300


def test_a_hang_up_mid_gather_is_a_status_callback_only(client: TestClient, services: Services) -> None:
    caller = Caller(client)
    caller.dials()
    url = PUBLIC_BASE_URL + voice.CALL_STATUS_PATH
    for _ in range(2):  # Twilio may deliver it twice
        root = caller.twiml(url, caller.fields("call_status_completed"))
        assert tags(root) == []
    [ended] = audit(services, "voice_call_ended")
    assert ended.conversation_id is None
    assert ended.detail == {"call": voice._call_hash(caller.sid), "status": "completed",
                            "seconds": 154, "stored": False}
    with services.factory() as session:
        assert list(session.scalars(select(Conversation))) == []
    # A call with words: the status is linked to its conversation.
    talker = Caller(client, "+31687654321")
    talker.says(BABY)
    talker.twiml(url, talker.fields("call_status_completed", CallDuration="61"))
    linked = [a for a in audit(services, "voice_call_ended") if a.conversation_id]
    assert len(linked) == 1 and linked[0].detail["seconds"] == 61
    # Progress statuses (ringing, in-progress) are not an end.
    talker.twiml(url, talker.fields("call_status_completed", CallStatus="in-progress"))
    assert len(audit(services, "voice_call_ended")) == 2


def test_a_hidden_number_gets_no_sms_or_callback_offer(closed_client: TestClient,
                                                       closed_services: Services) -> None:
    caller = Caller(closed_client, "anonymous")
    root = caller.says(BABY)
    assert "Gather" not in tags(root)
    assert any("afgeschermd" in (node.text or "") for node in root)


def test_no_number_or_words_in_any_log_line(client: TestClient, services: Services,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    on_shift(services, Role.volunteer, VOLUNTEER_PHONE)
    caller = Caller(client)
    caller.dials()
    dial = caller.says(BABY)[1]
    whisper = caller.twiml(dial[0].get("url") or "", recorded("whisper"))
    caller.twiml(whisper[0].get("action") or "", recorded("whisper_answer", Digits="2"))
    caller.twiml(dial.get("action") or "", caller.fields("dial_action_no_answer"))
    caller.twiml(PUBLIC_BASE_URL + voice.CALL_STATUS_PATH, caller.fields("call_status_completed"))
    caller.post(BASE, caller.fields("incoming_call"), signature="bad")
    for record in caplog.records:
        line = record.getMessage()
        for secret in (CALLER, CALLER.lstrip("+"), VOLUNTEER_PHONE, "baby slaapt", caller.sid):
            assert secret not in line, line


# The spoken texts ------------------------------------------------------------------------------


def test_voice_texts_speak_only_known_numbers() -> None:
    document = yaml.safe_load((REPO_ROOT / "data" / "messages" / "voice.yml").read_text(encoding="utf-8"))
    assert set(document["nl"]) == set(document["en"])
    allowed = {"112", "113", "08000113", "08002000", "0880767000"}
    for section in document.values():
        for key, text in section.items():
            for run in re.findall(r"\d(?:[ ,]{1,2}\d)+|\d+", text):
                digits = re.sub(r"\D", "", run)
                assert len(digits) == 1 or digits in allowed, (key, run)


def test_spoken_number() -> None:
    assert voice.spoken_number("0800-2000") == "0 8 0 0, 2 0 0 0"
    assert voice.spoken_number("088-0767000") == "0 8 8, 0 7 6 7 0 0 0"
    assert voice.spoken_number("14 020") == "1 4, 0 2 0"


# A claim on the dashboard connects the call (CallConnector) -----------------------------------


def _connector(services: Services, settings: Settings) -> None:
    services.desk.on_claim_phone = voice.CallConnector(settings, services.factory, services.vault)


def waiting_call(client: TestClient, services: Services) -> tuple[Caller, str]:
    """A caller in the Twilio queue (nobody on shift with a phone), on the dashboard queue."""
    caller = Caller(client)
    caller.dials()
    root = caller.says(BABY)
    assert tags(root) == ["Say", "Enqueue"]
    conversation = conversation_of(services)
    assert conversation.call_sid == caller.sid
    return caller, conversation.id


def test_whisper_accept_claims_the_call_on_the_dashboard(client: TestClient,
                                                         services: Services) -> None:
    volunteer = on_shift_person(services, Role.volunteer, VOLUNTEER_PHONE)
    caller = Caller(client)
    dial = caller.says(BABY)[1]
    whisper = caller.twiml(dial[0].get("url") or "", recorded("whisper"))
    caller.twiml(whisper[0].get("action") or "", recorded("whisper_answer", Digits="1"))
    conversation = conversation_of(services)
    mine = services.desk.snapshot(volunteer).mine
    assert [item.conversation_id for item in mine] == [conversation.id]
    assert mine[0].channel is Channel.phone
    with services.factory() as session:
        # No handover text for a call: they are talking already.
        assert list(session.scalars(select(Outbox))) == []
        assert session.scalar(select(Handoff.claimed_by)) == volunteer.user_id


def test_claim_of_a_waiting_call_redirects_it_to_the_person(
        client: TestClient, services: Services, open_settings: Settings, fake: FakeTwilio) -> None:
    _connector(services, open_settings)
    caller, conversation_id = waiting_call(client, services)
    volunteer = person(services, Role.volunteer)
    with services.factory() as session, session.begin():
        user = session.get(User, volunteer.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt(VOLUNTEER_PHONE)
    services.desk.claim(conversation_id, volunteer)

    [request] = fake.call_requests
    assert (request.kind, request.call_sid) == ("update", caller.sid)
    connect_url = (f"{BASE}/connect?conversation={conversation_id}&user={volunteer.user_id}")
    assert request.params == {"Url": connect_url, "Method": "POST"}
    assert [a.user_id for a in audit(services, "voice_connect")] == [volunteer.user_id]
    assert audit(services, "voice_connect")[0].detail is None  # no numbers in the audit log
    with services.factory() as session:
        assert list(session.scalars(select(Outbox))) == []  # the handover text is not sent

    # Twilio fetches the new TwiML for the waiting caller: a <Dial> of the person, with a whisper.
    root = caller.twiml(connect_url, caller.fields("queue_wait"))
    assert tags(root) == ["Say", "Dial", "Say", "Hangup"]
    assert_say(root[0], "nl-NL", "verbind")
    dial = root[1]
    assert dial.get("callerId") == LINE
    assert tags(dial) == ["Number"]
    assert dial[0].text == VOLUNTEER_PHONE
    whisper_url = f"{BASE}/whisper?conversation={conversation_id}&user={volunteer.user_id}"
    assert (dial[0].get("url"), dial[0].get("method")) == (whisper_url, "POST")
    whisper = caller.twiml(whisper_url, recorded("whisper"))
    assert_say(whisper[0][0], "nl-NL", BABY)
    caller.twiml(whisper[0].get("action") or "", recorded("whisper_answer", Digits="1"))
    assert conversation_of(services).claimed_by == volunteer.user_id


def test_status_callback_clears_the_call_sid(client: TestClient, services: Services) -> None:
    caller, _ = waiting_call(client, services)
    url = PUBLIC_BASE_URL + voice.CALL_STATUS_PATH
    caller.twiml(url, caller.fields("call_status_completed", CallStatus="in-progress"))
    assert conversation_of(services).call_sid == caller.sid  # not an end
    caller.twiml(url, caller.fields("call_status_completed", CallStatus="no-answer"))
    assert conversation_of(services).call_sid is None


def test_claim_of_a_callback_request_calls_the_person_then_the_parent(
        closed_client: TestClient, closed_services: Services, closed_settings: Settings,
        fake: FakeTwilio) -> None:
    services = closed_services
    _connector(services, closed_settings)
    caller = Caller(closed_client)
    gather = caller.says(BABY)[4]
    caller.presses("2", url=gather.get("action"))
    caller.twiml(PUBLIC_BASE_URL + voice.CALL_STATUS_PATH, caller.fields("call_status_completed"))
    conversation = conversation_of(services)
    assert (conversation.status, conversation.call_sid) == (ConversationStatus.queued, None)

    professional = person(services, Role.professional)
    with services.factory() as session, session.begin():
        user = session.get(User, professional.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt(PROFESSIONAL_PHONE)
    assert services.desk.claim_next(professional) == conversation.id

    [request] = fake.call_requests
    assert request.kind == "create"
    callback_url = f"{BASE}/callback?conversation={conversation.id}&user={professional.user_id}"
    assert request.params == {"To": PROFESSIONAL_PHONE, "From": SMS_FROM, "Method": "POST",
                              "Url": callback_url}
    [logged] = audit(services, "voice_callback")
    assert (logged.user_id, logged.detail) == (professional.user_id, None)

    # The professional picks up: the handover, then the parent's number, showing our line.
    answered = {"AccountSid": ACCOUNT_SID, "CallSid": request.call_sid, "CallStatus": "in-progress",
                "Direction": "outbound-api", "From": SMS_FROM, "To": PROFESSIONAL_PHONE}
    root = caller.twiml(callback_url, answered)
    assert tags(root) == ["Say", "Say", "Dial"]
    assert_say(root[0], "nl-NL", "terugbelverzoek", "verzorging baby", BABY)
    assert_say(root[1], "nl-NL", "verbind")
    dial = root[2]
    assert dial.get("callerId") == SMS_FROM
    assert [n.text for n in dial] == [CALLER]
    assert CALLER not in (root[0].text or "")

    # The parent's number is gone (purged): said so, nobody is dialled.
    with services.factory() as session, session.begin():
        stored = session.get(Conversation, conversation.id)
        assert stored is not None
        stored.address_encrypted = None
    gone = caller.twiml(callback_url, answered)
    assert tags(gone) == ["Say", "Hangup"]
    assert_say(gone[0], "nl-NL", "niet meer bewaard")


def test_a_callback_without_our_line_number_is_refused_clearly(
        closed_client: TestClient, closed_services: Services, closed_settings: Settings,
        fake: FakeTwilio, caplog: pytest.LogCaptureFixture) -> None:
    services = closed_services
    _connector(services, closed_settings.model_copy(update={"twilio_sms_from": None}))
    caller = Caller(closed_client)
    gather = caller.says(BABY)[4]
    caller.presses("2", url=gather.get("action"))
    caller.twiml(PUBLIC_BASE_URL + voice.CALL_STATUS_PATH, caller.fields("call_status_completed"))
    volunteer = person(services, Role.volunteer)
    with services.factory() as session, session.begin():
        user = session.get(User, volunteer.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt(VOLUNTEER_PHONE)
    conversation_id = conversation_of(services).id
    caplog.set_level(logging.INFO)
    services.desk.claim(conversation_id, volunteer)  # the claim stands
    assert conversation_of(services).claimed_by == volunteer.user_id
    assert fake.call_requests == []
    assert any("TWILIO_SMS_FROM" in r.getMessage() for r in caplog.records)
    assert audit(services, "voice_callback") == []


def test_twilio_refusing_a_redirect_is_logged_without_numbers(
        client: TestClient, services: Services, open_settings: Settings, fake: FakeTwilio,
        caplog: pytest.LogCaptureFixture) -> None:
    _connector(services, open_settings)
    _, conversation_id = waiting_call(client, services)
    volunteer = person(services, Role.volunteer)
    with services.factory() as session, session.begin():
        user = session.get(User, volunteer.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt(VOLUNTEER_PHONE)
    fake.call_failure = (400, 21220)
    caplog.set_level(logging.DEBUG)
    services.desk.claim(conversation_id, volunteer)
    assert conversation_of(services).claimed_by == volunteer.user_id
    assert any("21220" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        for secret in (CALLER, VOLUNTEER_PHONE, CALLER.lstrip("+")):
            assert secret not in record.getMessage()
    assert audit(services, "voice_connect") == []


def test_claim_next_skips_a_call_for_someone_without_a_phone_number(
        client: TestClient, services: Services, open_settings: Settings, fake: FakeTwilio) -> None:
    _connector(services, open_settings)
    _, call_id = waiting_call(client, services)
    volunteer = person(services, Role.volunteer)  # no phone number for calls
    assert services.desk.claim_next(volunteer) is None
    assert conversation_of(services).status is ConversationStatus.queued
    assert call_id in services.desk.index.waiting(QueueName.volunteer)  # given back
    assert fake.call_requests == []


# The boundary: a failure mid-call gives the safe fallback, never a 500 ---------------------------


class RaisingTriage:
    """The real triage, except that it fails on one text (a bug or a dead dependency mid-call)."""

    def __init__(self, inner: Triage, text: str) -> None:
        self.inner, self.text = inner, text

    def run(self, text: str):  # type: ignore[no-untyped-def]
        if text == self.text:
            raise RuntimeError("triage broke")
        return self.inner.run(text)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def _faulty(settings: Settings, triage: Triage, fault: str | None) -> Iterator[tuple[Services, TestClient]]:
    built = build_services(settings, triage=triage, fault=fault)
    try:
        for client in _client(settings, built):
            yield built, client
    finally:
        asyncio.run(built.close())


def assert_safe_fallback(root: ET.Element, services: Services) -> Conversation:
    """The emergency numbers spoken digit by digit first, then the caller waits in the queue."""
    assert tags(root) == ["Say", "Say", "Enqueue"]
    spoken_text = " ".join(node.text or "" for node in root[:2])
    assert "1 1 2" in spoken_text and "1 1 3" in spoken_text
    assert not re.search(r"\d\d", spoken_text)  # never "112" read as "a hundred and twelve"
    assert_say(root[0], "nl-NL", "mis")
    enqueue = root[2]
    assert enqueue.text == voice.TWILIO_QUEUE
    conversation = conversation_of(services)
    assert enqueue.get("waitUrl") == f"{BASE}/wait?conversation={conversation.id}&lang=nl"
    assert conversation.status is ConversationStatus.queued
    assert conversation.queue is not None
    assert conversation.id in services.desk.index.waiting(conversation.queue)
    return conversation


def test_triage_raising_mid_call_gives_the_spoken_numbers_and_the_queue(
        open_settings: Settings, triage: Triage, caplog: pytest.LogCaptureFixture) -> None:
    broken = "mijn kind huilt de hele nacht en ik weet het niet meer"
    caplog.set_level(logging.DEBUG)
    for services, client in _faulty(open_settings, RaisingTriage(triage, broken), None):  # type: ignore[arg-type]
        caller = Caller(client)
        caller.dials()
        root = caller.says(broken)  # asserts a 200 with TwiML
        conversation = assert_safe_fallback(root, services)
        assert (conversation.queue, conversation.priority) == (QueueName.volunteer, 3)
        assert parent_texts(services) == [broken]  # the words are kept for the person
        with services.factory() as session:
            assert session.scalar(select(Handoff.reason).where(
                Handoff.conversation_id == conversation.id)) == "telefoon: storing"
            # Answered by voice: nothing for the worker to send, nothing to recover.
            assert None not in session.scalars(select(Message.handled_at).where(
                Message.author == Author.parent)).all()
            assert session.scalar(select(Outbox.id).limit(1)) is None
        # The hold works for the caller in the queue.
        hold = caller.twiml(root[2].get("waitUrl") or "", caller.fields("queue_wait"))
        assert tags(hold) == ["Say", "Pause"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("RuntimeError" in line for line in errors)
    for record in caplog.records:
        for secret in (CALLER, CALLER.lstrip("+"), "huilt", "triage broke"):
            assert secret not in record.getMessage()


def test_the_pipeline_raising_after_storing_a_call_in_danger_queues_it_at_the_top(
        open_settings: Settings, triage: Triage) -> None:
    for services, client in _faulty(open_settings, triage, "call"):
        caller = Caller(client)
        caller.dials()
        conversation = assert_safe_fallback(caller.says(SUICIDE), services)
        # Triaged again by the fallback: danger now waits first, for a professional.
        assert (conversation.queue, conversation.priority) == (QueueName.professional, 0)
        assert conversation.highest_risk is Risk.acute
        assert parent_texts(services) == [SUICIDE]
        # A key press on the broken line: the same fallback, the conversation stays where it is.
        again = caller.presses("1", url=gather_url(attempt=2))
        assert tags(again) == ["Say", "Say", "Enqueue"]
        assert conversation_of(services).priority == 0


def test_when_even_the_fallback_fails_the_caller_hears_the_numbers_and_to_call_again(
        open_settings: Settings, triage: Triage) -> None:
    for services, client in _faulty(open_settings, triage, "call_down"):
        caller = Caller(client)
        root = caller.says(BABY)
        assert tags(root) == ["Say", "Say", "Hangup"]
        assert_say(root[0], "nl-NL", "nog een keer")
        assert "1 1 2" in (root[1].text or "") and "1 1 3" in (root[1].text or "")
        # Every step of a call answers 200 with TwiML on this line, never a 500.
        url = f"{BASE}/dial-status?conversation={'0' * 8}-0000-0000-0000-{'0' * 12}&lang=nl&queue=volunteer"
        assert tags(caller.twiml(url, caller.fields("dial_action_no_answer")))[-1] == "Hangup"
        assert tags(caller.presses("2"))[-1] == "Hangup"
