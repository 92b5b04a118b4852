"""The handoff in real browsers: a parent in the web chat (phone-sized) and a volunteer on the
dashboard (tablet-sized), against the real service (uvicorn in a thread, the worker on).

Nothing is reloaded to see what happens: the queue row appears live (server-sent events), the
parent sees the warm handover and the reply by polling, the volunteer sees the parent's answer
live. Screenshots of each page go to artifacts_dir.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from bot.accounts.users import add_user
from bot.config import Settings
from bot.storage import db
from bot.storage.models import Conversation, ConversationStatus, Handoff, HandoffStatus, Role
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import CONTRAST_JS, LOCALE, PHONE_VIEWPORT, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

WAIT_MS = 15_000
TABLET_VIEWPORT = {"width": 768, "height": 1024}
LAPTOP_VIEWPORT = {"width": 1366, "height": 800}
PASSWORD = "een-lang-wachtwoord"
LONELY = "Ik wil graag met iemand praten, ik voel me zo alleen"


Live = LiveServer  # the app with its worker, served for real


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[Live]:
    services = build_services(settings, triage=triage)
    server = Live(settings, services)
    server.start()
    try:
        yield server
    finally:
        server.stop()  # the app's lifespan closes the services


@pytest.fixture
def contexts(browser: Browser, live: Live) -> Iterator[list[BrowserContext]]:
    """Browser contexts the test opens; closed before the server stops (their event streams)."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_page(browser: Browser, contexts: list[BrowserContext], viewport: dict[str, int]) -> Page:
    context = browser.new_context(viewport=viewport, locale=LOCALE)
    contexts.append(context)
    return context.new_page()


def shot(page: Page, artifacts_dir: Path, name: str) -> None:
    path = artifacts_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def make_user(live: Live, username: str, display_name: str, role: Role) -> None:
    with db.transaction(live.services.factory) as session:
        add_user(session, username=username, display_name=display_name, role=role, password=PASSWORD)


