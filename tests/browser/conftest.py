"""Real-browser fixtures: Debian's Chromium driven by Playwright's sync API.

Playwright's own browser downloads are never used (``playwright install`` is not needed):
the browser is the system Chromium from Debian's ``chromium`` package, installed by
``scripts/install-browser``. Set CHROMIUM_PATH to use another binary. Tests using these
fixtures are skipped, with the reason, when the binary or the playwright package is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}
LOCALE = "nl-NL"


def find_chromium() -> str | None:
    """CHROMIUM_PATH if set, else chromium / chromium-browser on the PATH."""
    configured = os.environ.get("CHROMIUM_PATH", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        where = os.environ.get("CHROMIUM_PATH") or "chromium / chromium-browser on the PATH"
        pytest.skip(f"no Chromium binary ({where}); run scripts/install-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test, sized like a phone, in Dutch."""
    context = browser.new_context(viewport=PHONE_VIEWPORT, locale=LOCALE)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Where a test puts its screenshots: $TEST_ARTIFACTS (default var/test-artifacts)/<test>."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_") or "test"
    path = Path(os.environ.get("TEST_ARTIFACTS", "var/test-artifacts")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
