"""The web chat's safety features in a real browser: "Snel weg", the session cookie with the box
"onthoud dit gesprek op dit apparaat", and "stop en wis".

There is no internet in the tests: QUICK_EXIT_URL points at a small neutral page served on
127.0.0.1 (a plain http.server), standing in for the neutral public site.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Author, Channel, Conversation, Message
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import CONTRAST_JS, LOCALE, LiveServer, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

WAIT_MS = 10_000
BOTS = "#log .msg.bot"
NEUTRAL_PAGE = (b"<!doctype html><title>Het weer</title>"
                b"<h1>Het weer vandaag</h1><p>Zon en wolken.</p>")


class NeutralSite:
    """A harmless page on 127.0.0.1, in place of the public neutral site."""

    def __init__(self) -> None:
        site = self
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(NEUTRAL_PAGE)))
                self.end_headers()
                self.wfile.write(NEUTRAL_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/search?q=weer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def neutral() -> Iterator[NeutralSite]:
    site = NeutralSite()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def live(settings: Settings, triage: Triage, neutral: NeutralSite) -> Iterator[LiveServer]:
    configured = settings.model_copy(update={"quick_exit_url": neutral.url})
    services = build_services(configured, triage=triage)
    server = LiveServer(configured, services, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Helpers ---------------------------------------------------------------------------------------

def open_chat(page: Page, live: LiveServer) -> None:
    page.goto(f"{live.url}/chat")
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)


def say(page: Page, text: str) -> None:
    before = page.locator(BOTS).count()
    box = page.get_by_label("Je bericht")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length > n",
                           arg=[BOTS, before], timeout=WAIT_MS)


def chat_cookie(context: BrowserContext) -> dict[str, Any] | None:
    found = [c for c in context.cookies() if c["name"] == "ot_chat"]
    return dict(found[0]) if found else None


def wait_for_cookie(context: BrowserContext, check: Any,
                    timeout: float = 10.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        cookie = chat_cookie(context)
        if check(cookie):
            return cookie
        if time.monotonic() > deadline:
            raise AssertionError(f"the chat cookie never became as expected: {cookie}")
        time.sleep(0.05)


def in_viewport(page: Page, selector: str) -> bool:
    return bool(page.eval_on_selector(selector, """el => {
        const r = el.getBoundingClientRect();
        return r.width >= 44 && r.height >= 44 && r.top >= 0 && r.left >= 0
            && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
    }"""))


def conversation_texts(live: LiveServer) -> list[str]:
    with live.services.factory() as session:
        return list(session.scalars(select(Message.text).where(Message.author == Author.parent)))


def shot(page: Page, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)


# The tests -------------------------------------------------------------------------------------

def test_snel_weg_leaves_at_once_and_the_browser_forgets(
    page: Page, live: LiveServer, neutral: NeutralSite, artifacts_dir: Path
) -> None:
    open_chat(page, live)
    exit_button = page.get_by_role("button", name="Snel weg")
    assert exit_button.is_visible() and in_viewport(page, "#exit-button")
    assert exit_button.inner_text().strip() == "Snel weg"
    assert (exit_button.get_attribute("aria-label") or "").startswith("Snel weg")
    say(page, "mijn vriend schreeuwt de hele tijd tegen me")
    assert in_viewport(page, "#exit-button")  # still there with the conversation on screen
    shot(page, artifacts_dir, "01-before")
    context = page.context
    before = chat_cookie(context)
    assert before is not None
    token = before["value"]

    exit_button.click()
    page.wait_for_url(neutral.url, timeout=WAIT_MS)
    assert page.get_by_role("heading", name="Het weer vandaag").is_visible()
    assert neutral.paths[0] == "/search?q=weer"
    shot(page, artifacts_dir, "02-neutral-site")
    # The chat replaced itself: Back does not lead to it.
    page.go_back()
    assert "/chat" not in page.url
    # The server cleared the cookie.
    wait_for_cookie(context, lambda c: c is None)

    # The chat again: a new, empty conversation; the earlier one is not shown.
    open_chat(page, live)
    page.wait_for_timeout(1800)  # another poll round
    assert page.locator("#log .msg").count() == 0
    after = chat_cookie(context)
    assert after is not None and after["value"] != token
    # Even a copy of the old cookie no longer leads to the conversation: the server forgot it.
    context.add_cookies([{**before}])
    response = page.request.get(f"{live.url}/chat/api/messages")
    assert response.ok and response.json()["messages"] == []
    # The conversation itself is still there, for whoever helps (Snel weg does not delete).
    assert conversation_texts(live) == ["mijn vriend schreeuwt de hele tijd tegen me"]
    with live.services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.pseudonym != live.services.vault.pseudonym(Channel.web.value, token)
    shot(page, artifacts_dir, "03-fresh-chat")


def test_snel_weg_by_keyboard_and_on_a_small_screen(
    browser: Browser, live: LiveServer, neutral: NeutralSite, artifacts_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 480}, locale=LOCALE)
    try:
        page = context.new_page()
        open_chat(page, live)
        say(page, "hoi")
        assert in_viewport(page, "#exit-button")
        ratios = page.evaluate(CONTRAST_JS, "#exit-button")
        assert ratios and all(ratio >= 4.5 for _, ratio in ratios), ratios
        shot(page, artifacts_dir, "01-small-screen")
        page.reload()  # focus starts at the top of the page again
        page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
        page.keyboard.press("Tab")  # the first stop on the page
        assert page.evaluate("document.activeElement.id") == "exit-button"
        outline = page.eval_on_selector("#exit-button", "el => getComputedStyle(el).outlineStyle")
        assert outline != "none"
        page.keyboard.press("Enter")
        page.wait_for_url(neutral.url, timeout=WAIT_MS)
        wait_for_cookie(context, lambda c: c is None)
    finally:
        context.close()


def test_snel_weg_without_javascript(
    browser: Browser, live: LiveServer, neutral: NeutralSite
) -> None:
    context = browser.new_context(java_script_enabled=False, locale=LOCALE)
    try:
        page = context.new_page()
        page.goto(f"{live.url}/chat")
        assert chat_cookie(context) is not None
        page.get_by_role("button", name="Snel weg").click()
        page.wait_for_url(neutral.url, timeout=WAIT_MS)
        assert chat_cookie(context) is None
    finally:
        context.close()


def test_the_cookie_lasts_only_when_the_box_is_ticked(
    page: Page, live: LiveServer, artifacts_dir: Path
) -> None:
    open_chat(page, live)
    context = page.context
    box = page.get_by_label("Onthoud dit gesprek op dit apparaat")
    assert box.is_enabled() and not box.is_checked()
    first = chat_cookie(context)
    assert first is not None
    assert first["expires"] == -1  # a session cookie: gone when the browser closes
    assert first["httpOnly"] is True and first["sameSite"] == "Strict"
    say(page, "mijn baby slaapt zo slecht")

    with page.expect_response(lambda r: r.url.endswith("/chat/api/remember")) as answer:
        box.check()
    assert answer.value.ok
    days = live.settings.retention_days
    kept = wait_for_cookie(context, lambda c: c is not None and c["expires"] > 0)
    assert kept is not None
    assert kept["value"] == first["value"]  # the same conversation, now remembered
    assert abs(kept["expires"] - (time.time() + days * 86400)) < 120
    assert kept["httpOnly"] is True and kept["sameSite"] == "Strict"
    shot(page, artifacts_dir, "01-ticked")

    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    assert page.get_by_label("Onthoud dit gesprek op dit apparaat").is_checked()
    shown = page.locator("#log .msg.parent .text").all_inner_texts()
    assert shown == ["mijn baby slaapt zo slecht"]
    assert chat_cookie(context)["expires"] > 0  # type: ignore[index]

    box = page.get_by_label("Onthoud dit gesprek op dit apparaat")
    with page.expect_response(lambda r: r.url.endswith("/chat/api/remember")) as answer:
        box.uncheck()
    assert answer.value.ok
    session = wait_for_cookie(context, lambda c: c is not None and c["expires"] == -1)
    assert session is not None and session["value"] == first["value"]
    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    assert not page.get_by_label("Onthoud dit gesprek op dit apparaat").is_checked()
    assert chat_cookie(context)["expires"] == -1  # type: ignore[index]


def test_stop_en_wis_in_the_chat(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    say(page, "mijn baby huilt de hele dag")
    remember = page.get_by_label("Onthoud dit gesprek op dit apparaat")
    with page.expect_response(lambda r: r.url.endswith("/chat/api/remember")):
        remember.check()
    wait_for_cookie(page.context, lambda c: c is not None and c["expires"] > 0)
    say(page, "ik ben zo moe")
    box = page.get_by_label("Je bericht")
    box.fill("Stop en wis!")
    box.press("Enter")
    done = live.services.texts.get("delete_done", "nl")
    page.locator("#notice").filter(has_text=done).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1800)  # later poll rounds bring nothing back
    assert page.locator("#log .msg").count() == 0
    assert page.locator("#notice").inner_text().strip() == done
    assert conversation_texts(live) == []
    # Nothing left to remember: the box is unticked and the cookie is a session cookie again.
    assert not remember.is_checked()
    wait_for_cookie(page.context, lambda c: c is not None and c["expires"] == -1)
    shot(page, artifacts_dir, "01-wiped")

    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    page.wait_for_timeout(1800)
    assert page.locator("#log .msg").count() == 0
