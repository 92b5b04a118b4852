"""The telephone line: Twilio Voice with spoken triage and a spoken warm handover (mission flow 7).

Every endpoint is a form-encoded Twilio webhook, authenticated first with the same check as
messaging (bot.channels.twilio.verified_form: signature over PUBLIC_BASE_URL + path + query, our
AccountSid; 403 otherwise), and answers TwiML built with the twilio package's VoiceResponse (no
network). The call:

1. POST /webhooks/twilio/voice: the greeting, then a <Gather> of speech or one key.
2. POST /webhooks/twilio/voice/gather: the caller's words (SpeechResult, Confidence) or a key
   (Digits), converted to the pipeline's inbound type (channel phone, deduplicated on CallSid +
   step) and handed to `Pipeline.call_turn`: the same boundary as a chat message, which stores,
   triages, decides (bot.intents.call.decide_call: the chat's danger kinds, queue rule and texts)
   and applies. This module only renders the decision: guidance first for danger, then <Dial> of
   a person present (who first hears a whisper), <Enqueue>, or after hours when someone is back,
   catalogue entries and the keys 1 (an SMS with those entries) and 2 (a callback request).
3. The rest: /choice (keys after the information), /whisper and /whisper/answer (the handover for
   the person who picks up), /dial-status (what became of a <Dial>), /wait (hold), /status (the
   call's end: duration and outcome in the audit log).

The caller's number is kept only encrypted (services.vault), never logged and never shown on the
dashboard; a volunteer's phone shows our own Twilio number (callerId), not the caller's.
Every spoken text is in data/messages/: voice.yml, and the chat's own entries (guidance, "when",
the fallback) spoken with their numbers digit by digit. No decision is made here, and any error
in a caller's request is answered with the safe fallback (`answer`), never a 500.
"""


import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from bot.channels.base import InboundMessage, InvalidInput, MediaKind, clean_provider_id
from bot.channels.twilio import verified_form
from bot.config import Settings
from bot.errors import OudertelefoonError
from bot.intents.call import (
    CallDecision,
    CallNext,
    CallStep,
    CallTurn,
    VoiceTexts,
    down_words,
    load_voice_texts,
)
from bot.intents.catalogue import Catalogue, CatalogueEntry
from bot.intents.guidance import GUIDANCE_KINDS, spoken, spoken_number
from bot.labels import RISK_LABELS, THEME_LABELS
from bot.pipeline import Pipeline
from bot.rules import QueueName
from bot.storage.crypto import AddressDecryptError
from bot.storage.models import (
    AuditLog,
    Author,
    Channel,
    Conversation,
    Message,
    Shift,
    User,
)
from bot.triage.types import Language, Risk
from handoff.estimate import estimate_wait

__all__ = ["VoiceTexts", "load_voice_texts", "spoken_number"]  # kept for older imports

logger = logging.getLogger(__name__)

VOICE_PATH = "/webhooks/twilio/voice"
MAX_CALL_SID = 64  # conversations.call_sid
GATHER_PATH = VOICE_PATH + "/gather"
CHOICE_PATH = VOICE_PATH + "/choice"
WHISPER_PATH = VOICE_PATH + "/whisper"
WHISPER_ANSWER_PATH = VOICE_PATH + "/whisper/answer"
DIAL_STATUS_PATH = VOICE_PATH + "/dial-status"
WAIT_PATH = VOICE_PATH + "/wait"
CALL_STATUS_PATH = VOICE_PATH + "/status"
CONNECT_PATH = VOICE_PATH + "/connect"
CALLBACK_PATH = VOICE_PATH + "/callback"
TWILIO_QUEUE = "oudertelefoon"
SPEECH_LANGUAGE = {"nl": "nl-NL", "en": "en-GB"}
# Triage reads far less; a transcript this long is stored up to MAX_STORED_CHARS by the pipeline.
MAX_WHISPER_CHARS = 600
# How many people one call rings, one after the other, before it waits in the queue.
MAX_TRIES = 3
FINAL_CALL_STATUSES = {"completed", "busy", "no-answer", "failed", "canceled"}
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ID = re.compile(r"^[0-9a-f-]{36}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# The call -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Twilio call as we may keep it: the sid, the caller only pseudonymised and encrypted."""

    sid: str
    pseudonym: str
    address_encrypted: bytes
    number_known: bool
    line: str | None  # our own Twilio number that was called: the callerId of our <Dial>s
    number: str | None  # the caller's number, for this request only (never stored in clear)


def call_of(form: ImmutableMultiDict[str, str], vault: Any) -> Call:
    sid = form.get("CallSid", "").strip()
    if not sid:
        raise HTTPException(status_code=400, detail="CallSid is required")
    # Twilio's CallSids are 34 characters: longer, or with a NUL (which PostgreSQL cannot even
    # compare), is not Twilio's: 400 (InvalidInput), before anything is looked up or stored.
    sid = clean_provider_id(sid, "CallSid", limit=MAX_CALL_SID)
    number = form.get("From", "").strip()
    known = bool(_E164.match(number))
    # A hidden number ("anonymous", "+266696687"): a pseudonym per call, nothing to call back.
    key = number if known else f"anonymous:{sid}"
    line = form.get("To", "").strip()
    return Call(sid=sid, pseudonym=vault.pseudonym(Channel.phone.value, key),
                address_encrypted=vault.encrypt(number if known else ""), number_known=known,
                line=line if _E164.match(line) else None, number=number if known else None)


def _call_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()[:16]


def _lang(value: str | None) -> str:
    return "en" if value == "en" else "nl"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or "")
    except ValueError:
        return default


