"""Settings: defaults, one clear error line naming the variable, production rules."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Environment, NLUBackendName, load_settings
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "NLU_BACKEND", "RASA_URL", "SECRET_KEY",
                 "RETENTION_DAYS", "OUDERTELEFOON_ENV", "THEME_CONFIDENCE_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_defaults_are_the_embedded_ones(tmp_path: Path) -> None:
    settings = load_settings(OUDERTELEFOON_VAR_DIR=tmp_path / "var")
    assert settings.env is Environment.development
    assert settings.nlu_backend is NLUBackendName.embedded
    assert settings.redis_url is None
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'var' / 'oudertelefoon.db').resolve()}"
    assert settings.retention_days == 30
    assert settings.include_unverified_catalogue is True


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RETENTION_DAYS", "abc", "RETENTION_DAYS"),
        ("RETENTION_DAYS", "0", "RETENTION_DAYS"),
        ("NLU_BACKEND", "spacy", "NLU_BACKEND"),
        ("DATABASE_URL", "mysql://localhost/x", "DATABASE_URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL"),
        ("RASA_URL", "localhost:5005", "RASA_URL"),
        ("RASA_TIMEOUT", "-1", "RASA_TIMEOUT"),
        ("THEME_CONFIDENCE_THRESHOLD", "2", "THEME_CONFIDENCE_THRESHOLD"),
        ("OUDERTELEFOON_ENV", "staging", "OUDERTELEFOON_ENV"),
    ],
)
def test_malformed_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("configuration error: ")
    assert expected in message
    assert "\n" not in message


def test_production_requires_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUDERTELEFOON_ENV", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "changeme")
    with pytest.raises(ConfigError, match="SECRET_KEY is too short"):
        load_settings()
    good = "Jq3vN0x_Wm7sTz2LbY8cRk5dHf1gPa4eUo6iVn9wXlE"  # secrets.token_urlsafe(32)
    monkeypatch.setenv("SECRET_KEY", good)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hulp.oudertelefoon.nl")  # also required
    settings = load_settings()
    assert settings.secret == good.encode()
    assert settings.include_unverified_catalogue is False


def test_secret_error_never_echoes_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUDERTELEFOON_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "tooshort-but-secret")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "tooshort-but-secret" not in str(error.value)


def test_development_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    var = tmp_path / "var"
    first = load_settings(OUDERTELEFOON_VAR_DIR=var).secret
    second = load_settings(OUDERTELEFOON_VAR_DIR=var).secret
    assert first == second and len(first) >= 48
    mode = stat.S_IMODE(os.stat(var / "secret_key").st_mode)
    assert mode == 0o600


def test_postgres_urls_use_psycopg() -> None:
    settings = load_settings(DATABASE_URL="postgres://u@127.0.0.1:5432/db")
    assert settings.effective_database_url == "postgresql+psycopg://u@127.0.0.1:5432/db"


def test_command_line_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "RETENTION_DAYS": "soon", "OUDERTELEFOON_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "triage", "hoi"],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "RETENTION_DAYS" in lines[0]


def test_empty_channel_credentials_mean_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert not settings.telegram_enabled and not settings.twilio_enabled
    monkeypatch.setenv("VOLUNTEER_HOURS", "9 to 5")
    with pytest.raises(ConfigError, match="VOLUNTEER_HOURS"):
        load_settings()
