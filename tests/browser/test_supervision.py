"""Supervision in real browsers against the real service (uvicorn in a thread, the worker on): a
volunteer on shift has a parent; she presses "Vraag hulp" and the coordinator's open dashboard
shows the alert live. The coordinator reads along (read-only), sends a note that appears live on
the volunteer's page and never in the parent's web chat, and takes over with one press: the
parent hears who joins, the volunteer's page says it was taken over. Nothing is reloaded to see
what the others did."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.storage.models import ConversationStatus, Role
from tests.browser.conftest import PHONE_VIEWPORT
from tests.browser.test_handoff_flow import (
    LAPTOP_VIEWPORT,
    LONELY,
    TABLET_VIEWPORT,
    WAIT_MS,
    Live,
    chat_say,
    contexts,  # noqa: F401 (a fixture)
    live,  # noqa: F401 (a fixture)
    log_in,
    make_user,
    new_page,
    shot,
    the_conversation,
    wait_live,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

NOTE = "Vraag of er vanavond iemand bij haar kan zijn. Noem De Luisterlijn."


def start_shift(page: Page) -> None:
    page.get_by_role("button", name="Ik begin").click()
    page.get_by_role("status").filter(has_text="Je dienst is begonnen").wait_for(timeout=WAIT_MS)
    wait_live(page)


def test_a_coordinator_answers_a_call_for_help_reads_along_sends_a_note_and_takes_over(
    browser: Browser, contexts: list[BrowserContext], live: Live, artifacts_dir: Path
) -> None:
    make_user(live, "sanne", "Sanne", Role.volunteer)
    make_user(live, "ria", "Ria", Role.coordinator)

    sanne = new_page(browser, contexts, TABLET_VIEWPORT)
    log_in(sanne, live, "sanne")
    start_shift(sanne)
    assert sanne.get_by_role("link", name="Meekijken").count() == 0  # not for volunteers
    ria = new_page(browser, contexts, LAPTOP_VIEWPORT)
    log_in(ria, live, "ria")
    start_shift(ria)

    # A parent asks for a person; Sanne picks up and the parent hears her name.
    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, LONELY)
    chat_say(parent, "1")
    conversation = the_conversation(live)
    ref = "#" + conversation.id.replace("-", "")[:6]
    sanne.get_by_role("button", name="Volgende oppakken").click()
    sanne.wait_for_url(f"{live.url}/dashboard/conversations/{conversation.id}", timeout=WAIT_MS)
    parent.locator("#log .msg.person", has_text="Sanne").wait_for(timeout=WAIT_MS)

    # Sanne presses "Vraag hulp": Ria's open dashboard (the queue page) shows it live.
    wait_live(ria)
    ria.evaluate("window.__sameDocument = true")
    sanne.get_by_role("button", name="Vraag hulp").click()
    sanne.get_by_role("status").filter(has_text="Je vraag om hulp is verstuurd").wait_for(timeout=WAIT_MS)
    alert = ria.locator(f'#alerts .alert.help[data-conversation="{conversation.id}"]')
    alert.wait_for(timeout=WAIT_MS)
    assert ref in alert.inner_text() and "HULP GEVRAAGD" in alert.inner_text()
    assert ria.evaluate("window.__sameDocument") is True, "the coordinator's page reloaded"
    shot(ria, artifacts_dir, "01-coordinator-help-alert")
    wait_live(sanne)
    sanne.evaluate("window.__sameDocument = true")

    # The live list has it on top; Ria reads along from the alert.
    ria.get_by_role("link", name="Meekijken").click()
    row = ria.locator("#list-live .row").first
    row.wait_for(timeout=WAIT_MS)
    assert row.get_attribute("data-conversation") == conversation.id and row.get_attribute("data-help") == "ja"
    assert "Sanne (vrijwilliger)" in row.inner_text() and "Vraagt om hulp" in row.inner_text()
    shot(ria, artifacts_dir, "02-meekijken-list")
    row.get_by_role("link", name="Meelezen").click()
    ria.wait_for_url(f"{live.url}/dashboard/supervision/{conversation.id}", timeout=WAIT_MS)
    assert LONELY in ria.locator("#transcript").inner_text()
    assert ria.locator("#reply-form").count() == 0  # read-only
    # Opening it answered the help request: Sanne's page shows that without a reload.
    sanne.locator('#supervision-holder[data-help="nee"]').wait_for(timeout=WAIT_MS)
    assert "Ria heeft je vraag om hulp gezien" in sanne.locator("#supervision-holder").inner_text()

    # A note to Sanne: it appears on her page live, and never in the parent's chat.
    wait_live(ria)
    ria.get_by_label("Je notitie").fill(NOTE)
    ria.get_by_role("button", name="Stuur notitie").click()
    ria.get_by_role("status").filter(has_text="Je notitie is verstuurd").wait_for(timeout=WAIT_MS)
    sanne.locator("#supervision-holder .note", has_text="De Luisterlijn").wait_for(timeout=WAIT_MS)
    assert sanne.evaluate("window.__sameDocument") is True, "the volunteer's page reloaded"
    shot(sanne, artifacts_dir, "03-volunteer-sees-the-note")

    # The parent writes on; Ria sees it live while reading along.
    parent_box = parent.get_by_label("Je bericht")
    parent_box.fill("Ik zit hier alleen met de baby en ik kan niet meer")
    parent_box.press("Enter")
    wait_live(ria)
    ria.locator("#transcript .msg.parent", has_text="alleen met de baby").wait_for(timeout=WAIT_MS)

    # "Neem over": one press. The parent hears Ria, with the same warm words as a handover.
    ria.get_by_role("button", name="Neem over").click()
    ria.wait_for_url(f"{live.url}/dashboard/conversations/{conversation.id}?melding=overgenomen", timeout=WAIT_MS)
    assert "Je hebt het gesprek overgenomen" in ria.locator("#notice").inner_text()
    assert ria.locator("#reply-form").count() == 1
    handover = parent.locator("#log .msg.person", has_text="Ria")
    handover.wait_for(timeout=WAIT_MS)
    assert "niet opnieuw" in handover.inner_text()
    # Sanne's page says it, live; her reply box is gone.
    sanne.get_by_role("status").filter(has_text="overgenomen").wait_for(timeout=WAIT_MS)
    assert sanne.locator("#reply-form").is_hidden()
    shot(sanne, artifacts_dir, "04-volunteer-taken-over")
    shot(parent, artifacts_dir, "05-parent-hears-ria")

    # The note is nowhere in the parent's chat (it came before the handover that did arrive).
    assert "Luisterlijn" not in parent.locator("#log").inner_text()
    assert the_conversation(live).status is ConversationStatus.claimed
