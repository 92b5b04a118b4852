"""Settings: the one place that reads the environment.

Every setting comes from an environment variable (or an optional `.env` file in the working
directory). A missing or malformed value fails at start with one line naming the variable, never
on the first parent message.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Production secrets: at least this many bits by a cautious estimate (see `secret_problem`).
MIN_SECRET_BITS = 128
# How to make a good one; named in every refusal.
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Words that mark a value pasted from an example or typed by a person (case and separators are
# ignored). Only words of 5+ letters: a random token holds one by chance about once in 50,000.
_WEAK_WORDS = (
    "change", "secret", "passw", "wachtwoord", "geheim", "example", "voorbeeld", "please",
    "placeholder", "replace", "default", "dummy", "sample", "qwerty", "letmein", "oudertelefoon",
    "telegram", "twilio", "local", "admin", "welkom", "welcome", "insecure", "fixme",
)


def _alphabet(value: str) -> int:
    """The size of the alphabet the value seems drawn from (hex counts as 16)."""
    if re.fullmatch(r"[0-9a-f]+|[0-9A-F]+", value):
        return 16
    return ((26 if re.search(r"[a-z]", value) else 0) + (26 if re.search(r"[A-Z]", value) else 0)
            + (10 if re.search(r"[0-9]", value) else 0)
            + (33 if re.search(r"[^A-Za-z0-9]", value) else 0))


def secret_problem(value: str) -> str | None:
    """Why this value is too weak for a production secret, or None. Never names the value.

    Estimated strength: length x log2(alphabet) at least MIN_SECRET_BITS, and the letter counts
    (Shannon entropy x length) at least 70% of that bound, so repeats do not pass; no run of 8 of
    one character, no repeated block, no common or example word, no phrase of words. A random
    value from `secrets.token_urlsafe(32)` (256 bits) or `openssl rand -hex 32` passes; so does a
    Twilio auth token (32 hex characters, 128 bits)."""
    if len(value) * math.log2(max(_alphabet(value), 2)) < MIN_SECRET_BITS:
        return f"is too short or too simple (less than {MIN_SECRET_BITS} bits)"
    counts: dict[str, int] = {}
    for char in value:
        counts[char] = counts.get(char, 0) + 1
    spread = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if spread < 0.7 * MIN_SECRET_BITS or re.search(r"(.)\1{7}", value):
        return "repeats characters too much"
    for period in range(1, len(value) // 2 + 1):
        if all(value[i] == value[i % period] for i in range(len(value))):
            return "is one short part repeated"
    squashed = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(word in squashed for word in _WEAK_WORDS):
        return "contains a word from an example or a common password"
    letters = re.sub(r"[^A-Za-z]", "", value)
    if (re.fullmatch(r"[A-Za-z\s_.-]+", value)
            and sum(c in "aeiouyAEIOUY" for c in letters) >= 0.34 * len(letters)):
        return "looks like words, not random characters"
    return None


# Hosts that only this machine (or this container) reaches: never the address of a live line.
_LOCAL_HOSTS = ("localhost", "localhost.localdomain", "0.0.0.0", "::", "::1", "[::1]", "[::]")


def public_base_url_problem(url: str) -> str | None:
    """Why `url` cannot be a live line's PUBLIC_BASE_URL, or None. Twilio signs the https address
    it posts to, Telegram only posts to https, and cookies are Secure only over https: an http or
    local address (the development default) would fail every webhook and weaken every login."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return "must be the line's public https:// address (e.g. https://hulp.voorbeeld.nl)"
    if host in _LOCAL_HOSTS or host.endswith(".localhost") or re.fullmatch(r"127(\.\d{1,3}){3}", host):
        return "must be the line's public https:// address, not a local one"
    return None


class Environment(str, enum.Enum):
    development = "development"
    test = "test"
    production = "production"


class NLUBackendName(str, enum.Enum):
    embedded = "embedded"
    rasa = "rasa"


