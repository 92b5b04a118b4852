"""The web chat in a real browser, against the real service (uvicorn in a thread, the worker on).

Each test gets its own service on a free port, its own database (SQLite, or a fresh PostgreSQL
database when DATABASE_URL is set) and a phone-sized Chromium. Screenshots go to artifacts_dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Author, Message
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import CONTRAST_JS, LOCALE, PHONE_VIEWPORT, LiveServer, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

WAIT_MS = 10_000

BOTS = "#log .msg.bot"
PARENTS = "#log .msg.parent"


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[LiveServer]:
    services = build_services(settings, triage=triage)
    server = LiveServer(settings, services, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()  # the app's lifespan closes the services


# Helpers ---------------------------------------------------------------------------------------

def open_chat(page: Page, live: LiveServer) -> None:
    page.goto(f"{live.url}/chat")
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)  # the first poll has answered


def count(page: Page, selector: str) -> int:
    return int(page.locator(selector).count())


def wait_count_above(page: Page, selector: str, n: int) -> None:
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length > n",
                           arg=[selector, n], timeout=WAIT_MS)


def texts(page: Page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{selector} .text").all_inner_texts()]


def say(page: Page, text: str) -> None:
    """Type into the labelled textarea and press Enter; wait until the bot answered."""
    before = count(page, BOTS)
    box = page.get_by_label("Je bericht")
    box.fill(text)
    box.press("Enter")
    wait_count_above(page, BOTS, before)
    page.wait_for_timeout(150)  # a reply of several messages arrives in one poll; let it render


def new_bot_texts(page: Page, text: str) -> list[str]:
    before = count(page, BOTS)
    say(page, text)
    return texts(page, BOTS)[before:]


def shot(page: Page, artifacts_dir: Path, name: str) -> None:
    path = artifacts_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def newest_in_view(page: Page) -> bool:
    """The newest message starts inside the visible part of the log."""
    return bool(page.evaluate("""() => {
        const log = document.getElementById('log');
        const all = log.querySelectorAll('.msg');
        const last = all[all.length - 1];
        const box = log.getBoundingClientRect(), m = last.getBoundingClientRect();
        return m.top >= box.top - 1 && m.top < box.bottom && m.bottom > box.top
            && m.top < window.innerHeight;
    }"""))


def parent_texts_in_db(live: LiveServer) -> list[str]:
    with live.services.factory() as session:
        return list(session.scalars(select(Message.text).where(Message.author == Author.parent)))


# The tests -------------------------------------------------------------------------------------

def test_a_conversation_without_reloading(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    shot(page, artifacts_dir, "01-empty")
    page.evaluate("window.__sameDocument = true")

    box = page.get_by_label("Je bericht")
    box.fill("hoi")
    box.press("Enter")
    log = page.get_by_role("log")
    log.locator(".msg.bot .text", has_text="Oudertelefoon").wait_for(timeout=WAIT_MS)
    welcome = texts(page, BOTS)
    assert len(welcome) == 1 and "112" in welcome[0] and "mens" in welcome[0]
    assert texts(page, PARENTS) == ["hoi"]
    assert box.input_value() == ""
    page.get_by_role("status").filter(has_text="Verstuurd").wait_for(timeout=WAIT_MS)
    shot(page, artifacts_dir, "02-welcome")

    answer = new_bot_texts(page, "ik kan de huur niet betalen")
    assert answer and "Hier kun je terecht" in answer[0], answer
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert newest_in_view(page), "the newest message is not scrolled into view"
    shot(page, artifacts_dir, "03-catalogue-answer")

    # Several poll rounds later nothing is shown twice.
    page.wait_for_timeout(2000)
    assert texts(page, PARENTS) == ["hoi", "ik kan de huur niet betalen"]
    assert sum("Oudertelefoon" in t for t in texts(page, BOTS)) == 1

    # Overlapping polls (a message arrives while several polls start at once) show it once.
    shown = count(page, "#log .msg")
    page.evaluate("""async () => {
        await fetch('/chat/api/messages', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({text: 'dankje', client_id: 'overlap-' + Date.now()})});
        for (let i = 0; i < 5; i++) window.dispatchEvent(new Event('online'));
    }""")
    wait_count_above(page, "#log .msg", shown + 1)
    page.wait_for_timeout(2000)
    ns = page.locator("#log .msg").evaluate_all("els => els.map(e => Number(e.dataset.n))")
    assert ns == list(range(1, len(ns) + 1)), ns
    assert texts(page, PARENTS) == ["hoi", "ik kan de huur niet betalen", "dankje"]


def test_keyboard_only(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    box = page.get_by_label("Je bericht")
    button = page.get_by_role("button", name="Verstuur")

    def focused(locator: Any) -> bool:
        return bool(locator.evaluate("el => el === document.activeElement"))

    def outline_visible(locator: Any) -> bool:
        return bool(locator.evaluate("""el => {
            const s = getComputedStyle(el);
            return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
        }"""))

    for _ in range(10):
        page.keyboard.press("Tab")
        if focused(box):
            break
    assert focused(box), "Tab never reached the textarea"
    assert outline_visible(box), "no visible focus on the textarea"
    page.keyboard.press("Tab")
    assert focused(button), "Tab from the textarea does not reach the send button"
    assert outline_visible(button), "no visible focus on the button"
    shot(page, artifacts_dir, "01-button-focused")

    page.keyboard.press("Shift+Tab")
    assert focused(box)
    page.keyboard.type("eerste regel")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("tweede regel")
    assert box.input_value() == "eerste regel\ntweede regel"
    assert count(page, PARENTS) == 0, "Shift+Enter must not send"
    page.keyboard.press("Enter")
    wait_count_above(page, BOTS, 0)
    assert texts(page, PARENTS) == ["eerste regel\ntweede regel"]
    assert focused(box), "focus should stay in the textarea after sending"

    # The button sends too, from the keyboard.
    before = count(page, BOTS)
    page.keyboard.type("hallo")
    page.keyboard.press("Tab")
    assert focused(button)
    page.keyboard.press("Enter")
    wait_count_above(page, BOTS, before)
    assert texts(page, PARENTS)[-1] == "hallo"
    shot(page, artifacts_dir, "02-sent-by-keyboard")


def test_english_and_emergency(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    answer = new_bot_texts(page, "Hello, I am pregnant and I need a midwife, where do I go?")
    assert any("Where you can get help" in t for t in answer), answer
    assert not any("Hier kun je terecht" in t for t in answer)
    shot(page, artifacts_dir, "01-english")

    acute = new_bot_texts(page, "ik wil niet meer wakker worden")
    assert "113" in acute[0] and acute[0].startswith("Denk je eraan"), acute
    assert newest_in_view(page)
    shot(page, artifacts_dir, "02-emergency")


def test_reload_keeps_the_conversation_and_another_browser_has_its_own(
    page: Page, browser: Browser, live: LiveServer, artifacts_dir: Path
) -> None:
    open_chat(page, live)
    say(page, "hoi")
    say(page, "mijn baby slaapt zo slecht")
    say(page, "ik kan de huur niet betalen")
    before = texts(page, "#log .msg")
    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    assert texts(page, "#log .msg") == before
    # Back on the page, the parent sees their last question and the start of the answer.
    assert page.evaluate("""() => {
        const log = document.getElementById('log'), box = log.getBoundingClientRect();
        const own = [...log.querySelectorAll('.msg.parent')].pop().getBoundingClientRect();
        return log.scrollTop > 0 && own.top >= box.top && own.bottom <= box.bottom;
    }""")
    assert newest_in_view(page)
    shot(page, artifacts_dir, "01-after-reload")

    other = browser.new_context(viewport=PHONE_VIEWPORT, locale=LOCALE)
    try:
        stranger = other.new_page()
        open_chat(stranger, live)
        stranger.wait_for_timeout(1800)  # one more poll round
        assert count(stranger, "#log .msg") == 0
        shot(stranger, artifacts_dir, "02-other-browser")
    finally:
        other.close()


def test_delete_my_data(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    say(page, "mijn baby huilt de hele dag")
    question = new_bot_texts(page, "verwijder mijn gegevens")
    assert "verwijderen" in question[-1] and "'ja'" in question[-1], question
    shot(page, artifacts_dir, "01-delete-question")

    box = page.get_by_label("Je bericht")
    box.fill("ja")
    box.press("Enter")
    page.locator("#notice").filter(has_text="verwijderd").wait_for(timeout=WAIT_MS)
    assert count(page, "#log .msg") == 0
    shot(page, artifacts_dir, "02-deleted")

    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    page.wait_for_timeout(1800)
    assert count(page, "#log .msg") == 0
    assert parent_texts_in_db(live) == []


def test_accessibility_basics(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    say(page, "hoi")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert page.title()

    box = page.get_by_label("Je bericht")
    assert box.evaluate("el => el.tagName") == "TEXTAREA"
    assert box.evaluate("el => el.labels.length === 1 && el.labels[0].textContent.trim()") == "Je bericht"

    log = page.locator("#log")
    assert log.get_attribute("role") == "log"
    assert log.get_attribute("aria-live") in ("polite", "assertive")
    assert page.get_by_role("log", name="Gesprek").count() == 1
    assert page.get_by_role("button", name="Verstuur").count() == 1
    assert page.get_by_role("status").count() == 1

    # Text contrast of everything inside the bubbles, from the colours the browser computed
    # (alpha and opacity blended onto the background behind them).
    ratios = page.evaluate(CONTRAST_JS, "#log .msg, #log .msg *, #status, #hint, .intro")
    names = {name for name, _ in ratios}
    assert any("bot" in n for n in names) and any("parent" in n for n in names), names
    low = [(name, round(ratio, 2)) for name, ratio in ratios if ratio < 4.5]
    assert not low, f"text contrast below 4.5:1: {low}"
    shot(page, artifacts_dir, "01-conversation")


def test_server_down_then_back(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    posted: list[dict[str, Any]] = []
    page.on("request", lambda request: posted.append(json.loads(request.post_data or "{}"))
            if request.method == "POST" and request.url.endswith("/chat/api/messages") else None)
    open_chat(page, live)
    say(page, "hoi")

    live.stop()
    text = "is er nog iemand wakker?"
    box = page.get_by_label("Je bericht")
    box.fill(text)
    box.press("Enter")
    page.get_by_role("status").filter(has_text="opnieuw").wait_for(timeout=WAIT_MS)
    assert texts(page, PARENTS)[-1] == text  # shown at once, marked as not sent yet
    assert count(page, "#log .msg.parent.pending") == 1
    shot(page, artifacts_dir, "01-server-down")

    bots_before = count(page, BOTS)
    live.start()  # same port, same services
    wait_count_above(page, BOTS, bots_before)
    page.get_by_role("status").filter(has_text="Verstuurd").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1800)  # another poll round: still once
    assert texts(page, PARENTS) == ["hoi", text]
    assert count(page, "#log .msg.pending") == 0
    assert parent_texts_in_db(live).count(text) == 1
    attempts = [body for body in posted if body.get("text") == text]
    assert len(attempts) >= 2, "the page did not retry"
    assert len({body["client_id"] for body in attempts}) == 1, "a retry used a new client_id"
    shot(page, artifacts_dir, "02-back-online")


def test_an_unsent_message_survives_a_reload(page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    posted: list[dict[str, Any]] = []
    page.on("request", lambda request: posted.append(json.loads(request.post_data or "{}"))
            if request.method == "POST" and request.url.endswith("/chat/api/messages") else None)

    def refuse_posts(route: Any) -> None:
        if route.request.method == "POST":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    open_chat(page, live)
    page.route("**/chat/api/messages*", refuse_posts)  # the phone lost its connection
    text = "mijn baby drinkt niet goed"
    box = page.get_by_label("Je bericht")
    box.fill(text)
    box.press("Enter")
    page.get_by_role("status").filter(has_text="opnieuw").wait_for(timeout=WAIT_MS)

    page.reload()
    page.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    assert texts(page, "#log .msg.pending") == [text]  # still there, still waiting
    page.unroute("**/chat/api/messages*", refuse_posts)
    wait_count_above(page, BOTS, 0)
    page.wait_for_timeout(1800)
    assert texts(page, PARENTS) == [text]
    assert parent_texts_in_db(live) == [text]
    attempts = [body for body in posted if body.get("text") == text]
    assert len(attempts) >= 2 and len({body["client_id"] for body in attempts}) == 1
    shot(page, artifacts_dir, "01-sent-after-reload")