def _confidence(value: str | None) -> float:
    if value is None or not value.strip():
        return 1.0  # no score given: the words are taken as heard
    try:
        return float(value)
    except ValueError:
        return 0.0


def _uuid(value: str | None) -> str:
    if not value or not _ID.match(value):
        raise HTTPException(status_code=400, detail="a conversation or user id is required")
    return value


def _kind(value: str | None) -> str:
    return value if value in GUIDANCE_KINDS else "general"


def _queue(value: str | None) -> QueueName:
    return QueueName.professional if value == QueueName.professional.value else QueueName.volunteer


def twiml(response: VoiceResponse) -> Response:
    return Response(content=str(response), media_type="text/xml")


def _decrypt_number(encrypted: bytes | None, vault: Any) -> str | None:
    """An encrypted E.164 number, or None (none kept, hidden, or under an old key)."""
    if not encrypted:
        return None
    try:
        number = vault.decrypt(encrypted).strip()
    except AddressDecryptError as error:  # an old key or a bad row: no number, say why
        logger.warning("a phone number cannot be decrypted (%s)", type(error).__name__)
        return None
    return number if _E164.match(number) else None


def _phone_of(user: User | None, vault: Any) -> str | None:
    """A person's own number for calls (their profile), or None."""
    if user is None or not user.active:
        return None
    return _decrypt_number(user.phone_encrypted, vault)


# A claim on the dashboard -----------------------------------------------------------------------


class CallError(OudertelefoonError):
    """A claimed call could not be connected (Twilio refused, or a number is missing). The message
    never holds a phone number; the claim itself stands."""


