"""Production refuses weak secrets (SECRET_KEY, TELEGRAM_WEBHOOK_SECRET, TWILIO_AUTH_TOKEN) with one
error line naming the variable and never the value; development and tests keep their defaults."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest

from bot.config import REPO_ROOT, load_settings, secret_problem
from bot.errors import ConfigError

GOOD_KEY = secrets.token_urlsafe(32)
TWILIO_SID = "AC" + "0" * 32
PUBLIC = "https://hulp.oudertelefoon.nl"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SECRET_KEY", "OUDERTELEFOON_ENV", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET",
                 "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_SMS_FROM", "ON_CALL_PHONE",
                 "PUBLIC_BASE_URL", "NLU_BACKEND", "RASA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def production(tmp_path: Path, **env: str) -> object:
    return load_settings(OUDERTELEFOON_ENV="production", OUDERTELEFOON_VAR_DIR=tmp_path / "var",
                         **{"SECRET_KEY": GOOD_KEY, "PUBLIC_BASE_URL": PUBLIC, **env})


WEAK = [
    "a" * 32,
    "a" * 64,
    "please-change-this-to-a-real-secret",
    "changeme",
    "x",
    "0123456789abcdef0123456789abcdef",       # a block repeated
    "ab" * 32,
    "correct-horse-battery-staple-is-not-random",
    "ikhouvanmijnkinderenenzijhoudenvanmijheelveel",
    "supersecretpassword1234567890!!",
    "s" * 20 + "0123456789abcdef",
    secrets.token_hex(8),                      # 64 bits: too short
]


@pytest.mark.parametrize("weak", WEAK)
def test_weak_secret_key_is_refused_without_its_value(tmp_path: Path, weak: str) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, SECRET_KEY=weak)
    message = str(error.value)
    assert message.startswith("configuration error: SECRET_KEY ")
    assert weak not in message and "\n" not in message
    assert "token_urlsafe" in message  # how to make a good one


@pytest.mark.parametrize("weak", ["x", "a" * 40, "please-change-this-to-a-real-secret",
                                  "telegram-webhook-secret-2024"])
def test_weak_telegram_secret_is_refused_when_telegram_is_on(tmp_path: Path, weak: str) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, TELEGRAM_BOT_TOKEN="123456:ABC-def", TELEGRAM_WEBHOOK_SECRET=weak)
    message = str(error.value)
    assert "TELEGRAM_WEBHOOK_SECRET" in message and "SECRET_KEY " not in message
    assert weak not in message and "123456:ABC-def" not in message


def test_telegram_secret_must_use_telegrams_characters(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET may hold only"):
        production(tmp_path, TELEGRAM_BOT_TOKEN="123456:ABC-def",
                   TELEGRAM_WEBHOOK_SECRET=secrets.token_urlsafe(32) + "!+/")


@pytest.mark.parametrize("weak", ["local", "x" * 32, "0" * 32, secrets.token_urlsafe(32),
                                  secrets.token_hex(16)[:31]])
def test_twilio_token_must_be_32_hex_characters(tmp_path: Path, weak: str) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, TWILIO_ACCOUNT_SID=TWILIO_SID, TWILIO_AUTH_TOKEN=weak)
    message = str(error.value)
    assert "TWILIO_AUTH_TOKEN" in message and weak not in message


def test_every_weak_secret_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, SECRET_KEY="a" * 32, TELEGRAM_BOT_TOKEN="1:A",
                   TELEGRAM_WEBHOOK_SECRET="x", TWILIO_ACCOUNT_SID=TWILIO_SID,
                   TWILIO_AUTH_TOKEN="local")
    message = str(error.value)
    for variable in ("SECRET_KEY", "TELEGRAM_WEBHOOK_SECRET", "TWILIO_AUTH_TOKEN"):
        assert variable in message
    assert "\n" not in message and "local" not in message.replace("TWILIO", "")


def test_strong_secrets_pass(tmp_path: Path) -> None:
    settings = production(tmp_path, TELEGRAM_BOT_TOKEN="123456:ABC-def",
                          TELEGRAM_WEBHOOK_SECRET=secrets.token_urlsafe(32),
                          TWILIO_ACCOUNT_SID=TWILIO_SID, TWILIO_AUTH_TOKEN=secrets.token_hex(16))
    assert settings.telegram_enabled and settings.twilio_enabled  # type: ignore[attr-defined]


def test_random_secrets_pass_nearly_always() -> None:
    """The measure refuses a fresh random value (of the sizes we advise) almost never."""
    makers = [lambda: secrets.token_urlsafe(32), lambda: secrets.token_urlsafe(48),
              lambda: secrets.token_hex(32), lambda: secrets.token_hex(16)]
    refused = sum(secret_problem(make()) is not None for make in makers for _ in range(5000))
    assert refused <= 2


def test_development_and_test_keep_their_defaults(tmp_path: Path) -> None:
    dev = load_settings(OUDERTELEFOON_VAR_DIR=tmp_path / "var", TELEGRAM_BOT_TOKEN="1:A",
                        TELEGRAM_WEBHOOK_SECRET="x", TWILIO_ACCOUNT_SID=TWILIO_SID,
                        TWILIO_AUTH_TOKEN="local")
    assert dev.telegram_enabled and dev.twilio_enabled
    assert len(dev.secret) >= 48  # generated under var/
    test = load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=tmp_path / "var",
                         SECRET_KEY="test")
    assert test.secret == b"test"


def test_the_documented_ways_to_make_a_secret_make_good_ones() -> None:
    """README and docker-compose.yml tell how to make a secret: what they print passes."""
    texts = (REPO_ROOT / "README.md").read_text(encoding="utf-8") + (
        REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "openssl rand -hex 16" not in texts  # 128 bits exactly: too close to the bound
    commands = set(re.findall(r"python3? -c ['\"]import secrets; print\(secrets\.token_\w+\(\d+\)\)['\"]",
                              texts))
    commands |= set(re.findall(r"openssl rand -hex \d+", texts))
    assert commands
    for command in commands:
        made = subprocess.run(["bash", "-c", command.replace("python3 ", "python3 ")], text=True,
                              capture_output=True, check=True).stdout.strip()
        assert secret_problem(made) is None, command
