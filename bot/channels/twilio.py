"""Twilio messaging: SMS and WhatsApp, in and out.

Inbound: Twilio posts form-encoded webhooks to POST /webhooks/twilio/messaging (a parent's
message) and POST /webhooks/twilio/status (what happened to a message we sent). Both are
authenticated first: the X-Twilio-Signature over PUBLIC_BASE_URL + path (+ query) and every
form field (HMAC-SHA1, or the HMAC-SHA256 that an X-Twilio-Webhooks-Signature-Settings header
names), and the AccountSid must be ours. Only then is one InboundMessage built; the answer to
Twilio is an empty TwiML `<Response/>`, because replies go out through the worker.

Outbound: TwilioSender posts to Twilio's REST API (Messages.json) with httpx.AsyncClient; the
twilio package's own client blocks, so it is used only for its RequestValidator.

Addresses: the address we keep (encrypted) is the parent's bare E.164 number ("+31612345678")
on both channels; the channel says whether the sender puts "whatsapp:" in front. The pseudonym is
keyed on channel and that bare number, so it is the same on every run and for every form in which
Twilio writes the number.
"""


import asyncio
import logging
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from bot import delivery
from bot.channels.base import (
    DeliveryError,
    InboundMessage,
    MediaKind,
    OutboundMessage,
    PartsLog,
    Sender,
    SendResult,
    clean_provider_id,
)
from bot.config import Settings
from bot.storage.models import Channel, Outbox, utcnow

logger = logging.getLogger(__name__)

MESSAGING_PATH = "/webhooks/twilio/messaging"
STATUS_PATH = "/webhooks/twilio/status"
WHATSAPP_PREFIX = "whatsapp:"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio refuses a body over 1600 characters (error 21617); longer replies go out in parts.
MAX_BODY_CHARS = 1600
# A Twilio webhook is a few kilobytes; anything far bigger is not from Twilio.
MAX_WEBHOOK_BYTES = 1_000_000

# Twilio's message statuses, ordered: a late "sent" callback never overwrites "delivered".
_STATUS_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 0, "sending": 1, "sent": 2,
    "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "read": 4,
}


def _twiml() -> Response:
    return Response(content=EMPTY_TWIML, media_type="text/xml")


def bare_number(address: str) -> str:
    """The number without Twilio's channel prefix ("whatsapp:+316..." -> "+316...")."""
    address = address.strip()
    if address.lower().startswith(WHATSAPP_PREFIX):
        address = address[len(WHATSAPP_PREFIX):].strip()
    return address


def media_kind_of(content_type: str) -> MediaKind:
    kind = content_type.split("/", 1)[0].strip().lower()
    return {"image": MediaKind.photo, "audio": MediaKind.voice,
            "video": MediaKind.video}.get(kind, MediaKind.document)


async def verified_form(request: Request, settings: Settings) -> ImmutableMultiDict[str, str]:
    """The form fields of a Twilio webhook, once the signature (over PUBLIC_BASE_URL + path +
    query) and the account are checked: 403 otherwise, 413 when far too big. Shared by messaging
    and voice (bot.channels.voice)."""
    token = settings.twilio_auth_token
    if token is None or not settings.twilio_account_sid:
        raise HTTPException(status_code=403, detail="twilio is not configured")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status_code=413, detail="request too large")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status_code=413, detail="request too large")
    form = ImmutableMultiDict(parse_qsl(body.decode("latin-1"), keep_blank_values=True,
                                        encoding="utf-8", errors="replace"))
    url = settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get(SIGNATURE_HEADER, "")
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER)).upper()
    validator = RequestValidator(token.get_secret_value())
    if (not signature or algorithm not in (HMAC_SHA1, HMAC_SHA256)
            or not validator.validate(url, form, signature, algorithm)):
        logger.warning("twilio webhook %s refused: bad or missing signature", request.url.path)
        raise HTTPException(status_code=403, detail="invalid signature")
    if form.get("AccountSid") != settings.twilio_account_sid:
        logger.warning("twilio webhook %s refused: another account", request.url.path)
        raise HTTPException(status_code=403, detail="unknown account")
    return form