def log_in(page: Page, live: Live, username: str, artifacts_dir: Path | None = None) -> None:
    page.goto(f"{live.url}/dashboard")
    page.wait_for_url(re.compile(r"/login"), timeout=WAIT_MS)  # not logged in: to the login page
    if artifacts_dir is not None:
        shot(page, artifacts_dir, "00-login")
    page.get_by_label("Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_url(f"{live.url}/dashboard", timeout=WAIT_MS)


def wait_live(page: Page) -> None:
    """The dashboard's event stream is open."""
    page.wait_for_selector('body[data-live="ja"]', state="attached", timeout=WAIT_MS)


def chat_say(page: Page, text: str) -> None:
    before = page.locator("#log .msg.bot").count()
    box = page.get_by_label("Je bericht")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function("n => document.querySelectorAll('#log .msg.bot').length > n",
                           arg=before, timeout=WAIT_MS)
    page.wait_for_timeout(200)




def low_contrast(page: Page) -> list[tuple[str, float]]:
    """Texts on the page with less than 4.5:1 contrast, from the colours the browser computed."""
    ratios = page.evaluate(CONTRAST_JS, "main *, header *, #alerts *")
    assert ratios
    return [(name, round(ratio, 2)) for name, ratio in ratios if ratio < 4.5]


def the_conversation(live: Live) -> Conversation:
    with live.services.factory() as session:
        return session.scalars(select(Conversation)).one()


def test_a_volunteer_picks_up_a_parent_live(
    browser: Browser, contexts: list[BrowserContext], live: Live, artifacts_dir: Path
) -> None:
    make_user(live, "sanne", "Sanne", Role.volunteer)

    # The volunteer logs in on a tablet and goes on shift; nobody waits yet.
    desk = new_page(browser, contexts, TABLET_VIEWPORT)
    log_in(desk, live, "sanne", artifacts_dir)
    shot(desk, artifacts_dir, "01-dashboard-logged-in")
    desk.get_by_role("button", name="Ik begin").click()
    desk.get_by_role("status").filter(has_text="Je dienst is begonnen").wait_for(timeout=WAIT_MS)
    assert "In dienst" in desk.locator("#shift-state").inner_text()
    wait_live(desk)
    desk.evaluate("window.__sameDocument = true")
    assert desk.locator("#queue-lists [data-conversation]").count() == 0
    shot(desk, artifacts_dir, "02-queue-on-shift-empty")

    # A parent asks for a person in the web chat (phone-sized).
    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, LONELY)
    chat_say(parent, "1")
    conversation = the_conversation(live)
    assert conversation.status is ConversationStatus.queued
    ref = "#" + conversation.id.replace("-", "")[:6]
    shot(parent, artifacts_dir, "03-parent-waiting")

    # It appears on the volunteer's queue page without a reload.
    row = desk.locator(f'#list-waiting [data-conversation="{conversation.id}"]')
    row.wait_for(timeout=WAIT_MS)
    assert desk.evaluate("window.__sameDocument") is True, "the queue page reloaded"
    assert ref in row.inner_text()
    assert desk.get_by_role("status").filter(has_text="1 gesprek wacht").count() == 1
    shot(desk, artifacts_dir, "04-queue-conversation-arrived")

    # "Volgende oppakken": the handover card with the parent's own words.
    desk.get_by_role("button", name="Volgende oppakken").click()
    desk.wait_for_url(f"{live.url}/dashboard/conversations/{conversation.id}", timeout=WAIT_MS)
    card = desk.get_by_role("region", name="Overdracht")
    assert LONELY in card.inner_text()
    assert desk.get_by_role("heading", name=re.compile(re.escape(ref))).count() == 1
    wait_live(desk)
    desk.evaluate("window.__sameDocument = true")
    shot(desk, artifacts_dir, "05-conversation-handover-card")

    # The parent sees the warm handover without reloading (it went when the page opened): who
    # picked up, that they are reading now, that the story need not be told again.
    parent.evaluate("window.__sameDocument = true")
    handover = parent.locator("#log .msg.person", has_text="Sanne")
    handover.wait_for(timeout=WAIT_MS)
    assert "vrijwilliger" in handover.inner_text() and "niet opnieuw" in handover.inner_text()

    # The volunteer replies (sent with fetch; the page stays).
    reply = "Hoi, ik ben Sanne. Wat fijn dat je schrijft. Wat maakt dat je je zo alleen voelt?"
    box = desk.get_by_label("Je bericht aan de ouder")
    box.fill(reply)
    desk.get_by_role("button", name="Verstuur").click()
    desk.locator("#transcript .msg.person", has_text="Wat fijn dat je schrijft").wait_for(timeout=WAIT_MS)
    assert box.input_value() == ""
    assert desk.evaluate("window.__sameDocument") is True

    parent.locator("#log .msg.person", has_text="Wat fijn dat je schrijft").wait_for(timeout=WAIT_MS)
    assert parent.evaluate("window.__sameDocument") is True, "the chat reloaded"
    shot(parent, artifacts_dir, "06-parent-handover-and-reply")

    # The parent answers; it appears live in the volunteer's transcript.
    parent_box = parent.get_by_label("Je bericht")
    parent_box.fill("Mijn vriendin is verhuisd en ik ken hier verder niemand")
    parent_box.press("Enter")
    desk.locator("#transcript .msg.parent", has_text="ken hier verder niemand").wait_for(timeout=WAIT_MS)
    assert desk.evaluate("window.__sameDocument") is True, "the conversation page reloaded"
    shot(desk, artifacts_dir, "07-conversation-live-answer")

    # Close with an outcome and the right theme.
    desk.get_by_text("Afsluiten", exact=True).first.click()  # the <summary> opens the form
    desk.get_by_label("Geholpen in het gesprek").check()
    desk.get_by_label("psychische gezondheid").check()
    desk.get_by_label("eenzaamheid").check()
    desk.get_by_label(re.compile("^Afsluitnotitie")).fill("Wil misschien naar een koffieochtend.")
    shot(desk, artifacts_dir, "08-closing-form")
    desk.get_by_role("button", name="Afsluiten").click()
    desk.wait_for_url(re.compile(r"/dashboard\?melding=afgesloten"), timeout=WAIT_MS)
    desk.get_by_role("status").filter(has_text="afgesloten").wait_for(timeout=WAIT_MS)
    shot(desk, artifacts_dir, "09-queue-after-closing")

    with live.services.factory() as session:
        closed = session.get(Conversation, conversation.id)
        assert closed.status is ConversationStatus.closed
        handoff = session.scalars(select(Handoff).where(Handoff.status == HandoffStatus.closed)).one()
        assert handoff.outcome == "helped" and handoff.closing_note.startswith("Wil misschien")
        if set(closed.themes or []) != {"mental_health", "loneliness"}:  # else nothing to correct
            assert handoff.corrected_themes == ["mental_health", "loneliness"]
    # The parent reads the closing words in the conversation itself, without reloading.
    parent.locator(".msg.bot").filter(has_text="Het gesprek is afgesloten").wait_for(timeout=WAIT_MS)
    shot(parent, artifacts_dir, "10-parent-after-closing")


