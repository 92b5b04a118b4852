"""The worker's heartbeat and `oudertelefoon worker --check` (the compose healthcheck), against the
real Redis of the test run (CI's, or an embedded one), with a real worker process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from bot.config import REPO_ROOT, Settings
from bot.storage.db import upgrade
from bot.storage.redis import key as redis_key
from bot.triage.embedded import EmbeddedModel
from bot.worker import HEARTBEAT_TTL, heartbeat_age, heartbeat_key, worker_name


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"NLU_BACKEND", "RASA_URL", "DATABASE_URL", "REDIS_URL"}}
    env.update({"OUDERTELEFOON_ENV": "test", "OUDERTELEFOON_VAR_DIR": str(settings.var_dir),
                "DATABASE_URL": settings.effective_database_url,
                "REDIS_URL": str(settings.redis_url), "REDIS_KEY_PREFIX": settings.redis_prefix,
                "LOG_LEVEL": "WARNING", **extra})
    return env


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "worker", "--check", *args],
                          check=False, capture_output=True, text=True, env=env, timeout=60, cwd=REPO_ROOT)


def test_the_heartbeat_key_is_named_under_the_prefix(settings: Settings) -> None:
    assert heartbeat_key(settings.redis_prefix, "abc") == redis_key(
        settings.redis_prefix, "worker", "heartbeat", "abc")
    assert heartbeat_key(settings.redis_prefix, "abc").startswith(settings.redis_prefix + ":")


def test_a_worker_process_beats_and_the_check_follows_it(
        settings: Settings, embedded_model: EmbeddedModel, model_cache: Path) -> None:
    """No heartbeat: the check fails. A running worker: it passes. The worker stopped: once the
    heartbeat is older than --max-age, it fails again."""
    upgrade(settings.effective_database_url)
    # The session's trained embedded model, so the worker process starts without training.
    shutil.copytree(model_cache, settings.var_dir / "models", dirs_exist_ok=True)
    env = _env(settings)
    before = _check(env)
    assert before.returncode == 1
    assert "no heartbeat" in before.stderr and "Traceback" not in before.stderr

    worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=REPO_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        while True:
            result = _check(env)
            if result.returncode == 0:
                break
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.5)
        assert f"worker {worker_name()} beat" in result.stdout
        # Still beating a few rounds later (not one beat at start only).
        time.sleep(2.5)
        assert _check(env, "--max-age", "2").returncode == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stderr:
            worker.stderr.close()
    time.sleep(2.5)
    stale = _check(env, "--max-age", "2")
    assert stale.returncode == 1
    assert "s old" in stale.stderr
    client = redis.Redis.from_url(str(settings.redis_url))
    try:
        ttl = client.ttl(heartbeat_key(settings.redis_prefix, worker_name()))
    finally:
        client.close()
    assert 0 < ttl <= HEARTBEAT_TTL  # a scaled-down worker's key expires by itself


def test_another_hosts_heartbeat_does_not_count(settings: Settings) -> None:
    """Two workers (docker compose --scale worker=2): each container checks its own heartbeat."""
    client = redis.Redis.from_url(str(settings.redis_url))
    try:
        client.set(heartbeat_key(settings.redis_prefix, "another-container"), f"{time.time():.3f}")
        assert heartbeat_age(client, settings.redis_prefix, "another-container") is not None
        assert heartbeat_age(client, settings.redis_prefix) is None
    finally:
        client.close()
    result = _check(_env(settings))
    assert result.returncode == 1 and "no heartbeat" in result.stderr


def test_a_garbled_heartbeat_is_no_heartbeat(settings: Settings) -> None:
    client = redis.Redis.from_url(str(settings.redis_url))
    try:
        client.set(heartbeat_key(settings.redis_prefix, worker_name()), "niet-een-tijd")
        assert heartbeat_age(client, settings.redis_prefix) is None
        client.set(heartbeat_key(settings.redis_prefix, worker_name()), f"{time.time() - 30:.3f}")
        age = heartbeat_age(client, settings.redis_prefix)
    finally:
        client.close()
    assert age is not None and 29 <= age < 60
    assert _check(_env(settings), "--max-age", "10").returncode == 1
    assert _check(_env(settings), "--max-age", "120").returncode == 0


def test_the_check_fails_in_one_line_when_redis_is_away(settings: Settings) -> None:
    result = _check(_env(settings, REDIS_URL="redis://127.0.0.1:9"))
    assert result.returncode == 1
    assert "Redis cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