def build_router(get_services: Any) -> APIRouter:
    router = APIRouter()
    ServicesDep = Annotated[Any, Depends(get_services)]

    @router.post(MESSAGING_PATH)
    async def messaging(request: Request, services: ServicesDep) -> Response:
        """A parent's SMS or WhatsApp message."""
        form = await verified_form(request, services.settings)
        sid = form.get("MessageSid", "").strip()
        sender = form.get("From", "").strip()
        if not sid or not bare_number(sender):
            raise HTTPException(status_code=400, detail="MessageSid and From are required")
        # Twilio's sids are 34 characters: a longer one (or one with control characters) is not
        # Twilio's and cannot be the dedupe key; a clear 400 (InvalidInput), nothing stored.
        sid = clean_provider_id(sid, "MessageSid")
        whatsapp = sender.lower().startswith(WHATSAPP_PREFIX)
        channel = Channel.whatsapp if whatsapp else Channel.sms
        address = bare_number(sender)
        inbound = InboundMessage(
            channel=channel,
            pseudonym=services.vault.pseudonym(channel.value, address),
            address_encrypted=services.vault.encrypt(address),
            provider_message_id=sid,
            text=form.get("Body", ""),
            received_at=utcnow(),
            media_kind=_media_kind(form),
        )
        await delivery.process(services, inbound)  # the replies posted at once when it can
        return _twiml()

    @router.post(STATUS_PATH)
    async def status(request: Request, services: ServicesDep) -> Response:
        """Twilio's status callback for a message we sent."""
        form = await verified_form(request, services.settings)
        sid = form.get("MessageSid", "").strip()
        value = form.get("MessageStatus", "").strip().lower()
        if sid and value in _STATUS_RANK:
            sid = clean_provider_id(sid, "MessageSid")
            await run_in_threadpool(_set_delivery_status, services.factory, sid, value)
        return _twiml()

    return router


def _media_kind(form: ImmutableMultiDict[str, str]) -> MediaKind | None:
    try:
        count = int(form.get("NumMedia", "0") or "0")
    except ValueError:
        count = 0
    if count > 0:
        return media_kind_of(form.get("MediaContentType0", ""))
    # A WhatsApp location share: coordinates, no media. They are not kept (only the kind).
    if (form.get("Latitude") and form.get("Longitude")) or form.get("MessageType") == "location":
        return MediaKind.location
    return None


def _set_delivery_status(factory: Any, sid: str, value: str) -> None:
    with factory() as session, session.begin():
        row = session.scalar(select(Outbox).where(Outbox.provider_message_id == sid).limit(1))
        if row is None:
            return  # not ours, or a part of a split reply other than the last: ignored
        if _STATUS_RANK.get(row.delivery_status or "", -1) > _STATUS_RANK[value]:
            return  # callbacks can arrive out of order
        row.delivery_status = value
        logger.info("outbox %s: twilio reports %s", row.id, value)


