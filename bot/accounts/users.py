"""Dashboard users: adding, (de)activating, and the demo logins of a development machine.

Passwords are hashed with argon2id (bot.accounts.passwords). The demo users exist only where
`settings.demo_users_enabled` (development by default, never production); their passwords are
derived from the secret key, so they are the same on every start and differ per machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.passwords import hash_password, verify_password
from bot.config import Settings
from bot.errors import OudertelefoonError
from bot.storage import db
from bot.storage.crypto import AddressDecryptError
from bot.storage.models import AuditLog, Role, User, UserSession

logger = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # argon2 would take any length; a megabyte "password" is an attack
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
# A person's own number for calls (the telephone line dials it): E.164, stored only encrypted.
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")

# The Dutch name of each role, as the dashboard and the start-up lines show it.
ROLE_NAMES: dict[Role, str] = {
    Role.volunteer: "vrijwilliger",
    Role.professional: "hulpverlener",
    Role.coordinator: "coördinator",
}

DEMO_USERS: tuple[tuple[str, str, Role], ...] = (
    ("demo-vrijwilliger", "Sanne (demo)", Role.volunteer),
    ("demo-hulpverlener", "Mark (demo)", Role.professional),
    ("demo-coordinator", "Fatima (demo)", Role.coordinator),
)


class UserError(OudertelefoonError):
    """A user cannot be added or changed; the message is Dutch and safe to show."""


def normalize_username(username: str) -> str:
    return username.strip().lower()


def parse_languages(languages: str | Sequence[str]) -> list[str]:
    """ISO codes from "nl, en" or a sequence; Dutch always first (everyone helps in Dutch)."""
    items = languages.split(",") if isinstance(languages, str) else list(languages)
    result = ["nl"]
    for item in items:
        code = item.strip().lower()
        if not code:
            continue
        if not LANGUAGE.match(code):
            raise UserError(f"Onbekende taalcode: {code[:10]!r} (gebruik bijvoorbeeld nl, en, ar)")
        if code not in result:
            result.append(code)
    return result


# No 0/o, 1/l/i: a generated password is read off a screen and typed in once.
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"


def generate_password() -> str:
    """A random password for a new user (four groups of four, about 79 bits), shown once."""
    chars = [secrets.choice(_READABLE) for _ in range(16)]
    return "-".join("".join(chars[i:i + 4]) for i in range(0, 16, 4))


def add_user(session: Session, *, username: str, display_name: str, role: Role, password: str,
             languages: Sequence[str] = ("nl",)) -> User:
    """Add a user; raise UserError for a bad or taken username, a short password, bad languages."""
    username = normalize_username(username)
    if not USERNAME.match(username):
        raise UserError("Gebruikersnaam: 2 tot 64 tekens, kleine letters, cijfers, punt, streepje "
                        "of liggend streepje, beginnend met een letter of cijfer.")
    display_name = " ".join(display_name.split())
    if not display_name or len(display_name) > 64:
        raise UserError("Weergavenaam: 1 tot 64 tekens.")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"Het wachtwoord moet minstens {MIN_PASSWORD_CHARS} tekens hebben.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"Het wachtwoord mag hoogstens {MAX_PASSWORD_CHARS} tekens hebben.")
    codes = parse_languages(languages)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"De gebruikersnaam {username} is al in gebruik.")
    user = User(username=username, display_name=display_name, role=Role(role),
                password_hash=hash_password(password), languages=codes, active=True)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # added by someone else between the check and the insert
        raise UserError(f"De gebruikersnaam {username} is al in gebruik.") from None
    logger.info("user added: %s (%s)", user.id, user.role.value)
    return user


def find_user(session: Session, username_or_id: str) -> User:
    user = session.scalar(select(User).where(User.username == normalize_username(username_or_id)))
    if user is None:
        user = session.get(User, username_or_id)
    if user is None:
        raise UserError("Deze gebruiker bestaat niet.")
    return user


def set_active(session: Session, user_id: str, active: bool) -> User:
    """Activate or deactivate a user. Deactivating ends every session of theirs at once (their
    open shift and claims are the desk's: `Desk.stop_shift`)."""
    user = session.get(User, user_id)
    if user is None:
        raise UserError("Deze gebruiker bestaat niet.")
    user.active = active
    if not active:
        session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    session.flush()
    logger.info("user %s %s", user_id, "activated" if active else "deactivated")
    return user


def normalize_phone(number: str) -> str:
    """A phone number as E.164 ("+31 6 1234 5678" and "0031612345678" -> "+31612345678");
    UserError (without the number) otherwise."""
    cleaned = re.sub(r"[\s().-]", "", number.strip())
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if not PHONE.match(cleaned):
        raise UserError("Telefoonnummer: gebruik het internationale formaat met landcode, "
                        "bijvoorbeeld +31612345678.")
    return cleaned


def set_phone(session: Session, user_id: str, number: str | None, vault: Any) -> User:
    """Set (E.164, encrypted with the AddressVault) or clear (None) a person's number for calls.
    The number is never logged."""
    user = session.get(User, user_id)
    if user is None:
        raise UserError("Deze gebruiker bestaat niet.")
    user.phone_encrypted = None if number is None else vault.encrypt(normalize_phone(number))
    session.flush()
    logger.info("user %s: phone number for calls %s", user_id, "cleared" if number is None else "set")
    return user


def phone_hint(user: User, vault: Any) -> str | None:
    """How the dashboard shows a person's number: never in full. None when there is none."""
    if user.phone_encrypted is None:
        return None
    try:
        number = vault.decrypt(user.phone_encrypted)
    except AddressDecryptError:  # another secret key: set it again
        return "ingesteld (niet leesbaar, vul opnieuw in)"
    return f"ingesteld (eindigt op {number.strip()[-2:]})"


def audit(session: Session, action: str, user_id: str | None, **detail: object) -> None:
    session.add(AuditLog(user_id=user_id, action=action, detail=detail or None))


def demo_password(settings: Settings, username: str) -> str:
    """The demo user's password: stable per secret key, so the printed login keeps working."""
    digest = hmac.new(settings.secret, f"demo:{username}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:16].lower()


def ensure_demo_users(settings: Settings,
                      factory: sessionmaker[Session]) -> list[tuple[str, str, Role]]:
    """Where demo users are enabled: create the missing ones, and return (username, password,
    role) of every active demo user, to print. Elsewhere (production, DEMO_USERS=false): []."""
    if not settings.demo_users_enabled:
        return []
    logins: list[tuple[str, str, Role]] = []
    with db.transaction(factory) as session:
        for username, display_name, role in DEMO_USERS:
            password = demo_password(settings, username)
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                user = add_user(session, username=username, display_name=display_name, role=role,
                                password=password, languages=("nl", "en"))
                audit(session, "user_added", None, user=user.id, role=role.value, by="demo")
            elif not user.active:
                continue  # a coordinator switched it off: respect that
            elif not verify_password(user.password_hash, password):
                # The secret key changed (var/ removed, database kept): make the printed login true.
                user.password_hash = hash_password(password)
            logins.append((username, password, role))
    return logins
