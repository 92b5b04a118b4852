"""The Redis seam: the embedded server by default, REDIS_URL when set; a real server either way."""

from __future__ import annotations

import uuid

from bot.config import Settings
from bot.storage.redis import connect


def test_connect_gives_a_working_redis(settings: Settings) -> None:
    client = connect(settings)
    key = f"ot:test:{uuid.uuid4().hex}"
    try:
        assert client.ping() is True
        client.set(key, "waarde", ex=30)
        assert client.get(key) == b"waarde"
        assert client.ttl(key) > 0
    finally:
        client.delete(key)
    if settings.redis_url is None:
        # The embedded server keeps its data under var/.
        assert getattr(client, "db", None) == str((settings.var_dir / "redis.db").resolve())
