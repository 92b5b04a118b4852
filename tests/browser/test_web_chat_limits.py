"""The web chat's limits and tokens in a real browser: told to wait (429), the page says so in
short Dutch, keeps the message and sends it after the wait; a token the server did not make is
replaced by a new one and the message still goes out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Author, Message
from bot.triage.engine import Triage
from bot.web.app import build_services
from tests.browser.conftest import LiveServer, free_port
from tests.browser.test_web_chat import BOTS, PARENTS, WAIT_MS, open_chat, say, shot, texts

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def live(settings: Settings, triage: Triage) -> Iterator[LiveServer]:
    limited = settings.model_copy(update={"web_chat_per_chat": 1})
    services = build_services(limited, triage=triage)
    server = LiveServer(limited, services, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def parent_texts_in_db(live: LiveServer) -> list[str]:
    with live.services.factory() as session:
        return list(session.scalars(select(Message.text).where(Message.author == Author.parent)
                                      .order_by(Message.created_at)))


def minute_passes(live: LiveServer) -> None:
    redis, prefix = live.services.redis, live.settings.redis_prefix
    for key in list(redis.scan_iter(match=f"{prefix}:webchat:msg:*")):
        redis.delete(key)


def test_told_to_wait_the_message_stays_and_goes_out_later(
        page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    page.clock.install()
    open_chat(page, live)
    say(page, "hoi")                                  # the one message this minute
    box = page.get_by_label("Je bericht")
    box.fill("ik wil graag met iemand praten")
    box.press("Enter")
    status = page.get_by_role("status").filter(has_text="Even wachten")
    status.wait_for(timeout=WAIT_MS)
    said = status.inner_text()
    assert "Je bericht blijft hier staan" in said and "112" in said
    assert "seconden" in said or "minuut" in said
    # The message is on screen, marked as not sent yet; nothing is lost.
    pending = page.locator("#log .msg.parent.pending")
    assert pending.locator(".text").inner_text() == "ik wil graag met iemand praten"
    assert "Nog niet verstuurd" in pending.locator(".meta").inner_text()
    assert parent_texts_in_db(live) == ["hoi"]
    shot(page, artifacts_dir, "01-told-to-wait")

    # Typing on while waiting: queued behind, not sent early.
    box.fill("hallo?")
    box.press("Enter")
    page.wait_for_timeout(500)
    assert parent_texts_in_db(live) == ["hoi"]

    # The minute passes (for Redis and for the page): both go out, in order, once; the second
    # waits a minute of its own.
    want = ["hoi", "ik wil graag met iemand praten", "hallo?"]
    for _ in range(40):
        if parent_texts_in_db(live) == want:
            break
        minute_passes(live)
        page.clock.fast_forward(65_000)
        page.wait_for_timeout(500)
    assert parent_texts_in_db(live) == ["hoi", "ik wil graag met iemand praten", "hallo?"]
    page.locator("#log .msg.parent:not(.pending)").nth(2).wait_for(timeout=WAIT_MS)
    assert texts(page, PARENTS) == ["hoi", "ik wil graag met iemand praten", "hallo?"]
    shot(page, artifacts_dir, "02-sent-after-the-wait")


def test_a_token_the_server_did_not_make_is_replaced(
        page: Page, live: LiveServer, artifacts_dir: Path) -> None:
    open_chat(page, live)
    # A self-made token (or one from before a key change) in the cookie.
    page.context.add_cookies([{"name": "ot_chat", "value": "A" * 32 + "." + "B" * 32,
                               "url": live.url}])
    box = page.get_by_label("Je bericht")
    box.fill("hoi")
    box.press("Enter")
    page.locator(BOTS).first.wait_for(timeout=WAIT_MS)
    assert texts(page, PARENTS) == ["hoi"]
    assert parent_texts_in_db(live) == ["hoi"]
    cookie = next(c for c in page.context.cookies() if c["name"] == "ot_chat")
    assert cookie["value"] != "A" * 32 + "." + "B" * 32
    assert "verlopen" not in page.get_by_role("status").inner_text()
    shot(page, artifacts_dir, "01-new-token")