class CallConnector:
    """Desk.on_claim_phone: after a person claims a phone conversation on the dashboard, connect
    them through Twilio's REST API. The caller still waiting on the line (Conversation.call_sid)
    is redirected to CONNECT_PATH (a <Dial> of the person, with the whisper); a callback request
    (the call ended) becomes a new call to the person, whose CALLBACK_PATH says the handover and
    dials the parent. Synchronous: runs in the dashboard's request thread."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], vault: Any, *,
                 client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.factory = factory
        self.vault = vault
        self.client = client

    def _url(self, path: str, conversation_id: str, user_id: str) -> str:
        return (self.settings.public_base_url + path + "?"
                + urlencode({"conversation": conversation_id, "user": user_id}))

    def __call__(self, conversation_id: str, user_id: str) -> None:
        try:
            self._connect(conversation_id, user_id)
        except CallError as error:
            logger.error("a claimed call was not connected: %s", error)
            raise

    def _connect(self, conversation_id: str, user_id: str) -> None:
        sid = self.settings.twilio_account_sid
        token = self.settings.twilio_auth_token
        if not sid or token is None:
            raise CallError("Twilio is not configured: the claimed call cannot be connected")
        with self.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            user = session.get(User, user_id)
            if conversation is None or conversation.channel is not Channel.phone:
                raise CallError("no phone conversation to connect")
            call_sid = conversation.call_sid
            person = _phone_of(user, self.vault)
            parent_known = _decrypt_number(conversation.address_encrypted, self.vault) is not None
        if person is None:
            raise CallError("the person who claimed the call has no phone number for calls")
        base = f"{self.settings.twilio_api_base}/2010-04-01/Accounts/{sid}"
        if call_sid:
            action = "voice_connect"
            path = f"{base}/Calls/{call_sid}.json"
            data = {"Url": self._url(CONNECT_PATH, conversation_id, user_id), "Method": "POST"}
        else:
            action = "voice_callback"
            line = self.settings.twilio_sms_from
            if not line:
                raise CallError("TWILIO_SMS_FROM (the line's own number) is not set: "
                                "a callback cannot be placed")
            if not parent_known:
                raise CallError("the parent's number is no longer kept: no callback possible")
            path = f"{base}/Calls.json"
            data = {"To": person, "From": line, "Method": "POST",
                    "Url": self._url(CALLBACK_PATH, conversation_id, user_id)}
        self._post(path, data, (sid, token.get_secret_value()), action)
        with self.factory() as session, session.begin():
            session.add(AuditLog(user_id=user_id, action=action, conversation_id=conversation_id))
        logger.info("%s: Twilio accepted the call request", action)

    def _post(self, url: str, data: dict[str, str], auth: tuple[str, str], action: str) -> None:
        client = self.client or httpx.Client(timeout=10)
        try:
            response = client.post(url, data=data, auth=auth)
        except httpx.HTTPError as error:
            raise CallError(f"{action}: Twilio cannot be reached ({type(error).__name__})") from None
        finally:
            if self.client is None:
                client.close()
        if response.status_code >= 400:
            try:
                code = response.json().get("code")
            except ValueError:
                code = None
            # Twilio's message may repeat a number: only the status and the error code are kept.
            raise CallError(f"{action}: Twilio refused (HTTP {response.status_code}, code {code})")


class Line:
    """Builds the TwiML of one request: texts, URLs, the database. Synchronous (run in a thread)."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.settings: Settings = services.settings
        self.texts = load_voice_texts(self.settings.messages_dir / "voice.yml")
        self.pipeline: Pipeline = services.pipeline
        self.catalogue: Catalogue = services.catalogue
        self.now: datetime = self.pipeline.clock()
        # For the safe fallback of this request: the caller's words and the call's conversation.
        self.pending: InboundMessage | None = None
        self.conversation_id: str | None = None

    # building blocks ---------------------------------------------------------------------------

    def url(self, path: str, **params: str) -> str:
        query = urlencode({k: v for k, v in params.items() if v != ""})
        return self.settings.public_base_url + path + (f"?{query}" if query else "")

    def say(self, node: VoiceResponse | Gather, key: str, lang: str, **values: Any) -> None:
        node.say(self.texts.get(key, lang, **values), language=SPEECH_LANGUAGE[lang])

    def gather(self, lang: str, action: str, *, speech: bool = True) -> Gather:
        if speech:
            return Gather(input="speech dtmf", language=SPEECH_LANGUAGE[lang], action=action,
                          method="POST", speech_timeout="auto", num_digits=1, timeout=6,
                          action_on_empty_result=True)
        return Gather(input="dtmf", action=action, method="POST", num_digits=1, timeout=8)

    def goodbye(self, response: VoiceResponse, lang: str, key: str = "goodbye") -> VoiceResponse:
        self.say(response, key, lang)
        response.hangup()
        return response

    def dial(self, call: Call, action: str) -> Dial:
        return Dial(action=action, method="POST", timeout=self.settings.voice_dial_timeout,
                    caller_id=call.line)

    # 1. the call comes in ------------------------------------------------------------------------

    def incoming(self) -> VoiceResponse:
        response = VoiceResponse()
        self.say(response, "greeting", "nl", retention_days=self.settings.retention_days)
        gather = self.gather("nl", self.url(GATHER_PATH, attempt="1", lang="nl"))
        self.say(gather, "ask", "nl")
        response.append(gather)
        return response

    def ask(self, lang: str, attempt: int, key: str = "ask", mode: str = "") -> VoiceResponse:
        response = VoiceResponse()
        gather = self.gather(lang, self.url(GATHER_PATH, attempt=str(attempt), lang=lang, mode=mode))
        self.say(gather, key, lang)
        response.append(gather)
        return response

    def menu(self, lang: str, attempt: int, response: VoiceResponse | None = None) -> VoiceResponse:
        response = response or VoiceResponse()
        gather = self.gather(lang, self.url(GATHER_PATH, attempt=str(attempt), lang=lang, mode="menu"),
                             speech=False)
        self.say(gather, "menu", lang)
        response.append(gather)
        return self.goodbye(response, lang, "no_input")

    # 2. what the caller said or pressed: a turn through the pipeline ------------------------------

    def gathered(self, call: Call, lang: str, attempt: int, mode: str, digits: str, speech: str,
                 confidence: float) -> VoiceResponse:
        if digits:
            return self.pressed(call, lang, attempt, mode, digits)
        if speech:
            # Low confidence: asked again (nothing stored), unless the words are about danger.
            answered = self.turn(call, CallTurn(CallStep.words, mode=mode, language=lang,
                                                confidence=confidence),
                                 inbound=self.inbound(call, f"{lang}-{mode or 'say'}{attempt}", speech))
            if answered is not None:
                return answered
        if mode == "info" or attempt >= 2:
            return self.menu(lang, attempt + 1) if attempt < 4 else self.goodbye(
                VoiceResponse(), lang, "no_input")
        return self.ask(lang, attempt + 1, "ask_again")

    def pressed(self, call: Call, lang: str, attempt: int, mode: str, digits: str) -> VoiceResponse:
        key = digits.strip()[:1]
        if key == "9":
            return self.ask("en", 1)
        if key in ("1", "2"):
            queue = QueueName.volunteer if key == "1" else QueueName.professional
            answered = self.turn(call, CallTurn(CallStep.key, queue=queue, language=lang),
                                 inbound=self.inbound(call, f"menu{key}", ""))
            return answered or self.goodbye(VoiceResponse(), lang)
        if key == "3":
            return self.ask(lang, 1, "info_ask", mode="info")
        return self.menu(lang, attempt + 1) if attempt < 4 else self.goodbye(
            VoiceResponse(), lang, "no_input")

    def inbound(self, call: Call, step: str, text: str) -> InboundMessage:
        """The caller's words (or a key, stored without text) as the pipeline's inbound type,
        deduplicated on the call and its step. Kept for the safe fallback of this request."""
        self.pending = InboundMessage(
            channel=Channel.phone, pseudonym=call.pseudonym, address_encrypted=call.address_encrypted,
            provider_message_id=f"{call.sid}:{step}"[:128], text=text, received_at=self.now,
            media_kind=None if text.strip() else MediaKind.voice)
        return self.pending

    def turn(self, call: Call, turn: CallTurn, *, inbound: InboundMessage | None = None,
             conversation_id: str | None = None, tried: tuple[str, ...] = ()) -> VoiceResponse | None:
        """One call turn through the pipeline, rendered. None: the words were too unsure."""
        if conversation_id is not None:
            self.conversation_id = conversation_id
        people = self.people(tried)
        outcome = self.pipeline.call_turn(turn, inbound, conversation_id=conversation_id,
                                          call_sid=call.sid, reachable=frozenset(people))
        if not outcome.heard:
            return None
        if outcome.decision is None or outcome.conversation_id is None:
            return self.goodbye(VoiceResponse(), turn.language)  # blocked, or deleted since
        self.conversation_id = outcome.conversation_id
        return self.render(call, outcome.conversation_id, outcome.decision, people, tried)

    def render(self, call: Call, conversation_id: str, decision: CallDecision,
               people: dict[QueueName, tuple[str, str]], tried: tuple[str, ...] = ()) -> VoiceResponse:
        """The call decision as TwiML: its spoken texts in order, then what the line does."""
        lang = decision.language
        response = VoiceResponse()
        for text in decision.say:
            response.say(text, language=SPEECH_LANGUAGE[lang])
        step = decision.next
        if step in (CallNext.dial, CallNext.acute_dial) and decision.queue is not None:
            user_id, number = people[decision.queue]
            if step is CallNext.acute_dial:
                action = self.url(DIAL_STATUS_PATH, conversation=conversation_id, lang=lang,
                                  queue=decision.queue.value, tried=user_id, kind=decision.guidance or "")
            else:
                action = self.url(DIAL_STATUS_PATH, conversation=conversation_id, lang=lang,
                                  queue=decision.queue.value, tried=",".join((*tried, user_id)))
            dial = self.dial(call, action)
            dial.number(number, url=self.url(WHISPER_PATH, conversation=conversation_id, user=user_id),
                        method="POST")
            response.append(dial)
            return response
        if step is CallNext.enqueue:
            return self.enqueue(response, conversation_id, lang)
        if step is CallNext.acute_queued:
            if decision.dial_target is not None:
                gather = self.gather(lang, self.url(CHOICE_PATH, conversation=conversation_id, lang=lang,
                                                    mode="acute", target=decision.dial_target),
                                     speech=False)
                self.say(gather, f"offer_dial_{decision.dial_target}", lang)
                response.append(gather)
            return self.goodbye(response, lang, "acute_queued")
        if step is CallNext.after_hours:
            if decision.entries:
                self.speak_entries(response, decision.entries, lang)
            if call.number_known:
                queue = decision.queue.value if decision.queue is not None else ""
                gather = self.gather(lang, self.url(
                    CHOICE_PATH, conversation=conversation_id, lang=lang, mode="after", queue=queue,
                    entries=",".join(e.id for e in decision.entries)), speech=False)
                self.say(gather, "offer_after_hours" if decision.entries else "offer_callback", lang)
                response.append(gather)
            else:
                self.say(response, "number_hidden", lang)
            return self.goodbye(response, lang)
        if step is CallNext.information:
            if decision.entries:
                self.speak_entries(response, decision.entries, lang)
            else:
                self.say(response, "no_entries", lang)
            gather = self.gather(lang, self.url(
                CHOICE_PATH, conversation=conversation_id, lang=lang, mode="info",
                entries=",".join(e.id for e in decision.entries)), speech=False)
            self.say(gather, "offer_info" if decision.entries and call.number_known else "offer_person",
                     lang)
            response.append(gather)
            return self.goodbye(response, lang)
        if step is CallNext.menu:
            return self.menu(lang, 3, response)
        return self.goodbye(response, lang)

    # a person ---------------------------------------------------------------------------------

    def people(self, tried: tuple[str, ...] = ()) -> dict[QueueName, tuple[str, str]]:
        """Per queue, the person this call would ring next (none after MAX_TRIES people)."""
        if len(tried) >= MAX_TRIES:
            return {}
        found: dict[QueueName, tuple[str, str]] = {}
        with self.services.factory() as session:
            for queue in QueueName:
                person = self.next_person(session, queue, tried)
                if person is not None:
                    found[queue] = person
        return found

    def next_person(self, session: Session, queue: QueueName,
                    tried: tuple[str, ...]) -> tuple[str, str] | None:
        """Someone on shift who may take this queue and has a phone number for calls (their own
        queue first, then the longest on shift), not yet tried on this call."""
        rows = session.execute(
            select(User, Shift.queue)
            .join(Shift, Shift.user_id == User.id)
            .where(Shift.ended_at.is_(None), User.active.is_(True), User.phone_encrypted.is_not(None))
            .order_by(Shift.started_at)
        ).all()
        rows = sorted(rows, key=lambda row: row[1] is not queue)
        for user, _ in rows:
            if user.id in tried or not user.may_take(queue):
                continue
            try:
                number = self.services.vault.decrypt(user.phone_encrypted)
            except AddressDecryptError as error:  # a number under an old key: skip that person
                logger.warning("a user's phone number cannot be decrypted (%s)", type(error).__name__)
                continue
            if _E164.match(number.strip()):
                return user.id, number.strip()
        return None

    def enqueue(self, response: VoiceResponse, conversation_id: str, lang: str) -> VoiceResponse:
        response.enqueue(TWILIO_QUEUE, wait_url=self.url(WAIT_PATH, conversation=conversation_id,
                                                          lang=lang), wait_url_method="POST")
        return response

    def dial_status(self, call: Call, conversation_id: str, lang: str, queue: QueueName,
                    tried: tuple[str, ...], kind: str | None, status: str) -> VoiceResponse:
        if status == "completed" and tried and self.accepted(conversation_id, tried[-1]):
            return self.goodbye(VoiceResponse(), lang)  # they talked; the person hung up
        answered = self.turn(call, CallTurn(CallStep.nobody, queue=queue, kind=_kind(kind) if kind else None,
                                            language=lang),
                             conversation_id=conversation_id, tried=tried)
        return answered or self.goodbye(VoiceResponse(), lang)

    def accepted(self, conversation_id: str, user_id: str) -> bool:
        with self.services.factory() as session:
            return session.scalar(select(AuditLog.id).where(
                AuditLog.action == "voice_accepted", AuditLog.conversation_id == conversation_id,
                AuditLog.user_id == user_id, AuditLog.at >= self.now - timedelta(hours=6)
            ).limit(1)) is not None

    def wait(self, conversation_id: str, lang: str) -> VoiceResponse:
        response = VoiceResponse()
        minutes: int | None = None
        with self.services.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is not None and conversation.queue is not None:
                estimate = estimate_wait(
                    session, conversation.queue,
                    conversation.priority if conversation.priority is not None else 3,
                    now=self.now, hours=self.pipeline.hours[conversation.queue],
                    zone=self.pipeline.zone, handling_minutes=self.settings.handling_minutes,
                    presence_timeout=timedelta(seconds=self.settings.presence_timeout_seconds))
                # No minutes past the end of the planned time (closes_at): the hold text then
                # promises no time.
                minutes = (estimate.minutes if estimate.people_on_shift and estimate.closes_at is None
                           else None)
        if minutes is not None:
            self.say(response, "wait_minutes", lang, minutes=max(5, minutes))
        else:
            self.say(response, "wait_soon", lang)
        if self.settings.voice_hold_music_url:
            response.play(self.settings.voice_hold_music_url)
        else:
            response.pause(length=20)
        return response  # Twilio asks for the wait URL again when this ends: a loop

    # the whisper --------------------------------------------------------------------------------

    def whisper(self, conversation_id: str, user_id: str) -> VoiceResponse:
        """The spoken handover for the person who picks up (Dutch): theme, risk, the caller's words."""
        w = self.texts.whisper
        response = VoiceResponse()
        gather = Gather(input="dtmf", num_digits=1, timeout=10, method="POST",
                        action=self.url(WHISPER_ANSWER_PATH, conversation=conversation_id, user=user_id))
        gather.say(self.handover(conversation_id, user_id, w["intro"]), language=SPEECH_LANGUAGE["nl"])
        gather.say(w["prompt"], language=SPEECH_LANGUAGE["nl"])
        response.append(gather)
        response.hangup()  # no key: passed on, as with 2
        return response

    def handover(self, conversation_id: str, user_id: str, intro: str) -> str:
        """The handover text (theme, risk, the caller's words), audited as reading the card."""
        w = self.texts.whisper
        parts = [intro]
        with self.services.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if conversation is not None:
                if conversation.highest_risk is Risk.acute:
                    parts.append(w["acute"])
                themes = [THEME_LABELS.get(t, t) for t in conversation.themes or []]
                parts.append(w["theme"].format(theme=", ".join(themes)) if themes else w["no_theme"])
                parts.append(w["risk"].format(risk=RISK_LABELS[conversation.highest_risk]))
                if conversation.language == "en":
                    parts.append(w["english"])
                words = " ... ".join(m.text.strip() for m in conversation.messages
                                     if m.author is Author.parent and m.text.strip())
                if len(words) > MAX_WHISPER_CHARS:
                    words = words[:MAX_WHISPER_CHARS].rsplit(" ", 1)[0] + " ..."
                parts.append(w["words"].format(words=words) if words else w["no_words"])
                # Hearing the caller's words is reading the transcript: audited like the card.
                session.add(AuditLog(user_id=user_id, action="voice_whisper",
                                     conversation_id=conversation_id))
        return " ".join(parts)

    def whisper_answer(self, conversation_id: str, user_id: str, digits: str) -> VoiceResponse:
        accept = digits.strip()[:1] == "1"
        with self.services.factory() as session, session.begin():
            session.add(AuditLog(user_id=user_id, conversation_id=conversation_id,
                                 action="voice_accepted" if accept else "voice_passed"))
        response = VoiceResponse()
        if not accept:
            response.hangup()  # the <Dial> ends; dial-status rings the next person or queues
            return response
        # Theirs on the dashboard too (from the bot or the queue; already theirs after a claim).
        self.services.desk.take_call(conversation_id, user_id)
        return response  # empty: the calls connect

    # a claim on the dashboard (CallConnector) ----------------------------------------------------

    def connect_claimed(self, call: Call, conversation_id: str, user_id: str) -> VoiceResponse:
        """The waiting caller, redirected after a claim: <Dial> the person, who hears the whisper."""
        response = VoiceResponse()
        lang = "nl"
        with self.services.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            user = session.get(User, user_id)
            if conversation is not None and conversation.language == "en":
                lang = "en"
            number = _phone_of(user, self.services.vault)
        if conversation is None or number is None:
            return self.goodbye(response, lang)
        self.say(response, "connecting", lang)
        dial = Dial(timeout=self.settings.voice_dial_timeout,
                    caller_id=call.line or self.settings.twilio_sms_from)
        dial.number(number, url=self.url(WHISPER_PATH, conversation=conversation_id, user=user_id),
                    method="POST")
        response.append(dial)
        return self.goodbye(response, lang)  # after the talk (or nobody answered)

    def callback(self, conversation_id: str, user_id: str) -> VoiceResponse:
        """The person who claimed a callback request picks up: the handover, then the parent."""
        w = self.texts.whisper
        response = VoiceResponse()
        number: str | None = None
        with self.services.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is not None and conversation.address_encrypted:
                number = _decrypt_number(conversation.address_encrypted, self.services.vault)
        if number is None:
            response.say(w["callback_gone"], language=SPEECH_LANGUAGE["nl"])
            response.hangup()
            return response
        response.say(self.handover(conversation_id, user_id, w["callback_intro"]),
                      language=SPEECH_LANGUAGE["nl"])
        response.say(w["callback_connecting"], language=SPEECH_LANGUAGE["nl"])
        dial = Dial(caller_id=self.settings.twilio_sms_from,
                    timeout=max(self.settings.voice_dial_timeout, 30))
        dial.number(number)
        response.append(dial)
        return response

    # after hours and information ----------------------------------------------------------------

    def speak_entries(self, response: VoiceResponse, entries: list[CatalogueEntry], lang: str) -> None:
        language = Language.en if lang == "en" else Language.nl
        self.say(response, "entries_intro", lang)
        for entry in entries:
            text = self.texts.get("entry", lang, name=entry.name, summary=entry.summary.get(language))
            if entry.contact is not None and entry.contact.phone is not None:
                text += " " + self.texts.get("entry_phone", lang, phone=spoken_number(entry.contact.phone))
            response.say(text, language=SPEECH_LANGUAGE[lang])

    def choice(self, call: Call, conversation_id: str, lang: str, mode: str, digits: str,
               entry_ids: list[str], queue: QueueName, target: str | None) -> VoiceResponse:
        key = digits.strip()[:1]
        self.conversation_id = conversation_id
        response = VoiceResponse()
        if mode == "acute":
            if key == "1" and target in ("113", "veilig_thuis"):
                number = (self.settings.voice_emergency_dial_113 if target == "113"
                          else self.settings.voice_emergency_dial_veilig_thuis)
                self.audit(conversation_id, "voice_emergency_dial", target=target)
                self.say(response, f"connecting_{target}", lang)
                dial = Dial(caller_id=call.line)
                dial.number(number)
                response.append(dial)
                return response
            return self.goodbye(response, lang, "acute_queued")
        if key == "1" and entry_ids and call.number_known:
            answered = self.turn(call, CallTurn(CallStep.sms, entries=tuple(entry_ids), language=lang),
                                 conversation_id=conversation_id)
            return answered or self.goodbye(response, lang)
        if key == "2" and mode == "after":
            if not call.number_known:
                self.say(response, "number_hidden", lang)
                return self.goodbye(response, lang)
            answered = self.turn(call, CallTurn(CallStep.callback, queue=queue, language=lang),
                                 conversation_id=conversation_id)
            return answered or self.goodbye(response, lang)
        if key == "2":
            answered = self.turn(call, CallTurn(CallStep.key, queue=queue, language=lang),
                                 conversation_id=conversation_id)
            return answered or self.goodbye(response, lang)
        return self.goodbye(response, lang)

    # what is not a conversation turn: the audit log, the call's end ------------------------------

    def audit(self, conversation_id: str, action: str, **detail: Any) -> None:
        with self.services.factory() as session, session.begin():
            session.add(AuditLog(action=action, conversation_id=conversation_id, detail=detail or None))

    def call_ended(self, sid: str, status: str, seconds: int | None) -> bool:
        """Duration and outcome of a call, once (a replayed callback stores nothing). Stored in the
        audit log, linked to the conversation when the caller said or pressed something."""
        marker = _call_hash(sid)
        with self.services.factory() as session, session.begin():
            # The caller is gone: a claim from now on calls back instead of connecting.
            session.execute(update(Conversation).where(Conversation.call_sid == sid[:64])
                            .values(call_sid=None).execution_options(synchronize_session=False))
        with self.services.factory() as session, session.begin():
            conversation_id = session.scalar(
                select(Message.conversation_id).where(
                    Message.channel == Channel.phone,
                    Message.provider_message_id.like(f"{sid}:%")).limit(1))
            recent = session.scalars(select(AuditLog).where(
                AuditLog.action == "voice_call_ended", AuditLog.at >= self.now - timedelta(days=1)))
            if any((row.detail or {}).get("call") == marker for row in recent):
                return False
            session.add(AuditLog(action="voice_call_ended", conversation_id=conversation_id,
                                 at=self.now, detail={"call": marker, "status": status,
                                                      "seconds": seconds,
                                                      "stored": conversation_id is not None}))
        logger.info("call ended: %s after %s s (%s)", status, seconds,
                    "words stored" if conversation_id else "nothing stored")
        return True


