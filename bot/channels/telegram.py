"""Telegram: the webhook (input), the sender (output), and the two setup commands.

Input. Telegram POSTs each update to /webhooks/telegram with the secret we gave it in
setWebhook, in the header X-Telegram-Bot-Api-Secret-Token. The route authenticates first (wrong
or missing secret: 403, nothing stored), then parses the body as a telegram.Update (not an
update: 400, nothing stored), then hands ONE InboundMessage to the pipeline and answers
`{"ok": true}`. The reply never rides on the webhook answer: the worker sends it with
TelegramSender.

Decisions:
- The dedupe key is the update_id: Telegram redelivers an update with the same id until we
  answer 2xx, and gives every new update (an edit too) a new id.
- `edited_message` is handled as a new message: the parent's corrected words are stored next to
  the first version (the person who picks up sees both), triaged again (an edit can add danger)
  and answered. Nothing a parent writes is dropped.
- Only private chats are served. A message from a group or channel the bot was added to is
  acknowledged and ignored: answering there would show a parent's conversation to others.
- Updates without a message (my_chat_member when a parent blocks the bot, and anything else)
  are acknowledged with 200 and ignored.
- Photos, voice, video, stickers, locations, documents and the like are stored with their
  media kind and their caption as text ("" without one); the pipeline answers them.
- A pipeline error answers 500, so Telegram delivers the update again (dedupe makes that safe).

Output. `sendMessage` through PTB's Bot at TELEGRAM_API_BASE. Texts over Telegram's 4096-character
limit go out as several messages, split at line breaks. Network errors, timeouts, 429 and 5xx
are retryable; a blocked bot (403) or an unknown chat (400) are not.

Setup. `oudertelefoon telegram set-webhook` registers the webhook; `oudertelefoon telegram poll`
is for a laptop without a public URL: it removes the webhook, long-polls getUpdates, feeds every
update through the same code as the webhook, and runs the worker in the same process.

Privacy: the chat id exists only inside this module (while building the InboundMessage, and in
the sender while sending). Log lines carry update ids, our row ids and error type names. PTB logs
every API call's parameters (chat id and text) at DEBUG and httpx logs request URLs (with the bot
token) at INFO, so both are tamed below.
"""

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from telegram import Bot, Message, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from bot import delivery, logsafe
from bot.channels.base import (
    DeliveryError,
    InboundMessage,
    InvalidInput,
    MediaKind,
    OutboundMessage,
    PartsLog,
    Sender,
    SendResult,
)
from bot.config import Settings
from bot.errors import ConfigError, OudertelefoonError
from bot.storage.crypto import AddressVault
from bot.storage.models import Channel, utcnow

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "edited_message")
# Telegram's limit for one text message. Telegram counts UTF-16 code units, so we do too.
TELEGRAM_TEXT_LIMIT = 4096
MAX_UPDATE_BYTES = 1_000_000
# Telegram's ids are signed 64-bit at most; a bigger one is not from Telegram.
MAX_UPDATE_ID = 2**63 - 1
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TOKEN_IN_URL = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")


class TelegramSetupError(OudertelefoonError):
    """setWebhook, deleteWebhook or getUpdates was refused, or Telegram could not be reached."""


# Input ---------------------------------------------------------------------------------------

class InvalidUpdate(ValueError):
    """A body that is not a Telegram update."""


