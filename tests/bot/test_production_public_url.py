"""Production refuses to start without a public https PUBLIC_BASE_URL (Twilio signs that address,
Telegram posts only to https, cookies are Secure only over https), and with NLU_BACKEND=rasa
without a random RASA_TOKEN (the Rasa server's --auth-token). Development keeps its defaults."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings, public_base_url_problem
from bot.errors import ConfigError

GOOD_KEY = secrets.token_urlsafe(32)
PUBLIC = "https://hulp.oudertelefoon.nl"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SECRET_KEY", "OUDERTELEFOON_ENV", "PUBLIC_BASE_URL", "NLU_BACKEND", "RASA_TOKEN",
                 "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TWILIO_ACCOUNT_SID",
                 "TWILIO_AUTH_TOKEN", "ON_CALL_PHONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def production(tmp_path: Path, **env: str) -> object:
    return load_settings(OUDERTELEFOON_ENV="production", OUDERTELEFOON_VAR_DIR=tmp_path / "var",
                         **{"SECRET_KEY": GOOD_KEY, **env})


def test_unset_public_base_url_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path)
    message = str(error.value)
    assert message.startswith("configuration error: PUBLIC_BASE_URL is required")
    assert "https://" in message and "\n" not in message
    assert "Make a random secret" not in message  # nothing here is about a secret


@pytest.mark.parametrize("url", [
    "http://hulp.oudertelefoon.nl",        # plain http: no Secure cookies, Twilio signs https
    "http://127.0.0.1:8000",               # the development default, set explicitly
    "https://localhost", "https://localhost:8443", "https://127.0.0.1", "https://127.1.2.3:443",
    "https://[::1]", "https://0.0.0.0", "https://hulp.localhost",
])
def test_http_or_local_public_base_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, PUBLIC_BASE_URL=url)
    message = str(error.value)
    assert "PUBLIC_BASE_URL" in message and "https://" in message


@pytest.mark.parametrize("url", [PUBLIC, "https://hulp.oudertelefoon.nl/", "https://10.1.2.3",
                                 "https://chat.voorbeeld.amsterdam:8443"])
def test_a_public_https_address_is_accepted(tmp_path: Path, url: str) -> None:
    settings = production(tmp_path, PUBLIC_BASE_URL=url)
    assert settings.secure_cookies  # type: ignore[attr-defined]
    assert public_base_url_problem(url) is None


def test_both_problems_are_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        production(tmp_path, SECRET_KEY="changeme", PUBLIC_BASE_URL="http://localhost:8000")
    message = str(error.value)
    assert "SECRET_KEY" in message and "PUBLIC_BASE_URL" in message and "\n" not in message
    assert "changeme" not in message


def test_development_and_test_keep_the_local_default(tmp_path: Path) -> None:
    dev = load_settings(OUDERTELEFOON_VAR_DIR=tmp_path / "var")
    assert dev.public_base_url == "http://127.0.0.1:8000" and not dev.secure_cookies
    test = load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=tmp_path / "var",
                         PUBLIC_BASE_URL="http://localhost:9000")
    assert test.public_base_url == "http://localhost:9000"


def test_rasa_in_production_needs_a_random_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RASA_TOKEN is required with NLU_BACKEND=rasa"):
        production(tmp_path, PUBLIC_BASE_URL=PUBLIC, NLU_BACKEND="rasa")
    with pytest.raises(ConfigError) as error:
        production(tmp_path, PUBLIC_BASE_URL=PUBLIC, NLU_BACKEND="rasa", RASA_TOKEN="rasa-token")
    message = str(error.value)
    assert message.startswith("configuration error: RASA_TOKEN ") and "rasa-token" not in message
    token = secrets.token_urlsafe(32)
    settings = production(tmp_path, PUBLIC_BASE_URL=PUBLIC, NLU_BACKEND="rasa", RASA_TOKEN=token)
    assert settings.rasa_token.get_secret_value() == token  # type: ignore[attr-defined]
    # The embedded backend needs no token.
    production(tmp_path, PUBLIC_BASE_URL=PUBLIC, NLU_BACKEND="embedded")


def test_the_service_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    """`oudertelefoon serve` as docker compose runs it, with PUBLIC_BASE_URL left on localhost."""
    env = {k: v for k, v in os.environ.items() if k not in {"PUBLIC_BASE_URL", "RASA_TOKEN"}}
    env.update({"OUDERTELEFOON_ENV": "production", "SECRET_KEY": GOOD_KEY,
                "OUDERTELEFOON_VAR_DIR": str(tmp_path / "var"),
                "PUBLIC_BASE_URL": "http://127.0.0.1:8000", "NLU_BACKEND": "embedded"})
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--no-worker", "--port", "0"],
                            check=False, capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PUBLIC_BASE_URL" in lines[0]
    assert GOOD_KEY not in result.stderr
    assert not (tmp_path / "var").exists()  # refused before anything was made
