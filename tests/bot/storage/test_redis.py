"""The Redis seam: the embedded server by default, REDIS_URL when set; a real server either way."""

from __future__ import annotations

import uuid
from pathlib import Path

from bot.config import Settings, load_settings
from bot.storage.redis import connect


def test_connect_gives_a_working_redis(settings: Settings) -> None:
    client = connect(settings)
    key = f"ot:test:{uuid.uuid4().hex}"
    try:
        assert client.ping() is True
        client.set(key, "waarde", ex=30)
        assert client.get(key) == b"waarde"
    finally:
        client.delete(key)
        client.close()


def test_embedded_default_is_a_real_redis_under_var(var_dir: Path) -> None:
    """Without REDIS_URL the service starts its own Redis, keeping its data under var/."""
    settings = load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=var_dir, REDIS_URL="")
    assert settings.redis_url is None
    client = connect(settings)
    key = f"ot:test:{uuid.uuid4().hex}"
    try:
        assert client.ping() is True
        client.set(key, "waarde", ex=30)
        assert client.get(key) == b"waarde"
        assert client.ttl(key) > 0
    finally:
        client.delete(key)
    assert getattr(client, "db", None) == str((settings.var_dir / "redis.db").resolve())
    client.shutdown(nosave=True)