def parse_update(body: bytes) -> Update:
    """The webhook body as a telegram.Update; InvalidUpdate (with a reason) if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        # Not JSON, not UTF-8, an integer of thousands of digits (ValueError), or nested
        # thousands deep (RecursionError): none of it is an update.
        raise InvalidUpdate("the body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidUpdate("the body is not a JSON object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise InvalidUpdate("update_id is missing or not an integer")
    if not 0 <= update_id <= MAX_UPDATE_ID:
        raise InvalidUpdate("update_id is out of range")
    try:
        # No Bot is bound: nothing calls the API through this object.
        update = Update.de_json(data, None)
    # PTB raises KeyError/TypeError/AttributeError (and more) on wrong shapes: all of it is a 400.
    except (Exception, RecursionError):  # noqa: BLE001 - untrusted input: any failure is a bad body
        raise InvalidUpdate("the body is not a Telegram update") from None
    for message in (update.message, update.edited_message):
        if message is None:
            continue
        chat_id = getattr(message.chat, "id", None)
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise InvalidUpdate("message.chat.id is missing or not an integer")
        for value in (message.text, message.caption):
            if value is not None and not isinstance(value, str):
                raise InvalidUpdate("message text or caption is not a string")
    return update


def media_kind(message: Message) -> MediaKind | None:
    """The kind of a non-text message; None for a text message (or a service message)."""
    # Order matters: an animation also carries `document`, a venue also carries `location`.
    checks: tuple[tuple[str, MediaKind], ...] = (
        ("sticker", MediaKind.sticker),
        ("photo", MediaKind.photo),
        ("animation", MediaKind.video),
        ("video", MediaKind.video),
        ("video_note", MediaKind.video),
        ("voice", MediaKind.voice),
        ("audio", MediaKind.voice),
        ("location", MediaKind.location),
        ("document", MediaKind.document),
        ("contact", MediaKind.other),
        ("poll", MediaKind.other),
        ("dice", MediaKind.other),
        ("game", MediaKind.other),
        ("story", MediaKind.other),
        ("paid_media", MediaKind.other),
        ("checklist", MediaKind.other),
    )
    for attribute, kind in checks:
        if getattr(message, attribute, None):
            return kind
    return None


def inbound_from_update(update: Update, vault: AddressVault) -> InboundMessage | None:
    """One InboundMessage for a parent's update, or None when the update is to be ignored."""
    message = update.message or update.edited_message
    if message is None:
        return None  # my_chat_member and other updates without a message
    if message.chat.type != "private":
        return None  # never answer in a group: see the module docstring
    kind = media_kind(message)
    if message.text is not None:
        text, kind = message.text, None
    elif kind is not None:
        text = message.caption or ""
    else:
        return None  # a service message (pinned, chat photo changed, ...): nothing to answer
    address = str(message.chat.id)
    return InboundMessage(
        channel=Channel.telegram,
        pseudonym=vault.pseudonym(Channel.telegram.value, address),
        address_encrypted=vault.encrypt(address),
        provider_message_id=str(update.update_id),
        text=text,
        received_at=utcnow(),
        media_kind=kind,
    )


async def receive_update(services: Any, update: Update) -> bool:
    """Hand one update to the pipeline (the webhook and `poll` both come here).
    Returns False when the update was ignored."""
    with logsafe.scope():  # the words are kept out of the logs while handled, then forgotten
        inbound = inbound_from_update(update, services.vault)
        if inbound is None:
            logger.info("telegram update %d ignored (no private message)", update.update_id)
            return False
        await delivery.process(services, inbound)  # the replies posted at once when it can
    return True