class Settings(BaseSettings):
    """All configuration. Field aliases are the environment variable names (see README)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    env: Environment = Field(default=Environment.development, alias="OUDERTELEFOON_ENV")
    var_dir: Path = Field(default=Path("var"), alias="OUDERTELEFOON_VAR_DIR")
    data_dir: Path = Field(default=REPO_ROOT / "data", alias="OUDERTELEFOON_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    # Prefix of the queue index and live-event keys: lets several installations (or tests) share
    # one Redis.
    redis_prefix: str = Field(default="ot", pattern=r"^[A-Za-z0-9_-]{1,40}$", alias="REDIS_KEY_PREFIX")
    nlu_backend: NLUBackendName = Field(default=NLUBackendName.embedded, alias="NLU_BACKEND")
    rasa_url: str = Field(default="http://127.0.0.1:5005", alias="RASA_URL")
    rasa_timeout: float = Field(default=2.0, gt=0, le=60, alias="RASA_TIMEOUT")
    # The token a Rasa server started with `--auth-token` wants (sent as `?token=`); in production
    # with NLU_BACKEND=rasa it is required and must be random, as the server's train and model
    # endpoints are open to anyone who can reach it without one.
    rasa_token: SecretStr | None = Field(default=None, alias="RASA_TOKEN")
    secret_key: SecretStr | None = Field(default=None, alias="SECRET_KEY")
    retention_days: int = Field(default=30, ge=1, le=3650, alias="RETENTION_DAYS")
    theme_threshold: float = Field(default=0.15, ge=0, le=1, alias="THEME_CONFIDENCE_THRESHOLD")
    catalogue_include_unverified: bool | None = Field(
        default=None, alias="CATALOGUE_INCLUDE_UNVERIFIED"
    )
    region: str = Field(default="amsterdam", alias="DEFAULT_REGION")
    timezone: str = Field(default="Europe/Amsterdam", alias="TIMEZONE")
    # Opening hours per queue, "HH:MM-HH:MM" (24:00 allowed); outside them, nobody is expected.
    volunteer_hours: str = Field(default="09:00-23:00", alias="VOLUNTEER_HOURS")
    professional_hours: str = Field(default="08:00-22:00", alias="PROFESSIONAL_HOURS")
    handling_minutes: int = Field(default=12, ge=1, le=240, alias="AVERAGE_HANDLING_MINUTES")
    public_base_url: str = Field(default="http://127.0.0.1:8000", alias="PUBLIC_BASE_URL")
    # Where the web chat's "Snel weg" button goes: a neutral page (an http(s) address or a path).
    quick_exit_url: str = Field(default="https://www.google.nl/search?q=weer",
                                pattern=r"^(https?://[^\s\"'<>]+|/[^/\s\"'<>][^\s\"'<>]*)$",
                                alias="QUICK_EXIT_URL")
    telegram_bot_token: SecretStr | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_webhook_secret: SecretStr | None = Field(default=None, alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_api_base: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_BASE")
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_sms_from: str | None = Field(default=None, alias="TWILIO_SMS_FROM")
    twilio_whatsapp_from: str | None = Field(default=None, alias="TWILIO_WHATSAPP_FROM")
    twilio_whatsapp_template_sid: str | None = Field(default=None, alias="TWILIO_WHATSAPP_TEMPLATE_SID")
    twilio_api_base: str = Field(default="https://api.twilio.com", alias="TWILIO_API_BASE")
    # The telephone line (bot.channels.voice): numbers a caller in danger is connected to when
    # they press 1 (E.164; the public 113 and Veilig Thuis numbers), the speech-recognition
    # confidence below which the caller is asked again, optional hold music, and how long a
    # volunteer's or professional's phone rings.
    voice_emergency_dial_113: str = Field(
        default="+318000113", pattern=r"^\+[1-9][0-9]{6,14}$", alias="VOICE_EMERGENCY_DIAL_113")
    voice_emergency_dial_veilig_thuis: str = Field(
        default="+318002000", pattern=r"^\+[1-9][0-9]{6,14}$",
        alias="VOICE_EMERGENCY_DIAL_VEILIG_THUIS")
    voice_speech_confidence: float = Field(default=0.4, ge=0, le=1, alias="VOICE_SPEECH_CONFIDENCE")
    voice_hold_music_url: str | None = Field(default=None, alias="VOICE_HOLD_MUSIC_URL")
    voice_dial_timeout: int = Field(default=20, ge=5, le=120, alias="VOICE_DIAL_TIMEOUT_SECONDS")
    # Replies to one conversation go out at most this often: a burst is slowed, never dropped.
    reply_interval_seconds: float = Field(default=1.0, ge=0, le=60, alias="REPLY_INTERVAL_SECONDS")
    # How long a worker holds the replies it leased: a killed worker's replies go out this long
    # later, by another worker. Longer than a round of sends (bot.worker.BATCH).
    outbox_lease_seconds: float = Field(default=60.0, ge=2, le=600, alias="OUTBOX_LEASE_SECONDS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")
    # Handoff: a claimed conversation returns to the queue (its place kept) when the person's
    # dashboard has been away this long, or at once when they go off shift.
    claim_idle_minutes: int = Field(default=15, ge=1, le=720, alias="CLAIM_IDLE_MINUTES")
    # "On shift" means present: a person whose dashboard (its live connection is the heartbeat)
    # has been away this long no longer counts for waits or alerts and is shown as away.
    presence_timeout_seconds: int = Field(default=90, ge=20, le=3600, alias="PRESENCE_TIMEOUT_SECONDS")
    # The on-call professional's phone (E.164): an SMS when an acute conversation waits and nobody
    # at all is present (handoff.oncall). Empty: off. Needs Twilio and TWILIO_SMS_FROM.
    on_call_phone: str | None = Field(default=None, alias="ON_CALL_PHONE")
    # A returning parent is offered first to the person who helped last time, for this long.
    offer_seconds: int = Field(default=120, ge=0, le=3600, alias="CONTINUITY_OFFER_SECONDS")
    session_hours: int = Field(default=12, ge=1, le=168, alias="SESSION_HOURS")
    # Demo volunteer, professional and coordinator with printed logins; default: on in development.
    demo_users: bool | None = Field(default=None, alias="DEMO_USERS")
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated
    # addresses or networks, "*" for any; the same variable and default as uvicorn's). Anyone
    # else's are ignored: the client address and the https scheme come from the connection.
    forwarded_allow_ips: str = Field(default="127.0.0.1", alias="FORWARDED_ALLOW_IPS")
    # Web chat limits (0: off). Messages per minute per chat and per address (many parents can
    # share one address: a mobile network, a library), new chats per address per 10 minutes.
    web_chat_per_chat: int = Field(default=20, ge=0, le=10_000, alias="WEB_CHAT_MESSAGES_PER_MINUTE")
    web_chat_per_address: int = Field(default=60, ge=0, le=100_000,
                                      alias="WEB_CHAT_ADDRESS_MESSAGES_PER_MINUTE")
    web_chat_new_per_address: int = Field(default=10, ge=0, le=100_000,
                                          alias="WEB_CHAT_NEW_CHATS_PER_ADDRESS")

    @field_validator(
        "database_url", "redis_url", "secret_key", "rasa_token", "telegram_bot_token",
        "telegram_webhook_secret",
        "twilio_account_sid", "twilio_auth_token", "twilio_sms_from", "twilio_whatsapp_from",
        "twilio_whatsapp_template_sid", "voice_hold_music_url", "on_call_phone", mode="before",
    )
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        if not value.startswith(("sqlite", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or empty for embedded)")
        return value

    @field_validator("volunteer_hours", "professional_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        from bot.hours import parse_hours

        parse_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Europe/Amsterdam") from None
        return value

    @field_validator("voice_hold_music_url")
    @classmethod
    def _check_hold_music(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (or empty for no music)")
        return value

    @field_validator("on_call_phone")
    @classmethod
    def _check_on_call_phone(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+[1-9][0-9]{6,14}", value.strip()):
            raise ValueError("must be a phone number in E.164 form, e.g. +31612345678 "
                             "(or empty for no on-call SMS)")
        return value.strip() if value is not None else None

    @field_validator("rasa_url", "public_base_url", "telegram_api_base", "twilio_api_base")
    @classmethod
    def _check_rasa_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_forwarded(cls, value: str) -> str:
        import ipaddress

        for item in (part.strip() for part in value.split(",")):
            if item in ("", "*") or item.startswith("unix:"):
                continue
            try:
                ipaddress.ip_network(item)  # as uvicorn reads it: 10.0.0.0/8, not 10.0.0.1/8
            except ValueError:
                raise ValueError("must be addresses or networks separated by commas, or *") from None
        return value

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        """Production refuses weak secrets and a PUBLIC_BASE_URL that is not a public https
        address: one error naming every such variable, never a secret's value. Development and
        tests keep their defaults (a generated SECRET_KEY under var/, http://127.0.0.1:8000)."""
        if self.env is not Environment.production:
            return self
        if self.secret_key is None:
            raise ValueError("SECRET_KEY is required when OUDERTELEFOON_ENV=production; make one "
                             f"with {MAKE_SECRET}")
        problems = []
        checks = [("SECRET_KEY", self.secret_key)]
        if self.telegram_webhook_secret is not None:
            checks.append(("TELEGRAM_WEBHOOK_SECRET", self.telegram_webhook_secret))
        if self.nlu_backend is NLUBackendName.rasa:
            if self.rasa_token is None:
                problems.append("RASA_TOKEN is required with NLU_BACKEND=rasa (the Rasa server's "
                                "--auth-token)")
            else:
                checks.append(("RASA_TOKEN", self.rasa_token))
        for variable, secret in checks:
            raw = secret.get_secret_value()
            problem = secret_problem(raw)
            if variable == "TELEGRAM_WEBHOOK_SECRET" and problem is None and not re.fullmatch(
                    r"[A-Za-z0-9_-]{1,256}", raw):
                problem = "may hold only A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            if problem is not None:
                problems.append(f"{variable} {problem}")
        if self.twilio_account_sid and self.twilio_auth_token is not None:
            raw = self.twilio_auth_token.get_secret_value()
            if not re.fullmatch(r"[0-9a-fA-F]{32}", raw) or secret_problem(raw) is not None:
                problems.append("TWILIO_AUTH_TOKEN is not a Twilio auth token (32 hex characters "
                                "from the Twilio console)")
        weak_secret = bool(problems)  # every problem so far is about a secret
        if "public_base_url" not in self.model_fields_set:
            problems.append("PUBLIC_BASE_URL is required (the line's public https:// address, "
                            "e.g. https://hulp.voorbeeld.nl)")
        elif (public_problem := public_base_url_problem(self.public_base_url)) is not None:
            problems.append(f"PUBLIC_BASE_URL {public_problem}")
        if problems:
            raise ValueError("; ".join(problems) + " in production (OUDERTELEFOON_ENV=production)."
                             + (f" Make a random secret with {MAKE_SECRET}" if weak_secret else ""))
        return self

    @model_validator(mode="after")
    def _check_on_call(self) -> Settings:
        # A configured safety alert that could never be sent is refused at start: better a failed
        # deploy that names what to fix than a quiet night without the alert.
        if self.on_call_phone is not None and not (self.twilio_enabled and self.twilio_sms_from):
            raise ValueError("ON_CALL_PHONE is set but the SMS cannot be sent: set "
                             "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SMS_FROM, "
                             "or leave ON_CALL_PHONE empty")
        return self

    # Derived values -------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'oudertelefoon.db').resolve()}"

    @property
    def include_unverified_catalogue(self) -> bool:
        if self.catalogue_include_unverified is not None:
            return self.catalogue_include_unverified
        return self.env is not Environment.production

    @cached_property
    def secret(self) -> bytes:
        """The secret key bytes; in development generated once into var/secret_key."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode("utf-8")
        path = self.var_dir / "secret_key"
        if path.exists():
            return path.read_text(encoding="utf-8").strip().encode("utf-8")
        self.var_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Several processes may start at once (serve --workers, a worker): each writes its key
        # into a file of its own (owner-only), then links it to the name. A link is atomic and
        # never replaces: one key wins, complete, and every process reads that one.
        temp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, path)
            except FileExistsError:
                return path.read_text(encoding="utf-8").strip().encode("utf-8")
        finally:
            temp.unlink(missing_ok=True)
        logger.info("generated a development SECRET_KEY in %s", path)
        return key.encode("utf-8")

    @property
    def demo_users_enabled(self) -> bool:
        if self.demo_users is not None:
            return self.demo_users and self.env is not Environment.production
        return self.env is Environment.development

    @property
    def secure_cookies(self) -> bool:
        """Cookies marked Secure when the service is reached over https (PUBLIC_BASE_URL; a
        request that came over https through a trusted proxy gets them Secure as well, see
        bot.web.security)."""
        return self.public_base_url.startswith("https://")

    @property
    def api_docs_enabled(self) -> bool:
        """/docs, /redoc and /openapi.json: not in production."""
        return self.env is not Environment.production

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None and self.telegram_webhook_secret is not None

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def nlu_dir(self) -> Path:
        return self.data_dir / "nlu"

    @property
    def aanbod_dir(self) -> Path:
        return self.data_dir / "aanbod"

    @property
    def risk_dir(self) -> Path:
        return self.data_dir / "risk"

    @property
    def messages_dir(self) -> Path:
        return self.data_dir / "messages"


# Never echoed in an error message.
_SECRET_VARIABLES = {(f.alias or name).upper() for name, f in Settings.model_fields.items()
                     if f.annotation is not None and "SecretStr" in str(f.annotation)}
_SECRET_VARIABLES |= {"DATABASE_URL", "REDIS_URL"}  # may hold a password


def _format_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable."""
    alias_by_field = {name: (f.alias or name).upper() for name, f in Settings.model_fields.items()}
    parts = []
    for item in error.errors():
        loc = [str(x) for x in item.get("loc", ())]
        variable = alias_by_field.get(loc[0], loc[0].upper()) if loc else "configuration"
        message = item.get("msg", "invalid value")
        message = message.removeprefix("Value error, ")
        value = item.get("input")
        if loc and isinstance(value, (str, int, float)) and variable not in _SECRET_VARIABLES:
            parts.append(f"{variable}: {message} (got {value!r})")
        else:
            parts.append(f"{variable}: {message}" if loc else message)
    return "configuration error: " + "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; raise ConfigError with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_format_error(error)) from None
