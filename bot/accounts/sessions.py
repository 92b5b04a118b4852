"""Logins and sessions of dashboard users, without HTTP (the web layer's bot.web.auth puts them
behind cookies, forms and FastAPI dependencies).

- Passwords: argon2id (bot.accounts.passwords); a hash made with older parameters is replaced at
  the next successful login.
- Sessions: the cookie's token is random; the database keeps only its SHA-256, so a dump of
  `user_sessions` gives no usable session. A session expires `session_hours` after it was last
  used (the expiry slides). Deactivating a user ends them.
- Login attempts are limited in Redis (5 failures per username and address, 30 per address, per
  15 minutes), counted before the password is checked, in one server-side step, so tries sent
  at once cannot pass the limit together; keys are keyed hashes, never a plain username or
  address. A name that no account can have (a NUL in it) is a plain failed login.
- Nothing here logs a password, a token, a username that failed, or an address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.passwords import dummy_hash as _dummy_hash
from bot.accounts.passwords import hash_password, needs_rehash, verify_password
from bot.accounts.users import USERNAME, audit, normalize_username
from bot.config import Settings
from bot.errors import OudertelefoonError
from bot.rules import QueueName
from bot.storage import db
from bot.storage.models import Role, User, UserSession, aware, role_may_take, role_queues, utcnow
from bot.storage.redis import key as redis_key

logger = logging.getLogger(__name__)

LOGIN_WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_USER_IP = 5
MAX_FAILURES_PER_IP = 30
# A session's last use is written at most this often (SSE and polling would write constantly).
SLIDE_EVERY = timedelta(seconds=60)
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
MAX_USERNAME_CHARS = 64

# The login limiter's one step: count the attempt under both keys (a window starts with its first
# attempt), and return both counts; the caller refuses above the limits. Refused attempts count
# too, which changes nothing: the window does not move.
_COUNT_ATTEMPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
"""
# A login that succeeded: the name's count goes; the address's count gives back this attempt
# (never below zero, never a key without its expiry).
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > 0 then redis.call('DECR', KEYS[2]) end
return n
"""
_MAX_PASSWORD = 1024

MSG_FAILED = "Gebruikersnaam of wachtwoord klopt niet."
MSG_LIMITED = ("Te veel mislukte pogingen. Wacht een kwartier en probeer het dan opnieuw, "
               "of vraag een coördinator om hulp.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Person:
    """The logged-in dashboard user, as routes and templates see it."""

    user_id: str
    username: str
    display_name: str
    role: Role
    languages: tuple[str, ...]
    csrf_token: str

    def may_take(self, queue: QueueName) -> bool:
        return role_may_take(self.role, queue)

    @property
    def queues(self) -> tuple[QueueName, ...]:
        return role_queues(self.role)

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.coordinator


def _person(user: User, csrf_token: str) -> Person:
    return Person(user_id=user.id, username=user.username, display_name=user.display_name,
                  role=user.role, languages=tuple(user.languages or ("nl",)), csrf_token=csrf_token)


class LoginFailed(OudertelefoonError):
    """Unknown user, wrong password or inactive user: one message for all three."""

    def __init__(self) -> None:
        super().__init__(MSG_FAILED)


class LoginRateLimited(OudertelefoonError):
    """Too many failed logins from this address (for this username)."""

    def __init__(self) -> None:
        super().__init__(MSG_LIMITED)


class Auth:
    """Logins and sessions on the SQL database, the login limiter on Redis."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], redis: redis.Redis,
                 *, clock: Callable[[], datetime] = utcnow, prefix: str | None = None) -> None:
        self.settings = settings
        self.factory = factory
        self.redis = redis
        self.clock = clock
        self.prefix = prefix if prefix is not None else settings.redis_prefix

    # hashing of identifiers -------------------------------------------------------------------

    def _keyed(self, purpose: str, value: str) -> str:
        return hmac.new(self.settings.secret, f"{purpose}:{value}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def ip_hash(self, client_ip: str) -> str:
        """What the audit log keeps of an address: a keyed hash, enough to see a pattern."""
        return self._keyed("ip", client_ip)[:16]

    def _limit_keys(self, username: str, client_ip: str) -> tuple[str, str]:
        return (redis_key(self.prefix, "login", "u",
                          self._keyed("login-user-ip", username + "|" + client_ip)),
                redis_key(self.prefix, "login", "ip", self._keyed("login-ip", client_ip)))

    # the login limiter ------------------------------------------------------------------------

    def _count_attempt(self, keys: tuple[str, str]) -> bool:
        """Count this attempt first, then check, in one step on the server: of many tries sent at
        once, only the allowed number reach the password check. True: refused."""
        try:
            per_user, per_ip = self.redis.eval(_COUNT_ATTEMPT, 2, *keys, LOGIN_WINDOW_SECONDS)
        except redis.RedisError as error:
            # Redis down: no limiter. argon2 (tens of milliseconds per attempt) is then the only
            # brake on guessing, which is acceptable for the minutes of a Redis restart; a login
            # must keep working for the people on shift.
            logger.warning("login limiter unavailable (%s): letting argon2 be the brake",
                           type(error).__name__)
            return False
        return int(per_user) > MAX_FAILURES_PER_USER_IP or int(per_ip) > MAX_FAILURES_PER_IP

    def _clear_user_failures(self, keys: tuple[str, str]) -> None:
        """A login that succeeded: its name's count starts over, and the address gets back the
        attempt counted for it (only failures count against an address)."""
        try:
            self.redis.eval(_SUCCEEDED, 2, *keys)
        except redis.RedisError as error:
            logger.warning("login limiter unavailable (%s)", type(error).__name__)

    # login and sessions -----------------------------------------------------------------------

    def login(self, username: str, password: str, client_ip: str) -> tuple[Person, str]:
        """Check the password and open a session; returns the person and the cookie token.

        Raises LoginRateLimited while this address (and username) has too many recent failures,
        even for the right password; LoginFailed for an unknown user, a wrong password or an
        inactive user, alike.
        """
        username = normalize_username(username)[:MAX_USERNAME_CHARS + 1]
        keys = self._limit_keys(username, client_ip)
        if self._count_attempt(keys):
            logger.warning("login refused: too many failures from one address")
            raise LoginRateLimited()
        now = self.clock()
        with db.transaction(self.factory) as session:
            # A name no account can have (a NUL, a control character, a space) is a failed login
            # like any other, without asking the database (PostgreSQL refuses a NUL in text).
            user = session.scalar(select(User).where(User.username == username)) \
                if USERNAME.match(username) else None
            ok = len(password) <= _MAX_PASSWORD and verify_password(
                user.password_hash if user is not None else _dummy_hash(), password)
            if user is None or not ok or not user.active:
                audit(session, "login_failed", None, ip=self.ip_hash(client_ip))
                failed = True
            else:
                failed = False
                if needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                    logger.info("password hash of user %s upgraded", user.id)
                token = secrets.token_urlsafe(32)
                csrf = secrets.token_urlsafe(32)
                # Housekeeping: this user's sessions that ran out.
                session.execute(delete(UserSession).where(
                    UserSession.user_id == user.id, UserSession.expires_at <= now))
                session.add(UserSession(id=token_hash(token), user_id=user.id, csrf_token=csrf,
                                        created_at=now, last_seen_at=now,
                                        expires_at=now + self._lifetime))
                user.last_login_at = now
                audit(session, "login", user.id, ip=self.ip_hash(client_ip))
                person = _person(user, csrf)
        if failed:
            logger.info("login failed")
            raise LoginFailed()
        self._clear_user_failures(keys)
        logger.info("login of user %s", person.user_id)
        return person, token

    @property
    def _lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)

    def logout(self, token: str) -> None:
        """End the session of this cookie token (nothing happens for an unknown one)."""
        if not token or not TOKEN_SHAPE.match(token):
            return
        with db.transaction(self.factory) as session:
            row = session.get(UserSession, token_hash(token))
            if row is not None:
                session.delete(row)
                audit(session, "logout", row.user_id)
                logger.info("logout of user %s", row.user_id)

    def resolve(self, token: str | None) -> tuple[Person, bool] | None:
        """The person of a cookie token and whether its expiry just slid; None when the token is
        unknown, the session expired, or the user is no longer active (the session then ends)."""
        if not token or not TOKEN_SHAPE.match(token):
            return None
        now = self.clock()
        with db.transaction(self.factory) as session:
            row = session.get(UserSession, token_hash(token))
            if row is None:
                return None
            user = session.get(User, row.user_id)
            expires_at = aware(row.expires_at)
            if user is None or not user.active or expires_at is None or expires_at <= now:
                session.delete(row)
                return None
            slid = False
            last_seen = aware(row.last_seen_at)
            if last_seen is None or now - last_seen >= SLIDE_EVERY:
                row.last_seen_at = now
                row.expires_at = now + self._lifetime
                slid = True
            return _person(user, row.csrf_token), slid

    def person(self, token: str | None) -> Person | None:
        """The person of a cookie token; None: unknown, expired, or user inactive."""
        found = self.resolve(token)
        return found[0] if found else None

    def end_sessions(self, user_id: str) -> None:
        """End every session of a user (on deactivation)."""
        with db.transaction(self.factory) as session:
            session.execute(delete(UserSession).where(UserSession.user_id == user_id))

    # the login form's CSRF (before there is a session) ---------------------------------------

    def login_form_token(self, nonce: str) -> str:
        """The form's half of the signed double-submit: a keyed hash of the cookie's nonce, so a
        cookie planted by a neighbouring site cannot be paired with a form it made up."""
        return self._keyed("login-csrf", nonce)

    def login_form_ok(self, nonce: str | None, form_token: str | None) -> bool:
        if not nonce or not form_token or not TOKEN_SHAPE.match(nonce):
            return False
        return hmac.compare_digest(self.login_form_token(nonce).encode(), form_token.encode())