# The boundary ----------------------------------------------------------------------------------


def answer(services: Any, call: Call | None, lang: str, work: Callable[[Line], VoiceResponse], *,
           conversation_id: str | None = None) -> VoiceResponse:
    """Every caller's request after its verification (run in a thread): any error gives the
    safe fallback, never a 500 (Twilio would tell a caller who may be in danger that "an
    application error has occurred"). Only the error's type is logged."""
    line: Line | None = None
    try:
        line = Line(services)
        return work(line)
    except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
        logger.error("a call request failed (%s); the caller hears the safe fallback",
                     type(error).__name__)
        if line is not None:
            conversation_id = line.conversation_id or conversation_id
        return safe_fallback(services, call, lang, pending=line.pending if line else None,
                             conversation_id=conversation_id)


def safe_fallback(services: Any, call: Call | None, lang: str, *, pending: InboundMessage | None,
                  conversation_id: str | None) -> VoiceResponse:
    """The emergency numbers, spoken digit by digit, then the queue (the pipeline's failed turn:
    the words kept, the conversation waiting by its risk). When even that fails: call again, and
    the numbers."""
    lang = _lang(lang)
    language = SPEECH_LANGUAGE[lang]
    texts: VoiceTexts | None = None
    try:
        texts = load_voice_texts(services.settings.messages_dir / "voice.yml")
        if call is not None:
            inbound = pending
            if inbound is None and conversation_id is None:
                # Nothing of this call is stored yet: an empty turn opens its conversation.
                inbound = InboundMessage(
                    channel=Channel.phone, pseudonym=call.pseudonym,
                    address_encrypted=call.address_encrypted,
                    provider_message_id=f"{call.sid}:fallback"[:128], text="",
                    received_at=services.pipeline.clock(), media_kind=MediaKind.voice)
            outcome = services.pipeline.call_turn(
                CallTurn(CallStep.failed, language=lang), inbound, conversation_id=conversation_id,
                call_sid=call.sid)
            if outcome.decision is not None and outcome.conversation_id is not None:
                response = VoiceResponse()
                for text in outcome.decision.say:
                    response.say(text, language=language)
                wait = (services.settings.public_base_url + WAIT_PATH + "?"
                        + urlencode({"conversation": outcome.conversation_id, "lang": lang}))
                response.enqueue(TWILIO_QUEUE, wait_url=wait, wait_url_method="POST")
                return response
    except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
        logger.error("the safe fallback could not queue the call either (%s)", type(error).__name__)
    response = VoiceResponse()
    if texts is not None:
        for text in down_words(texts, lang):
            response.say(text, language=language)
    elif services.texts.guidance is not None:  # voice.yml unreadable: the chat's own entry
        response.say(spoken(services.texts.guidance.text("general", lang)), language=language)
    response.hangup()
    return response


