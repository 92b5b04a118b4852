"""Presence that is true, in real browsers against the real service (uvicorn in a thread, the
worker on): a volunteer on shift with no professional present sees an acute parent, reads the
card (why in plain words, what the parent read first, the numbers) and takes the conversation;
the parent hears who it is only when the page opens. Then she closes her tab: past
PRESENCE_TIMEOUT_SECONDS (20 here) she is "weg" on a colleague's dashboard, and the next parent
is not promised minutes. She comes back, then logs out: her shift ends.

Time: the desk and the pipeline share a clock the test moves forward (the tab's absence is 21
seconds on that clock, not a real wait); everything else runs in real time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.accounts.sessions import Person
from bot.config import Settings
from bot.hours import Hours
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Handoff,
    QueueName,
    Role,
    Shift,
    User,
    utcnow,
)
from bot.triage.engine import Triage
from bot.triage.types import Risk
from bot.web.app import build_services
from tests.browser.conftest import PHONE_VIEWPORT, LiveServer
from tests.browser.test_handoff_flow import (
    LAPTOP_VIEWPORT,
    LONELY,
    TABLET_VIEWPORT,
    WAIT_MS,
    chat_say,
    contexts,  # noqa: F401 (a fixture)
    log_in,
    make_user,
    new_page,
    shot,
    wait_live,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

TIMEOUT = 20  # PRESENCE_TIMEOUT_SECONDS (its lowest allowed value)
SUICIDE = "ik wil niet meer leven, ik heb de pillen al klaarliggen"


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def around_now(settings: Settings) -> Hours:
    """Opening hours that include this moment and close in two hours (so "open now, nobody
    there" is the case, whatever the time of day the test runs)."""
    local = utcnow().astimezone(ZoneInfo(settings.timezone))
    start = (local.hour * 60 + local.minute - 60) % (24 * 60)
    return Hours(start, (start + 180) % (24 * 60))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hours(settings: Settings) -> Hours:
    return around_now(settings)


@pytest.fixture
def live(settings: Settings, triage: Triage, clock: Clock, hours: Hours) -> Iterator[LiveServer]:
    text = hours.text()
    tuned = settings.model_copy(update={"presence_timeout_seconds": TIMEOUT,
                                        "volunteer_hours": text, "professional_hours": text})
    services = build_services(tuned, triage=triage)
    services.desk.clock = clock
    services.pipeline.clock = clock
    server = LiveServer(tuned, services)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def people_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#people .person-row", has_text=name)


def start_shift(page: Page) -> None:
    page.get_by_role("button", name="Ik begin").click()
    page.get_by_role("status").filter(has_text="Je dienst is begonnen").wait_for(timeout=WAIT_MS)
    wait_live(page)


def the_acute_conversation(live: LiveServer) -> Conversation:
    with live.services.factory() as session:
        return session.scalars(select(Conversation).where(Conversation.highest_risk == Risk.acute)).one()


def test_a_volunteer_takes_an_acute_parent_then_goes_away_comes_back_and_logs_out(
    browser: Browser, contexts: list[BrowserContext], live: LiveServer,
    clock: Clock, hours: Hours, artifacts_dir: Path
) -> None:
    make_user(live, "sanne", "Sanne", Role.volunteer)
    make_user(live, "mark", "Mark", Role.professional)  # exists, but not on shift tonight
    make_user(live, "ria", "Ria", Role.coordinator)

    # Sanne (volunteer) goes on shift on her tablet; Ria (coordinator, not on shift) watches.
    sanne_context = browser.new_context(viewport=TABLET_VIEWPORT, locale="nl-NL")
    contexts.append(sanne_context)
    sanne = sanne_context.new_page()
    log_in(sanne, live, "sanne")
    start_shift(sanne)
    ria = new_page(browser, contexts, LAPTOP_VIEWPORT)
    log_in(ria, live, "ria")
    wait_live(ria)
    people_row(ria, "Sanne").wait_for(timeout=WAIT_MS)
    assert "aanwezig" in people_row(ria, "Sanne").inner_text()
    assert people_row(ria, "Mark").count() == 0

    # A parent in danger writes in the web chat: the professional queue, and no professional
    # is there. Sanne is alerted (banner and beep) and the row is hers to take.
    parent = new_page(browser, contexts, PHONE_VIEWPORT)
    parent.goto(f"{live.url}/chat")
    parent.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(parent, SUICIDE)
    conversation = the_acute_conversation(live)
    assert conversation.queue is QueueName.professional
    banner = sanne.locator("#alerts .alert.acute")
    banner.wait_for(timeout=WAIT_MS)
    assert sanne.evaluate("document.body.dataset.beeps") == "1"
    row = sanne.locator(f'#list-waiting [data-conversation="{conversation.id}"]')
    row.wait_for(timeout=WAIT_MS)
    assert "ACUUT" in row.inner_text() and row.get_by_role("button", name="Oppakken").count() == 1
    assert "Prioriteit" not in sanne.locator("#queue-lists").inner_text()
    shot(sanne, artifacts_dir, "01-volunteer-acute-no-professional")

    # The card: why in plain words, what the parent read first, the numbers to pass on.
    row.get_by_role("link", name="Bekijken").click()
    url = f"{live.url}/dashboard/conversations/{conversation.id}"
    sanne.wait_for_url(url, timeout=WAIT_MS)
    card = sanne.get_by_role("region", name="Overdracht").inner_text()
    assert "Spoed: de ouder schreef over zelfdoding" in card
    assert live.services.texts.guidance.text("suicide", "nl") in card
    assert "Nummers om door te geven" in card and "0800-0113" in card
    assert "Er is nu geen hulpverlener online" in card
    for unclear in ("Prioriteit", "prioriteit", "het model schat"):
        assert unclear not in card, unclear
    assert sanne.get_by_role("button", name=re.compile("coördinator")).count() == 0  # none on duty
    shot(sanne, artifacts_dir, "02-acute-card-for-a-volunteer")

    # She claims it (with fetch, as a script would: the page does not open yet). The parent
    # hears nothing until she opens the conversation.
    status = sanne.evaluate(
        """async (url) => {
            const csrf = document.querySelector('input[name="csrf_token"]').value;
            const body = new URLSearchParams({csrf_token: csrf});
            const response = await fetch(url, {method: 'POST', body,
                headers: {'X-Requested-With': 'fetch'}, credentials: 'same-origin'});
            return response.status;
        }""", f"{url}/claim")
    assert status == 200
    with live.services.factory() as session:
        claimed = session.get(Conversation, conversation.id)
        assert claimed.status is ConversationStatus.claimed
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation.id,
                                                        Handoff.claimed_by.is_not(None))).one()
        assert handoff.greeted_at is None
    parent.wait_for_timeout(2000)
    assert parent.locator("#log .msg.person").count() == 0
    sanne.reload()  # opens the conversation as hers
    sanne.get_by_label("Je bericht aan de ouder").wait_for(timeout=WAIT_MS)
    handover = parent.locator("#log .msg.person", has_text="Sanne")
    handover.wait_for(timeout=WAIT_MS)
    assert "vrijwilliger" in handover.inner_text() and "Ik lees nu" in handover.inner_text()
    sanne.reload()
    sanne.get_by_label("Je bericht aan de ouder").wait_for(timeout=WAIT_MS)
    parent.wait_for_timeout(2000)
    assert parent.locator("#log .msg.person").count() == 1  # once, not at every opening
    shot(parent, artifacts_dir, "03-parent-handover-after-opening")

    # Sanne closes her tab. Past the timeout she is "weg" on Ria's dashboard (live: the
    # worker's round tells the dashboards; here the test runs that round itself).
    sanne.close()
    clock.advance(TIMEOUT + 1)
    live.services.desk.tick()
    away = people_row(ria, "Sanne")
    ria.wait_for_function(
        "() => /\\bweg\\b/.test((document.querySelector('#people') || {}).innerText || '')",
        timeout=WAIT_MS)
    assert "weg" in away.inner_text() and "aanwezig" not in away.inner_text()
    shot(ria, artifacts_dir, "04-coordinator-sees-volunteer-away")

    # The next parent: nobody is online, so no "within N minutes", but when the rota next has
    # someone (the next opening period: these hours are open now).
    with live.services.factory() as session:
        user = session.scalars(select(User).where(User.username == "ria")).one()
        ria_person = Person(user_id=user.id, username=user.username, display_name=user.display_name,
                            role=user.role, languages=("nl",), csrf_token="-")
    estimate = live.services.desk.snapshot(ria_person).estimates[QueueName.volunteer]
    assert estimate.people_on_shift == 0 and estimate.minutes is None and estimate.open_now
    assert estimate.next_shift_starts == hours.next_opening_after_close(clock(), live.services.desk.zone)
    second = new_page(browser, contexts, PHONE_VIEWPORT)
    second.goto(f"{live.url}/chat")
    second.wait_for_selector("#log[data-loaded]", state="attached", timeout=WAIT_MS)
    chat_say(second, LONELY)
    chat_say(second, "1")
    said = second.locator("#log .msg.bot").all_inner_texts()
    assert not any("binnen" in text for text in said), said
    opening = estimate.next_shift_starts.astimezone(live.services.desk.zone).strftime("%H:%M")
    assert any(opening in text for text in said), (opening, said)
    shot(second, artifacts_dir, "05-next-parent-hears-nobody-is-online")

    # Sanne comes back (a new tab, still logged in): present again, live on Ria's page.
    sanne = sanne_context.new_page()
    sanne.goto(f"{live.url}/dashboard")
    wait_live(sanne)
    ria.wait_for_function(
        "() => /Sanne[\\s\\S]*aanwezig/.test((document.querySelector('#people') || {}).innerText || '')",
        timeout=WAIT_MS)
    assert "aanwezig" in people_row(ria, "Sanne").inner_text()

    # She logs out: her shift ends and her conversation goes back to the queue.
    sanne.get_by_role("button", name="Uitloggen").click()
    sanne.wait_for_url(re.compile(r"/login"), timeout=WAIT_MS)
    with live.services.factory() as session:
        shift = session.scalars(select(Shift).join(User, User.id == Shift.user_id)
                                .where(User.username == "sanne")).one()
        assert shift.ended_at is not None
        assert session.get(Conversation, conversation.id).status is ConversationStatus.queued
    people_row(ria, "Sanne").wait_for(state="detached", timeout=WAIT_MS)
    shot(ria, artifacts_dir, "06-coordinator-after-logout")