def test_an_acute_parent_raises_the_alert(
    browser: Browser, contexts: list[BrowserContext], live: Live, artifacts_dir: Path
) -> None:
    make_user(live, "mark", "Mark", Role.professional)
    make_user(live, "sanne", "Sanne", Role.volunteer)
    professional = new_page(browser, contexts, LAPTOP_VIEWPORT)
    log_in(professional, live, "mark")
    professional.get_by_role("button", name="Ik begin").click()
    professional.get_by_role("status").filter(has_text="Je dienst is begonnen").wait_for(timeout=WAIT_MS)
    wait_live(professional)
    volunteer = new_page(browser, contexts, TABLET_VIEWPORT)
    log_in(volunteer, live, "sanne")
    volunteer.get_by_role("button", name="Ik begin").click()
    volunteer.get_by_role("status").filter(has_text="Je dienst is begonnen").wait_for(timeout=WAIT_MS)
    wait_live(volunteer)

    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, "ik wil niet meer wakker worden")
    conversation = the_conversation(live)

    # The professional on shift: a banner (role=alert) and a beep; the row says ACUUT in words.
    banner = professional.locator("#alerts .alert.acute")
    banner.wait_for(timeout=WAIT_MS)
    assert "ACUUT" in banner.inner_text()
    assert professional.locator("#alerts").get_attribute("role") == "alert"
    assert professional.locator("#alerts").get_attribute("aria-live") == "assertive"
    assert professional.evaluate("document.body.dataset.beeps") == "1"
    row = professional.locator(f'#list-waiting [data-conversation="{conversation.id}"]')
    row.wait_for(timeout=WAIT_MS)
    assert "ACUUT" in row.inner_text()
    shot(professional, artifacts_dir, "01-professional-acute-alert")
    assert not low_contrast(professional), low_contrast(professional)

    # The volunteer on shift is alerted too (danger now reaches everyone who is there) and sees
    # the row, but with a professional present it is his: no "Oppakken", and who takes care.
    volunteer_banner = volunteer.locator("#alerts .alert.acute")
    volunteer_banner.wait_for(timeout=WAIT_MS)
    assert volunteer.evaluate("document.body.dataset.beeps") == "1"
    volunteer_row = volunteer.locator(f'#list-waiting [data-conversation="{conversation.id}"]')
    volunteer_row.wait_for(timeout=WAIT_MS)
    assert "ACUUT" in volunteer_row.inner_text() and "In dienst: Mark" in volunteer_row.inner_text()
    assert volunteer_row.get_by_role("button", name="Oppakken").count() == 0
    shot(volunteer, artifacts_dir, "02-volunteer-sees-who-takes-care")

    # Keyboard: the banner's link is reachable and the focus is visible.
    link = banner.get_by_role("link", name=re.compile("Open gesprek"))
    link.focus()
    outline = link.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
    link.press("Enter")
    professional.wait_for_url(f"{live.url}/dashboard/conversations/{conversation.id}", timeout=WAIT_MS)
    assert "ik wil niet meer wakker worden" in professional.get_by_role("region", name="Overdracht").inner_text()
    shot(professional, artifacts_dir, "03-professional-acute-card")
    assert not low_contrast(professional), low_contrast(professional)

    # Once the professional has it, the bot is silent; an acute message raises their alert.
    professional.get_by_role("button", name="Oppakken").click()
    professional.wait_for_url(f"{live.url}/dashboard/conversations/{conversation.id}", timeout=WAIT_MS)
    professional.get_by_label("Je bericht aan de ouder").wait_for(timeout=WAIT_MS)
    wait_live(professional)
    parent.locator("#log .msg.person", has_text="Mark").wait_for(timeout=WAIT_MS)
    bots = parent.locator("#log .msg.bot").count()
    box = parent.get_by_label("Je bericht")
    box.fill("ik heb de pillen al klaargelegd")
    box.press("Enter")
    banner = professional.locator("#alerts .alert.acute")
    banner.wait_for(timeout=WAIT_MS)
    assert "jouw gesprek" in banner.inner_text()
    assert professional.evaluate("document.body.dataset.beeps") == "1"
    professional.locator("#transcript .msg.parent", has_text="pillen").wait_for(timeout=WAIT_MS)
    parent.wait_for_timeout(1500)
    assert parent.locator("#log .msg.bot").count() == bots, "the bot spoke in a claimed conversation"
    shot(professional, artifacts_dir, "04-professional-acute-in-own-conversation")

    banner.get_by_role("link", name="Pagina vernieuwen").click()
    alert = professional.locator("main [role=alert]", has_text="ACUUT")
    alert.wait_for(timeout=WAIT_MS)
    alert.get_by_role("button", name="Gezien").click()
    professional.get_by_role("status").filter(has_text="gezien").wait_for(timeout=WAIT_MS)
    assert professional.locator("#acute-alert").count() == 0
    shot(professional, artifacts_dir, "05-professional-alert-acknowledged")