def _hold_fallback(services: Any, lang: str) -> VoiceResponse:
    """The hold music's request failed: the numbers once, then the caller keeps waiting."""
    response = VoiceResponse()
    try:
        texts = load_voice_texts(services.settings.messages_dir / "voice.yml")
        response.say(spoken(texts.get("fallback_numbers", lang)), language=SPEECH_LANGUAGE[lang])
    except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
        logger.error("the hold fallback has no texts (%s)", type(error).__name__)
    response.pause(length=20)
    return response


def _person_leg(services: Any, work: Callable[[Line], VoiceResponse]) -> VoiceResponse:
    """A request for the leg of the person we ring (whisper, their key, a callback): on an error
    that leg hangs up, and the caller's <Dial> goes on (the next person, or the queue)."""
    try:
        return work(Line(services))
    except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
        logger.error("a call request for the person's leg failed (%s); it hangs up",
                     type(error).__name__)
        response = VoiceResponse()
        response.hangup()
        return response


def _call(form: ImmutableMultiDict[str, str], services: Any) -> Call | None:
    """The verified request's call; a bad CallSid is refused (400); any other error: None, and
    the boundary speaks the fallback."""
    try:
        return call_of(form, services.vault)
    except (HTTPException, InvalidInput):
        raise  # a CallSid Twilio would never send: a clear 400 (bot.web.hardening), not a call
    except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
        logger.error("a call's caller could not be read (%s)", type(error).__name__)
        return None