def _secret_ok(given: str | None, settings: Settings) -> bool:
    expected = settings.telegram_webhook_secret
    if not given or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def build_router(get_services: Any) -> APIRouter:
    router = APIRouter()
    ServicesDep = Annotated[Any, Depends(get_services)]

    @router.post(WEBHOOK_PATH)
    async def telegram_webhook(
        request: Request,
        services: ServicesDep,
        secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> JSONResponse:
        """An update from Telegram (authenticated by the webhook's secret token)."""
        if not _secret_ok(secret, services.settings):
            logger.warning("telegram webhook: wrong or missing secret token; refused")
            raise HTTPException(status_code=403, detail="forbidden")
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            raise HTTPException(status_code=413, detail="update too large")
        try:
            update = parse_update(body)
        except InvalidUpdate as error:
            logger.warning("telegram webhook: rejected a body (%s)", error)
            raise HTTPException(status_code=400, detail=f"not a Telegram update: {error}") from None
        try:
            await receive_update(services, update)
        except InvalidInput as error:  # an id we cannot store: Telegram's would fit
            logger.warning("telegram update refused (%s)", error)
            raise HTTPException(status_code=400, detail=str(error)) from None
        # The boundary: Telegram redelivers on 5xx, dedupe makes it safe.
        except Exception as error:  # noqa: BLE001 - the boundary: a 500, never a lost update
            logger.error("telegram update %d failed (%s); Telegram will deliver it again",
                         update.update_id, type(error).__name__)
            return JSONResponse({"ok": False}, status_code=500)
        return JSONResponse({"ok": True})

    return router


# Output --------------------------------------------------------------------------------------

def _units(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji can count as two)."""
    return len(text.encode("utf-16-le")) // 2


def _hard_split(word: str, limit: int) -> list[str]:
    pieces, current = [], ""
    for char in word:
        if current and _units(current + char) > limit:
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


def _fit_line(line: str, limit: int) -> list[str]:
    """One line in pieces of at most `limit`: at spaces, and inside a word only when needed."""
    if _units(line) <= limit:
        return [line]
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if _units(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if _units(word) <= limit:
            current = word
        else:
            *whole, current = _hard_split(word, limit)
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split a text into messages of at most `limit`, at line breaks (a line that is too long on
    its own at spaces). Joined with newlines, the parts give the text back."""
    parts: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        for piece in _fit_line(line, limit):
            candidate = piece if current is None else f"{current}\n{piece}"
            if _units(candidate) <= limit:
                current = candidate
            else:
                if current is not None:
                    parts.append(current)
                current = piece
    if current is not None:
        parts.append(current)
    return [part for part in parts if part.strip()]


class _RedactBotToken(logging.Filter):
    """httpx logs each request URL at INFO, and a Bot API URL contains the bot token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _TOKEN_IN_URL.sub("/bot<token>", message), ()
        return True


def _protect_logs() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactBotToken) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactBotToken())
    # PTB logs every call's parameters (chat id, text) and the token-bearing URL at DEBUG.
    ptb = logging.getLogger("telegram")
    if ptb.level < logging.WARNING:
        ptb.setLevel(logging.WARNING)


def require_token(settings: Settings) -> str:
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value():
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set "
                          "TELEGRAM_BOT_TOKEN")
    return settings.telegram_bot_token.get_secret_value()


def make_bot(settings: Settings, *, poll_read_timeout: float = 10.0) -> Bot:
    """A PTB Bot for TELEGRAM_API_BASE (a fake one in tests)."""
    token = require_token(settings)
    _protect_logs()
    return Bot(
        token,
        base_url=f"{settings.telegram_api_base}/bot",
        base_file_url=f"{settings.telegram_api_base}/file/bot",
        request=HTTPXRequest(connection_pool_size=16, connect_timeout=5.0, read_timeout=10.0,
                             write_timeout=10.0, pool_timeout=10.0),
        get_updates_request=HTTPXRequest(connection_pool_size=2, read_timeout=poll_read_timeout),
    )


def _describe(error: TelegramError, token: str) -> str:
    """An error text for logs and the outbox: Telegram's description, never the token."""
    text = f"{type(error).__name__}: {error.message}"
    return text.replace(token, "<token>")[:200]


def delivery_error(error: TelegramError, token: str) -> DeliveryError:
    """PTB's exception as a DeliveryError: retry when Telegram (or the way to it) is the
    problem, give up when Telegram refuses this chat."""
    description = _describe(error, token)
    # BadRequest is a subclass of NetworkError in PTB: test it first.
    if isinstance(error, (Forbidden, BadRequest, ChatMigrated)):
        return DeliveryError(f"telegram refused: {description}", retryable=False)
    if isinstance(error, InvalidToken):
        # Our configuration, not the parent's chat: keep the reply until the token is fixed.
        logger.error("telegram refused TELEGRAM_BOT_TOKEN; replies wait until it is fixed")
        return DeliveryError(f"telegram: {description}", retryable=True)
    if isinstance(error, (RetryAfter, NetworkError)):  # includes TimedOut, 5xx, connection errors
        return DeliveryError(f"telegram unavailable: {description}", retryable=True)
    return DeliveryError(f"telegram error: {description}", retryable=True)  # unknown: never drop


class TelegramSender(Sender):
    """Sends replies with sendMessage. A text over 4096 characters goes out as several messages
    in order; if one part fails, a retry continues with that part (by any worker: the outbox row
    records the parts sent, see PartsLog)."""

    channels = (Channel.telegram,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._token = require_token(settings)
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Parts already sent and the provider id of the first part: a retry sends only the rest.
        self.parts = PartsLog()

    async def _client(self) -> Bot:
        # httpx connections belong to one event loop; a new loop gets a new client.
        loop = asyncio.get_running_loop()
        if self._bot is None or self._loop is not loop:
            old, self._bot, self._loop = self._bot, make_bot(self.settings), loop
            if old is not None:
                await _shutdown_quietly(old)
        await self._bot.initialize()  # getMe once: checks the token
        return self._bot

    async def send(self, message: OutboundMessage) -> SendResult:
        parts = split_text(message.text)
        if not parts:
            raise DeliveryError("telegram: empty text", retryable=False)
        done, first_id = self.parts.recall(message)
        try:
            bot = await self._client()
            for index in range(done, len(parts)):
                sent = await bot.send_message(chat_id=message.address, text=parts[index])
                if index == 0:
                    first_id = str(sent.message_id)
                if index + 1 < len(parts):
                    await self.parts.record(message.outbox_id, index + 1, first_id)
        except TelegramError as error:
            failure = delivery_error(error, self._token)
            if not failure.retryable:
                self.parts.forget(message.outbox_id)
            raise failure from None
        self.parts.forget(message.outbox_id)
        if len(parts) > 1:
            logger.info("outbox %s sent as %d telegram messages", message.outbox_id, len(parts))
        return SendResult(provider_message_id=first_id)

    async def close(self) -> None:
        bot, self._bot, self._loop = self._bot, None, None
        if bot is not None:
            await _shutdown_quietly(bot)


async def _shutdown_quietly(bot: Bot) -> None:
    try:
        await bot.shutdown()
    except Exception as error:  # noqa: BLE001 - a client of a loop that is gone: nothing to free
        logger.debug("closing an old telegram client failed (%s)", type(error).__name__)


# Setup: set-webhook and poll -----------------------------------------------------------------

@dataclass(frozen=True)
class WebhookStatus:
    bot_username: str | None
    url: str
    allowed_updates: tuple[str, ...]
    pending_update_count: int
    last_error: str | None


async def set_webhook(settings: Settings) -> WebhookStatus:
    """Register PUBLIC_BASE_URL + /webhooks/telegram with the secret token; report what
    Telegram now has (never the token or the secret)."""
    token = require_token(settings)
    if settings.telegram_webhook_secret is None:
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET is not set: choose 32 or more random letters, "
                          "digits, _ or - (Telegram sends it back with every update)")
    secret = settings.telegram_webhook_secret.get_secret_value()
    if not _SECRET_TOKEN.match(secret):
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET: Telegram allows 1-256 characters A-Z, a-z, "
                          "0-9, _ and -")
    url = settings.public_base_url + WEBHOOK_PATH
    if not url.startswith("https://"):
        raise ConfigError(f"PUBLIC_BASE_URL: Telegram only calls https:// webhooks (got "
                          f"{settings.public_base_url!r}); locally, use `oudertelefoon telegram "
                          "poll`")
    try:
        async with make_bot(settings) as bot:
            await bot.set_webhook(url=url, secret_token=secret,
                                  allowed_updates=list(ALLOWED_UPDATES))
            info = await bot.get_webhook_info()
            username = bot.username
    except InvalidToken:
        raise TelegramSetupError("Telegram refused TELEGRAM_BOT_TOKEN") from None
    except TelegramError as error:
        raise TelegramSetupError(f"setWebhook failed: {_describe(error, token)}") from None
    return WebhookStatus(
        bot_username=username,
        url=info.url,
        allowed_updates=tuple(info.allowed_updates or ()),
        pending_update_count=info.pending_update_count,
        last_error=info.last_error_message,
    )


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def poll(
    services: Any,
    stop: asyncio.Event,
    *,
    timeout: int = 30,
    on_ready: Callable[[str | None], Awaitable[None] | None] | None = None,
) -> int:
    """Long-poll getUpdates until `stop` is set, feeding every update through the webhook's
    code path, with the worker running alongside. Returns the number of updates handled.

    The webhook is deleted first (Telegram refuses getUpdates while one is set). An update is
    confirmed (offset moved past it) only once the pipeline has stored it; a stop in between
    means Telegram sends it again next time, and dedupe makes that harmless."""

    settings: Settings = services.settings
    token = require_token(settings)
    if Channel.telegram not in services.senders:  # poll needs no webhook secret; serve does
        services.senders[Channel.telegram] = TelegramSender(settings)
    bot = make_bot(settings, poll_read_timeout=10.0)
    try:
        await bot.initialize()
        await bot.delete_webhook(drop_pending_updates=False)
    except InvalidToken:
        await _shutdown_quietly(bot)
        raise TelegramSetupError("Telegram refused TELEGRAM_BOT_TOKEN") from None
    except TelegramError as error:
        await _shutdown_quietly(bot)
        raise TelegramSetupError(f"deleteWebhook failed: {_describe(error, token)}") from None

    # The same worker loop as `serve` and `worker`, with the desk's tick and the on-call check
    # (this copy used to leave both out: idle claims never came back, no on-call SMS went out).
    worker_task = asyncio.create_task(services.run_worker(stop))
    if on_ready is not None:
        result = on_ready(bot.username)
        if asyncio.iscoroutine(result):
            await result
    handled, offset, pause = 0, None, 1.0
    try:
        while not stop.is_set():
            fetch = asyncio.ensure_future(bot.get_updates(
                offset=offset, timeout=timeout, allowed_updates=list(ALLOWED_UPDATES)))
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if fetch not in done:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
                break
            try:
                updates = fetch.result()
            except InvalidToken:
                raise TelegramSetupError("Telegram refused TELEGRAM_BOT_TOKEN") from None
            except TelegramError as error:
                logger.warning("getUpdates failed (%s); trying again in %.0f s",
                               _describe(error, token), pause)
                await _wait_or_stop(stop, pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = 1.0
            for update in updates:
                try:
                    await receive_update(services, update)
                except InvalidInput as error:  # can never be stored: confirmed and skipped
                    logger.warning("telegram update %d skipped (%s)", update.update_id, error)
                except Exception as error:  # noqa: BLE001 - not confirmed: Telegram resends it
                    logger.error("telegram update %d failed (%s); will fetch it again",
                                 update.update_id, type(error).__name__)
                    await _wait_or_stop(stop, 2.0)
                    break
                offset = update.update_id + 1
                handled += 1
    finally:
        stop.set()
        await worker_task
        await _shutdown_quietly(bot)
    return handled
