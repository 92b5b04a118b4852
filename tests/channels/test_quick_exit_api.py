"""The web chat's cookie and "Snel weg" at the HTTP level: a session cookie by default, a lasting
one only when the parent ticks "onthoud dit gesprek op dit apparaat", and "Snel weg" clearing the
cookie and unlinking the conversation (which stays). The real browser is in
tests/browser/test_quick_exit.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Author, Conversation, Message
from bot.web.app import Services, create_app

HTTPS = "https://oudertelefoon.example"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_base_url": HTTPS,
                                       "quick_exit_url": "https://neutral.example/weer?q=1"})


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services), base_url="https://testserver") as test_client:
        yield test_client


def set_cookies(response: object, name: str) -> list[str]:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return [h for h in headers if h.startswith(f"{name}=")]


def attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}


def say(client: TestClient, text: str) -> dict:
    response = client.post("/chat/api/messages", json={"text": text, "client_id": uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_the_page_sets_a_session_cookie_and_is_not_cached(client: TestClient) -> None:
    page = client.get("/chat")
    assert page.status_code == 200
    [cookie] = set_cookies(page, "ot_chat")
    flags = attributes(cookie)
    assert "max-age" not in flags and "expires" not in flags  # gone when the browser closes
    assert "httponly" in flags and flags["samesite"].lower() == "strict" and "secure" in flags
    assert page.headers["cache-control"] == "no-store"
    assert 'data-exit-url="https://neutral.example/weer?q=1"' in page.text
    assert 'aria-label="Snel weg' in page.text and ">Snel weg</button>" in page.text
    assert 'id="remember"' in page.text and "checked" not in page.text


def test_ticking_the_box_makes_it_last_and_unticking_does_not(
    client: TestClient, settings: Settings
) -> None:
    client.get("/chat")
    token = client.cookies.get("ot_chat")
    assert token

    ticked = client.post("/chat/api/remember", json={"remember": True})
    assert ticked.status_code == 200 and ticked.json() == {"remember": True}
    [cookie] = set_cookies(ticked, "ot_chat")
    assert cookie.startswith(f"ot_chat={token};")  # the same conversation
    flags = attributes(cookie)
    assert flags["max-age"] == str(settings.retention_days * 86400)
    assert "httponly" in flags and flags["samesite"].lower() == "strict" and "secure" in flags
    # The page shows the box ticked, and leaves the lasting cookie alone.
    page = client.get("/chat")
    box = 'id="remember" type="checkbox" disabled aria-describedby="keep-hint" checked'
    assert box in page.text
    assert set_cookies(page, "ot_chat") == []

    unticked = client.post("/chat/api/remember", json={"remember": False})
    assert unticked.status_code == 200
    [cookie] = set_cookies(unticked, "ot_chat")
    assert cookie.startswith(f"ot_chat={token};")
    assert "max-age" not in attributes(cookie)
    [keep] = set_cookies(unticked, "ot_chat_keep")
    assert attributes(keep)["max-age"] == "0"
    assert "checked" not in client.get("/chat").text


def test_the_box_needs_a_chat_and_a_clear_answer(client: TestClient) -> None:
    assert client.post("/chat/api/remember", json={"remember": True}).status_code == 401
    client.get("/chat")
    assert client.post("/chat/api/remember", json={"remember": "misschien"}).status_code == 422
    assert client.post("/chat/api/remember", json={}).status_code == 422


def test_snel_weg_clears_the_cookie_and_unlinks_the_conversation(
    client: TestClient, services: Services
) -> None:
    client.get("/chat")
    token = client.cookies.get("ot_chat")
    client.post("/chat/api/remember", json={"remember": True})
    say(client, "mijn vriend slaat me")
    assert client.get("/chat/api/messages").json()["messages"]

    gone = client.post("/chat/api/exit")
    assert gone.status_code == 204
    for name in ("ot_chat", "ot_chat_keep"):
        [cookie] = set_cookies(gone, name)
        assert attributes(cookie)["max-age"] == "0"
    assert client.cookies.get("ot_chat") is None

    # A copy of the old cookie leads nowhere now ...
    client.cookies.set("ot_chat", token or "")
    assert client.get("/chat/api/messages").json()["messages"] == []
    # ... while the conversation stays, for the person who helps.
    with services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.pseudonym != services.vault.pseudonym("web", token or "")
        texts = session.scalars(select(Message.text).where(Message.author == Author.parent)).all()
        assert list(texts) == ["mijn vriend slaat me"]
    # Writing again with that old cookie starts a new conversation.
    say(client, "hoi")
    with services.factory() as session:
        assert len(session.scalars(select(Conversation)).all()) == 2


def test_snel_weg_without_javascript_goes_on_to_the_neutral_site(client: TestClient) -> None:
    client.get("/chat")
    say(client, "hoi")
    response = client.post("/chat/exit", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "https://neutral.example/weer?q=1"
    [cookie] = set_cookies(response, "ot_chat")
    assert attributes(cookie)["max-age"] == "0"
    # Without a chat there is nothing to forget; it still goes.
    assert client.post("/chat/api/exit").status_code == 204


def test_another_site_cannot_press_snel_weg(client: TestClient) -> None:
    client.get("/chat")
    say(client, "hoi")
    for path in ("/chat/api/exit", "/chat/exit"):
        response = client.post(path, headers={"Sec-Fetch-Site": "cross-site"},
                               follow_redirects=False)
        assert response.status_code == 403
        assert set_cookies(response, "ot_chat") == []
    assert client.get("/chat/api/messages").json()["messages"]
    same = client.post("/chat/api/exit", headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 204


def test_a_bad_quick_exit_url_stops_the_start(settings: Settings) -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    for bad in ("javascript:alert(1)", "//elders.example", "weer.nl", "https://a b"):
        with pytest.raises(ConfigError, match="QUICK_EXIT_URL"):
            load_settings(OUDERTELEFOON_ENV="test", QUICK_EXIT_URL=bad)
    assert load_settings(OUDERTELEFOON_ENV="test", QUICK_EXIT_URL="/weer").quick_exit_url == "/weer"
