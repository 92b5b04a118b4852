"""Real-browser fixtures: Debian's Chromium driven by Playwright's sync API.

Playwright's own browser downloads are never used (``playwright install`` is not needed):
the browser is the system Chromium from Debian's ``chromium`` package, installed by
``scripts/install-browser``. Set CHROMIUM_PATH to use another binary. Tests using these
fixtures never skip: without the binary or the playwright package the run stops before any test
with the install hint (tests/session_rules.py), and this fixture fails with it as a last resort.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from bot.config import Settings
from bot.web.app import Services, create_app
from tests.session_rules import browser_missing, find_chromium

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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    missing = browser_missing()
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    executable = find_chromium()
    assert executable is not None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        # Every context reports Content-Security-Policy violations (Chromium says them on the
        # console): each browser test fails on one (`_no_csp_violations`).
        new_context = launched.new_context

        def watched_context(*args: Any, **kwargs: Any) -> Any:
            context = new_context(*args, **kwargs)
            context.on("console", _note_csp_violation)
            return context

        launched.new_context = watched_context  # type: ignore[method-assign]
        try:
            yield launched
        finally:
            launched.close()


CSP_VIOLATIONS: list[str] = []


def _note_csp_violation(message: Any) -> None:
    if "Content Security Policy" in message.text:
        CSP_VIOLATIONS.append(message.text)


@pytest.fixture(autouse=True)
def _no_csp_violations() -> Iterator[None]:
    """No page breaks its own Content-Security-Policy (no inline script or style...)."""
    CSP_VIOLATIONS.clear()
    yield
    assert not CSP_VIOLATIONS, CSP_VIOLATIONS


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


# Text contrast from the colours the browser computed: alpha and opacity blended onto the
# background behind each element. Takes a CSS selector; gives [name, ratio] for every matched
# element with text of its own.
CONTRAST_JS = """selector => {
    const parse = c => {
        const m = c.match(/rgba?\\(([^)]+)\\)/);
        if (!m) throw new Error('unparsed colour ' + c);
        const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
        return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
    };
    const over = (top, under) => ({
        r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
        b: top.b * top.a + under.b * (1 - top.a), a: 1});
    const background = el => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c.a > 0) { layers.push(c); if (c.a >= 1) break; }
        }
        return layers.reverse().reduce((acc, c) => over(c, acc), {r: 255, g: 255, b: 255, a: 1});
    };
    const opacity = el => {
        let o = 1;
        for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
        return o;
    };
    const lum = c => {
        const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    };
    const out = [];
    for (const el of document.querySelectorAll(selector)) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || el.closest('.visually-hidden')) continue;
        const bg = background(el), fg = parse(getComputedStyle(el).color);
        const text = over({...fg, a: fg.a * opacity(el)}, bg);
        const [hi, lo] = [lum(text), lum(bg)].sort((a, b) => b - a);
        const box = el.closest('.msg');
        const name = (box ? box.className + ' ' : '') + (el.className || el.id || el.tagName);
        out.push([name, (hi + 0.05) / (lo + 0.05)]);
    }
    return out;
}"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """The real app (bot.web.app.create_app, with its worker) under uvicorn in a background
    thread. stop() and start() again use the same port and services, as a restart does."""

    def __init__(self, settings: Settings, services: Services, port: int | None = None) -> None:
        self.settings = settings
        self.services = services
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(self.settings, self.services, run_worker=True)
        # Open event streams (the dashboard's) must not hold up the end of a test.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped while starting")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200 and json.load(response)["status"] == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError("the service did not answer /health in time")

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "uvicorn did not stop"
        self._server = self._thread = None
