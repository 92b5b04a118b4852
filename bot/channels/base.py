"""The one inbound and one outbound message type, and the sender interface."""

from __future__ import annotations

import abc
import enum
import re
from dataclasses import dataclass
from datetime import datetime

from bot import logsafe
from bot.errors import OudertelefoonError
from bot.storage.models import Channel

# A message longer than this is stored up to this length (and triaged on far less).
MAX_STORED_CHARS = 20_000
# messages.provider_message_id is VARCHAR(128); Twilio's sids are 34, Telegram's update ids < 20.
MAX_PROVIDER_ID_CHARS = 128

# Control characters (C0 and C1, DEL) except tab, newline and carriage return. PostgreSQL cannot
# store NUL at all; the others are invisible and only get in the way (of triage, of the dashboard).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A surrogate on its own (half an emoji, from a broken client): not a character, cannot be encoded.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class InvalidInput(OudertelefoonError, ValueError):
    """Input a channel cannot take (answered 400: bot.web.hardening). Its message names the
    field and the problem, never the value."""


def clean_text(text: str) -> str:
    """A parent's text as every channel hands it on: control characters other than tab and line
    breaks removed, a lone surrogate replaced by U+FFFD; everything else (emoji, right-to-left
    text and its marks, zero-width joiners, any length) kept as it is."""
    if not isinstance(text, str):
        raise InvalidInput("text must be a string")
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub(REPLACEMENT, text)


def clean_provider_id(value: str, field: str = "provider_message_id",
                      limit: int = MAX_PROVIDER_ID_CHARS) -> str:
    """A provider's id as we may store and look it up: printable and at most `limit` long;
    InvalidInput (400) otherwise. Never shortened or changed: it is the dedupe key."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")
    if _CONTROL.search(value) or _SURROGATE.search(value) or "\t" in value or "\n" in value \
            or "\r" in value:
        raise InvalidInput(f"{field} contains characters that are not allowed")
    return value


class MediaKind(str, enum.Enum):
    photo = "photo"
    voice = "voice"
    video = "video"
    sticker = "sticker"
    location = "location"
    document = "document"
    other = "other"


@dataclass(frozen=True)
class InboundMessage:
    """A parent's message as every channel hands it to the conversation core.

    The plain phone number or chat id never gets here: only its keyed pseudonym and the
    encrypted address needed to answer. Telegram's commands arrive as their text ("/start").
    """

    channel: Channel
    pseudonym: str
    address_encrypted: bytes
    provider_message_id: str
    text: str
    received_at: datetime
    media_kind: MediaKind | None = None

    def __post_init__(self) -> None:
        # The one normalisation at the adapter boundary: every channel builds this, so no
        # channel can hand the pipeline a NUL, a lone surrogate or an id the column cannot hold.
        object.__setattr__(self, "text", clean_text(self.text))
        object.__setattr__(self, "provider_message_id", clean_provider_id(self.provider_message_id))
        logsafe.hold(self.text)  # from here on, these words never reach a log line


@dataclass(frozen=True)
class OutboundMessage:
    """One reply for a sender; `address` is decrypted only just before sending."""

    outbox_id: str
    channel: Channel
    address: str
    text: str
    conversation_id: str | None = None
    template: bool = False  # WhatsApp outside the 24-hour window: send the approved template
    # A split reply: parts the provider already accepted (by any process; the outbox row keeps
    # them) and the provider id the sender recorded with them. The sender sends only the rest.
    parts_sent: int = 0
    part_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None


class DeliveryError(OudertelefoonError):
    """A provider did not take the message. `retryable`: try again later (provider down, 5xx,
    429); otherwise give up (bad address, blocked bot)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class PartsLog:
    """Where a sender records the parts of a split reply the provider accepted, so a retry sends
    only the rest. This one remembers in this process; the worker installs one that writes the
    outbox row (bot.worker.SqlPartsLog), so a retry by another worker sends only the rest too."""

    LIMIT = 1000  # rows the worker gave up on are forgotten, oldest first

    def __init__(self) -> None:
        self._memory: dict[str, tuple[int, str | None]] = {}

    def recall(self, message: OutboundMessage) -> tuple[int, str | None]:
        """Parts already accepted and their recorded provider id: the row's or this process's,
        whichever got further."""
        known = self._memory.get(message.outbox_id, (0, None))
        return known if known[0] > message.parts_sent else (message.parts_sent, message.part_id)

    async def record(self, outbox_id: str, done: int, provider_id: str | None) -> None:
        if outbox_id not in self._memory and len(self._memory) >= self.LIMIT:
            self._memory.pop(next(iter(self._memory)))
        self._memory[outbox_id] = (done, provider_id)

    def forget(self, outbox_id: str) -> None:
        self._memory.pop(outbox_id, None)


class Sender(abc.ABC):
    """Delivers replies on one or more channels. Implementations are async and never block."""

    channels: tuple[Channel, ...] = ()
    parts: PartsLog  # senders that split a reply set their own (PartsLog()) in __init__

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raise DeliveryError when the provider refuses or is down."""

    async def close(self) -> None:  # an optional hook: nothing to release by default
        """Release connections."""