def split_body(text: str, limit: int = MAX_BODY_CHARS) -> list[str]:
    """Parts of at most `limit` UTF-16 units (how Twilio counts), cut at whitespace if possible."""
    parts: list[str] = []
    rest = text
    while _units(rest) > limit:
        cut = _fit(rest, limit)
        space = max(rest.rfind(" ", 0, cut), rest.rfind("\n", 0, cut))
        if space > cut // 2:
            cut = space
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The longest prefix length (in characters) within `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


class TwilioSender(Sender):
    """Sends SMS and WhatsApp messages through Twilio's REST API (async, never blocking)."""

    channels = (Channel.sms, Channel.whatsapp)

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        if not settings.twilio_account_sid or settings.twilio_auth_token is None:
            raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        self.settings = settings
        self.account_sid = settings.twilio_account_sid
        self._auth = (self.account_sid, settings.twilio_auth_token.get_secret_value())
        self.url = (f"{settings.twilio_api_base}/2010-04-01/Accounts/"
                    f"{self.account_sid}/Messages.json")
        self.status_callback = settings.public_base_url + STATUS_PATH
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._closer: asyncio.Task[None] | None = None
        # Parts of a split reply already accepted: a retry sends only the rest.
        self.parts = PartsLog()

    async def _http(self) -> httpx.AsyncClient:
        # A client (its pooled connections) belongs to one event loop; a new loop (a restarted
        # worker, each round in tests) gets its own, closed when that loop shuts down.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            client = httpx.AsyncClient(auth=self._auth, timeout=self._timeout)
            self._client, self._client_loop = client, loop
            self._closer = loop.create_task(self._close_with_loop(client))
        return self._client

    async def _close_with_loop(self, client: httpx.AsyncClient) -> None:
        """Waits until cancelled (asyncio.run and servers cancel what is left when they stop),
        then closes the client inside its own loop."""
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            if self._client is client:
                self._client = self._client_loop = None
            await client.aclose()

    def _addresses(self, message: OutboundMessage) -> tuple[str, str]:
        to = bare_number(message.address)
        if not to:
            raise DeliveryError("no address", retryable=False)
        if message.channel is Channel.whatsapp:
            sender = self.settings.twilio_whatsapp_from
            if not sender:
                raise DeliveryError("TWILIO_WHATSAPP_FROM is not set", retryable=False)
            return WHATSAPP_PREFIX + to, WHATSAPP_PREFIX + bare_number(sender)
        if message.channel is Channel.sms:
            if not self.settings.twilio_sms_from:
                raise DeliveryError("TWILIO_SMS_FROM is not set", retryable=False)
            return to, self.settings.twilio_sms_from.strip()
        raise DeliveryError(f"twilio does not send on {message.channel.value}", retryable=False)

    async def send(self, message: OutboundMessage) -> SendResult:
        to, sender = self._addresses(message)
        base = {"To": to, "From": sender, "StatusCallback": self.status_callback}
        if message.template:
            template = self.settings.twilio_whatsapp_template_sid
            if message.channel is not Channel.whatsapp or not template:
                raise DeliveryError("no WhatsApp template configured", retryable=False)
            return SendResult(provider_message_id=await self._post({**base, "ContentSid": template}))
        parts = split_body(message.text)
        done, sid = self.parts.recall(message)
        try:
            for index in range(done, len(parts)):
                sid = await self._post({**base, "Body": parts[index]})
                if index + 1 < len(parts):
                    await self.parts.record(message.outbox_id, index + 1, sid)
        except DeliveryError as error:
            if not error.retryable:
                self.parts.forget(message.outbox_id)
            raise
        self.parts.forget(message.outbox_id)
        # The last part's sid: its status callback speaks for the whole reply.
        return SendResult(provider_message_id=sid)

    async def _post(self, data: dict[str, str]) -> str:
        client = await self._http()
        try:
            response = await client.post(self.url, data=data)
        except httpx.HTTPError as error:  # connection refused, timeout, broken response
            raise DeliveryError(f"twilio unreachable ({type(error).__name__})",
                                retryable=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(f"twilio answered {response.status_code}", retryable=True)
        if response.status_code >= 400:
            # Only Twilio's error code: its message text can quote the parent's number.
            code = _error_code(response)
            raise DeliveryError(f"twilio refused: {response.status_code} error {code}",
                                retryable=False)
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError, TypeError):
            raise DeliveryError(f"twilio answered {response.status_code} without a sid",
                                retryable=True) from None
        return str(sid)

    async def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None and not closer.done():
            if closer.get_loop() is asyncio.get_running_loop():
                closer.cancel()
                await asyncio.gather(closer, return_exceptions=True)
            else:  # its loop still runs elsewhere and closes the client when it stops
                self._client = self._client_loop = None


def _error_code(response: httpx.Response) -> str:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return "unknown"
    return str(code) if isinstance(code, (int, str)) else "unknown"

