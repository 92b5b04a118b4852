"""Password hashing: argon2id with the library's RFC 9106 defaults, in one place.

Used by the accounts (`bot.accounts.users`) and the logins (`bot.accounts.sessions`); nothing here
knows about HTTP.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (with its own salt and parameters) of `password`."""
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """True when `password` matches `hashed`; False for a mismatch or a malformed hash."""
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    try:
        return _hasher.check_needs_rehash(hashed)
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of a random password: an unknown username costs the same argon2 work as a wrong
    password, so the answer's timing does not tell which it was."""
    return hash_password(secrets.token_urlsafe(16))
