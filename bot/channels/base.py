"""The one inbound and one outbound message type, and the sender interface."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from datetime import datetime

from bot.errors import OudertelefoonError
from bot.storage.models import Channel

# A message longer than this is stored up to this length (and triaged on far less).
MAX_STORED_CHARS = 20_000


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


@dataclass(frozen=True)
class OutboundMessage:
    """One reply for a sender; `address` is decrypted only just before sending."""

    outbox_id: str
    channel: Channel
    address: str
    text: str
    conversation_id: str | None = None
    template: bool = False  # WhatsApp outside the 24-hour window: send the approved template


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None


class DeliveryError(OudertelefoonError):
    """A provider did not take the message. `retryable`: try again later (provider down, 5xx,
    429); otherwise give up (bad address, blocked bot)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sender(abc.ABC):
    """Delivers replies on one or more channels. Implementations are async and never block."""

    channels: tuple[Channel, ...] = ()

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raise DeliveryError when the provider refuses or is down."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""
