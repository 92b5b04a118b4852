"""The browser harness itself: a real HTTP server, a real Chromium, keyboard use, a screenshot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

PAGE_HTML = b"""<!doctype html>
<html lang="nl">
<head><meta charset="utf-8"><title>Harness</title></head>
<body>
  <p id="status" aria-live="polite">Nog niet verstuurd</p>
  <button type="button" id="send" aria-label="Bericht versturen">Verstuur</button>
  <script>
    document.getElementById("send").addEventListener("click", function () {
      document.getElementById("status").textContent = "Verstuurd";
    });
  </script>
</body>
</html>
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in ("/", "/index.html"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE_HTML)))
        self.end_headers()
        self.wfile.write(PAGE_HTML)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def served_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="harness-http", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_keyboard_click_changes_text_and_screenshot(
    page: Page, served_page: str, artifacts_dir: Path
) -> None:
    page.goto(served_page)
    status = page.locator("#status")
    button = page.get_by_role("button", name="Bericht versturen")
    assert status.text_content() == "Nog niet verstuurd"

    page.keyboard.press("Tab")
    assert button.evaluate("el => el === document.activeElement"), "Tab did not focus the button"
    page.keyboard.press("Enter")

    page.wait_for_function("document.getElementById('status').textContent === 'Verstuurd'")
    assert status.text_content() == "Verstuurd"
    assert page.viewport_size == {"width": 390, "height": 844}

    shot = artifacts_dir / "after-enter.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file()
    assert shot.stat().st_size > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