def _needs_call(call: Call | None) -> Call:
    if call is None:
        raise OudertelefoonError("the call could not be read")
    return call


# The router ------------------------------------------------------------------------------------


def build_router(get_services: Any) -> APIRouter:
    """The voice webhooks; mounted next to Twilio messaging when Twilio is configured. Each
    caller's request is verified first (403), then answered through `answer`: never a 500."""
    router = APIRouter()
    ServicesDep = Annotated[Any, Depends(get_services)]

    @router.post(VOICE_PATH)
    async def incoming(request: Request, services: ServicesDep) -> Response:
        """A call comes in: greeting and the first question."""
        form = await verified_form(request, services.settings)
        call = _call(form, services)

        def greet(line: Line) -> VoiceResponse:
            _needs_call(call)
            return line.incoming()

        return twiml(await run_in_threadpool(answer, services, call, "nl", greet))

    @router.post(GATHER_PATH)
    async def gather(request: Request, services: ServicesDep) -> Response:
        """What the caller said or pressed."""
        form = await verified_form(request, services.settings)
        call = _call(form, services)
        query = request.query_params
        lang, attempt, mode = _lang(query.get("lang")), _int(query.get("attempt"), 1), query.get("mode", "")
        if mode not in ("", "menu", "info"):
            mode = ""
        digits = form.get("Digits", "").strip()
        speech = form.get("SpeechResult", "").strip()
        confidence = _confidence(form.get("Confidence"))
        return twiml(await run_in_threadpool(answer, services, call, lang, lambda line: line.gathered(
            _needs_call(call), lang, attempt, mode, digits, speech, confidence)))

    @router.post(CHOICE_PATH)
    async def choice(request: Request, services: ServicesDep) -> Response:
        """A key after information, after hours or emergency guidance."""
        form = await verified_form(request, services.settings)
        call = _call(form, services)
        query = request.query_params
        conversation_id = _uuid(query.get("conversation"))
        mode = query.get("mode", "after")
        mode = mode if mode in ("after", "info", "acute") else "after"
        entry_ids = [i for i in query.get("entries", "").split(",") if _SLUG.match(i)][:2]
        lang = _lang(query.get("lang"))
        return twiml(await run_in_threadpool(answer, services, call, lang, lambda line: line.choice(
            _needs_call(call), conversation_id, lang, mode, form.get("Digits", ""), entry_ids,
            _queue(query.get("queue")), query.get("target")), conversation_id=conversation_id))

    @router.post(WHISPER_PATH)
    async def whisper(request: Request, services: ServicesDep) -> Response:
        """The handover spoken to the person who picks up, before the call connects."""
        await verified_form(request, services.settings)
        conversation_id = _uuid(request.query_params.get("conversation"))
        user_id = _uuid(request.query_params.get("user"))
        return twiml(await run_in_threadpool(
            _person_leg, services, lambda line: line.whisper(conversation_id, user_id)))

    @router.post(WHISPER_ANSWER_PATH)
    async def whisper_answer(request: Request, services: ServicesDep) -> Response:
        """The person's key: 1 accepts (the calls connect), anything else passes it on."""
        form = await verified_form(request, services.settings)
        conversation_id = _uuid(request.query_params.get("conversation"))
        user_id = _uuid(request.query_params.get("user"))
        return twiml(await run_in_threadpool(_person_leg, services, lambda line: line.whisper_answer(
            conversation_id, user_id, form.get("Digits", ""))))

    @router.post(DIAL_STATUS_PATH)
    async def dial_status(request: Request, services: ServicesDep) -> Response:
        """What became of a <Dial>: done, the next person, or the waiting queue."""
        form = await verified_form(request, services.settings)
        call = _call(form, services)
        query = request.query_params
        conversation_id = _uuid(query.get("conversation"))
        tried = tuple(t for t in query.get("tried", "").split(",") if _ID.match(t))
        kind = query.get("kind")
        lang = _lang(query.get("lang"))
        return twiml(await run_in_threadpool(answer, services, call, lang, lambda line: line.dial_status(
            _needs_call(call), conversation_id, lang, _queue(query.get("queue")), tried,
            _kind(kind) if kind else None, form.get("DialCallStatus", "").strip().lower()),
            conversation_id=conversation_id))

    @router.post(WAIT_PATH)
    async def wait(request: Request, services: ServicesDep) -> Response:
        """Hold: the expected wait, then music (Twilio repeats this while the caller waits)."""
        await verified_form(request, services.settings)
        conversation_id = _uuid(request.query_params.get("conversation"))
        lang = _lang(request.query_params.get("lang"))

        def hold() -> VoiceResponse:
            try:
                return Line(services).wait(conversation_id, lang)
            except Exception as error:  # noqa: BLE001 - the boundary: the caller hears a fallback, never a 500
                logger.error("a hold request failed (%s)", type(error).__name__)
                return _hold_fallback(services, lang)

        return twiml(await run_in_threadpool(hold))

    @router.post(CALL_STATUS_PATH)
    async def call_status(request: Request, services: ServicesDep) -> Response:
        """Twilio's call status callback: duration and outcome, once."""
        form = await verified_form(request, services.settings)
        sid = form.get("CallSid", "").strip()
        status = form.get("CallStatus", "").strip().lower()
        if sid and status in FINAL_CALL_STATUSES:
            sid = clean_provider_id(sid, "CallSid", limit=MAX_CALL_SID)
            seconds = _int(form.get("CallDuration"), -1)
            try:
                await run_in_threadpool(lambda: Line(services).call_ended(
                    sid, status, seconds if seconds >= 0 else None))
            except Exception as error:  # noqa: BLE001 - the call has ended: nobody hears this; Twilio needs no retry
                logger.error("a call's end could not be recorded (%s)", type(error).__name__)
        return twiml(VoiceResponse())

    @router.post(CONNECT_PATH)
    async def connect(request: Request, services: ServicesDep) -> Response:
        """The waiting caller, redirected after a claim on the dashboard: <Dial> that person."""
        form = await verified_form(request, services.settings)
        call = _call(form, services)
        conversation_id = _uuid(request.query_params.get("conversation"))
        user_id = _uuid(request.query_params.get("user"))
        return twiml(await run_in_threadpool(answer, services, call, "nl", lambda line: line.connect_claimed(
            _needs_call(call), conversation_id, user_id), conversation_id=conversation_id))

    @router.post(CALLBACK_PATH)
    async def callback(request: Request, services: ServicesDep) -> Response:
        """Our call to the person who claimed a callback request: the handover, then the parent."""
        await verified_form(request, services.settings)
        conversation_id = _uuid(request.query_params.get("conversation"))
        user_id = _uuid(request.query_params.get("user"))
        return twiml(await run_in_threadpool(
            _person_leg, services, lambda line: line.callback(conversation_id, user_id)))

    return router
