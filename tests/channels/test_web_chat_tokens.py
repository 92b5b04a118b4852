"""Web chat tokens are made by the server only, messages are limited per chat and per address (new
chats too), a refusal says how long to wait and stores nothing, and a message's client_id counts
per chat."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.channels.web import new_token, valid_token
from bot.config import Settings
from bot.storage.models import Conversation, Message
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.channels.conftest import run_async


@contextmanager
def chat_app(settings: Settings, triage: Triage, *, peer: str = "testclient",
             **changes: Any) -> Iterator[tuple[TestClient, Services]]:
    changed = settings.model_copy(update=changes)
    services = build_services(changed, triage=triage)
    try:
        with TestClient(create_app(changed, services), client=(peer, 50000)) as client:
            yield client, services
    finally:
        run_async(services.close)


def post(client: TestClient, text: str = "hoi", client_id: str | None = None,
         **headers: str) -> Any:
    return client.post("/chat/api/messages", headers=headers,
                       json={"text": text, "client_id": client_id or uuid.uuid4().hex})


def use_token(client: TestClient, token: str) -> None:
    client.cookies.clear()
    client.cookies.set("ot_chat", token, domain="testserver.local")


def parent_messages(services: Services) -> int:
    with services.factory() as session:
        return session.scalar(select(func.count()).select_from(Message)
                              .where(Message.author == "parent")) or 0


def conversations(services: Services) -> int:
    with services.factory() as session:
        return session.scalar(select(func.count()).select_from(Conversation)) or 0


def test_the_page_hands_out_a_signed_token(client: TestClient, services: Services) -> None:
    client.get("/chat")
    token = client.cookies.get("ot_chat")
    assert token and valid_token(services.settings.secret, token)
    assert post(client).status_code == 202


def test_a_self_made_token_is_refused_and_a_new_one_is_given(
        client: TestClient, services: Services) -> None:
    forged = [
        secrets.token_urlsafe(32),                                   # the old, unsigned kind
        secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(24),  # looks right, wrong signature
        new_token(b"another installation's key, quite long and random 123"),
    ]
    for token in forged:
        use_token(client, token)
        refused = post(client)
        assert refused.status_code == 401
        assert "/chat/api/session" in refused.json()["detail"]
        assert client.get("/chat/api/messages").status_code == 401
        assert client.post("/chat/api/remember", json={"remember": True}).status_code == 401
        # The page asks for a new token: a new, empty chat.
        fresh = client.post("/chat/api/session")
        assert fresh.status_code == 200 and fresh.json() == {"new": True}
        token_now = client.cookies.get("ot_chat")
        assert token_now != token and valid_token(services.settings.secret, token_now)
        assert post(client).status_code == 202
        # Asked again with a valid token: the same one.
        assert client.post("/chat/api/session").json() == {"new": False}
        assert client.cookies.get("ot_chat") == token_now
    assert parent_messages(services) == len(forged)


def test_a_new_token_only_from_our_own_page(client: TestClient) -> None:
    response = client.post("/chat/api/session", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_messages_per_chat_are_limited_and_the_refusal_stores_nothing(
        settings: Settings, triage: Triage) -> None:
    with chat_app(settings, triage, web_chat_per_chat=3) as (client, services):
        client.get("/chat")
        for _ in range(3):
            assert post(client).status_code == 202
        refused = post(client, "dit bericht mag niet verloren gaan")
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 60 and refused.json()["retry_after"] == wait
        assert parent_messages(services) == 3
        # Another chat (another browser) is not held up by this one.
        other = TestClient(client.app, client=("testclient", 50000))
        other.get("/chat")
        assert post(other).status_code == 202


def test_a_new_token_does_not_escape_the_address_limit(settings: Settings, triage: Triage) -> None:
    with chat_app(settings, triage, web_chat_per_address=5) as (client, services):
        accepted = 0
        for _ in range(4):
            client.cookies.clear()
            client.get("/chat")  # a new token each time
            for _ in range(2):
                accepted += post(client).status_code == 202
        assert accepted == 5
        assert parent_messages(services) == 5


def test_a_flood_of_new_chats_from_one_address_is_stopped(
        settings: Settings, triage: Triage) -> None:
    """The probe: one client made 100 waiting parents in a few seconds."""
    with chat_app(settings, triage) as (client, services):
        answers = []
        for _ in range(30):
            client.cookies.clear()
            client.get("/chat")
            answers.append(post(client, "mens").status_code)
        assert answers[:10] == [202] * 10
        assert set(answers[10:]) == {429}
        assert conversations(services) == 10
        # Yet another new token does not help.
        client.cookies.clear()
        client.get("/chat")
        assert post(client).status_code == 429


def test_an_existing_chat_goes_on_when_the_address_has_made_many(
        settings: Settings, triage: Triage) -> None:
    with chat_app(settings, triage, web_chat_new_per_address=2) as (client, services):
        client.get("/chat")
        assert post(client).status_code == 202
        kept = client.cookies.get("ot_chat")
        other = TestClient(client.app, client=("testclient", 50000))
        for _ in range(3):
            other.cookies.clear()
            other.get("/chat")
            post(other)
        use_token(client, kept)  # type: ignore[arg-type]
        assert post(client).status_code == 202
        # Redis forgot which chats it knew (a restart): SQL still knows this one.
        prefix = services.settings.redis_prefix
        for key in services.redis.scan_iter(match=f"{prefix}:webchat:known:*"):
            services.redis.delete(key)
        assert post(client).status_code == 202


def test_limits_by_the_address_a_trusted_proxy_gives(settings: Settings, triage: Triage) -> None:
    with chat_app(settings, triage, peer="10.0.0.5", forwarded_allow_ips="10.0.0.0/24",
                  web_chat_new_per_address=1) as (client, services):
        # Behind the proxy: each parent has their own address.
        for parent in ("203.0.113.7", "203.0.113.8", "203.0.113.9"):
            client.cookies.clear()
            client.get("/chat")
            assert post(client, **{"X-Forwarded-For": parent}).status_code == 202
        assert conversations(services) == 3
    with chat_app(settings, triage, peer="198.51.100.1",
                  web_chat_new_per_address=1) as (client, services):
        # Not a trusted proxy: a made-up X-Forwarded-For does not give a new address.
        answers = []
        for parent in ("203.0.113.7", "203.0.113.8", "203.0.113.9"):
            client.cookies.clear()
            client.get("/chat")
            answers.append(post(client, **{"X-Forwarded-For": parent}).status_code)
        assert answers == [202, 429, 429]


def test_limits_off_when_set_to_zero(settings: Settings, triage: Triage) -> None:
    with chat_app(settings, triage, web_chat_per_chat=0, web_chat_per_address=0,
                  web_chat_new_per_address=0) as (client, _services):
        for _ in range(12):
            client.cookies.clear()
            client.get("/chat")
            assert post(client).status_code == 202


def test_a_client_id_counts_per_chat(client: TestClient, services: Services) -> None:
    """Another browser re-using a client_id is not a duplicate; the same browser's replay is."""
    same = uuid.uuid4().hex
    client.get("/chat")
    first = post(client, "waar vind ik een verloskundige", client_id=same)
    again = post(client, "waar vind ik een verloskundige", client_id=same)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    other = TestClient(client.app, client=("testclient", 50000))
    other.get("/chat")
    theirs = post(other, "ik ben zwanger en zoek hulp", client_id=same)
    assert theirs.status_code == 202 and theirs.json()["duplicate"] is False
    assert parent_messages(services) == 2
    with services.factory() as session:
        ids = session.scalars(select(Message.provider_message_id)
                              .where(Message.author == "parent")).all()
        assert same not in ids  # a keyed value per chat, not the page's id itself
