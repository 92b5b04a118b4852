"""Pseudonyms and encrypted channel addresses.

A parent's phone number or chat id is needed to reply, so it is stored only encrypted (Fernet),
in one column, and deleted with the conversation. Everywhere else a keyed pseudonym stands in
for it: HMAC-SHA256 of channel and address under a key derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.errors import OudertelefoonError


class AddressDecryptError(OudertelefoonError):
    """An encrypted address could not be decrypted (wrong SECRET_KEY or damaged data)."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"oudertelefoon", info=purpose).derive(
        secret
    )


class AddressVault:
    """Keyed pseudonyms and reversible encryption of channel addresses, from one secret."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self._pseudonym_key = _derive(secret, b"pseudonym-v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"address-v1")))

    def pseudonym(self, channel: str, address: str) -> str:
        """A stable, non-reversible id for (channel, address); 64 hex characters."""
        message = f"{channel}\x00{address.strip()}".encode()
        return hmac.new(self._pseudonym_key, message, hashlib.sha256).hexdigest()

    def encrypt(self, address: str) -> bytes:
        return self._fernet.encrypt(address.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise AddressDecryptError("channel address could not be decrypted") from None
