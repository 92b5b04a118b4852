"""Telegram: whole conversations through POST /webhooks/telegram, with the replies delivered by
the worker to a fake Telegram Bot API (a real HTTP server, tests/channels/fake_telegram.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import SecretStr
from sqlalchemy import func, select, update

from bot.channels.base import DeliveryError, OutboundMessage
from bot.channels.telegram import TELEGRAM_TEXT_LIMIT, TelegramSender, poll, split_text
from bot.config import REPO_ROOT, Settings
from bot.storage.models import (
    Base,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    OutboxStatus,
    QueueName,
    utcnow,
)
from bot.web.app import Services
from tests.channels.conftest import deliver, outbox_rows, pending
from tests.channels.fake_telegram import FakeTelegram
from tests.conftest import ENV_REDIS_URL

PAYLOADS = REPO_ROOT / "tests" / "payloads" / "telegram"
SECRET = "wh-secret_0123456789abcdefghijklmnop"
RECORDED_CHAT_ID = "5830172946"


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_telegram: FakeTelegram) -> Settings:
    """The shared test settings with Telegram on, pointed at the fake Bot API."""
    return settings.model_copy(update={
        "telegram_bot_token": SecretStr(fake_telegram.token),
        "telegram_webhook_secret": SecretStr(SECRET),
        "telegram_api_base": fake_telegram.url,
        "public_base_url": "https://oudertelefoon.example",
    })


class Parent:
    """A parent in a private Telegram chat. Chat and update ids are fresh per test: a real Redis
    is shared between tests and remembers update ids."""

    def __init__(self, client: TestClient | None = None) -> None:
        self.client = client
        self.chat_id = str(random.randrange(1_000_000_000, 9_999_999_999))
        self._next = random.randrange(100_000_000, 900_000_000)

    def update(self, name: str, text: str | None = None) -> dict[str, Any]:
        """A recorded payload as this parent's next update."""
        raw = (PAYLOADS / f"{name}.json").read_text(encoding="utf-8")
        data: dict[str, Any] = json.loads(raw.replace(RECORDED_CHAT_ID, self.chat_id))
        self._next += 1
        data["update_id"] = self._next
        if text is not None:
            data["message"]["text"] = text
        return data

    def post(self, data: dict[str, Any] | bytes, secret: str | None = SECRET) -> Response:
        assert self.client is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        if isinstance(data, bytes):
            headers["Content-Type"] = "application/json"
            return self.client.post("/webhooks/telegram", content=data, headers=headers)
        return self.client.post("/webhooks/telegram", json=data, headers=headers)

    def send(self, name: str = "text_message", text: str | None = None) -> dict[str, Any]:
        data = self.update(name, text)
        response = self.post(data)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True}
        return data

    def say(self, text: str) -> dict[str, Any]:
        return self.send("text_message", text)


@pytest.fixture
def parent(client: TestClient) -> Parent:
    return Parent(client)


def received(fake: FakeTelegram, parent: Parent) -> list[str]:
    """The texts this parent received, in order (and nobody else got anything)."""
    assert {chat for chat, _ in fake.sent} <= {parent.chat_id}
    return [text for _, text in fake.sent]


def make_due(services: Services) -> None:
    """Skip the backoff: every pending reply is due now."""
    with services.factory() as session, session.begin():
        session.execute(update(Outbox).where(Outbox.status == OutboxStatus.pending)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def count(services: Services, model: type[Base]) -> int:
    with services.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def parent_messages(services: Services) -> list[Message]:
    with services.factory() as session:
        return list(session.scalars(select(Message).where(Message.author == "parent")
                                    .order_by(Message.created_at)))


# Conversations -------------------------------------------------------------------------------

def test_start_gives_the_welcome(parent: Parent, services: Services, fake_telegram: FakeTelegram) -> None:
    parent.send("start")
    assert deliver(services) == 1
    [welcome] = received(fake_telegram, parent)
    assert "Oudertelefoon" in welcome and "112" in welcome and "mens" in welcome
    [stored] = parent_messages(services)
    assert stored.text == "/start" and stored.channel is Channel.telegram


def test_a_conversation(parent: Parent, services: Services, fake_telegram: FakeTelegram) -> None:
    parent.send("start")
    parent.send("text_message")  # "Waar vind ik een verloskundige in Amsterdam?"
    assert deliver(services) == 2
    welcome, answer = received(fake_telegram, parent)
    assert "Oudertelefoon" in welcome
    assert answer.startswith("Hier kun je terecht") and "mens" in answer
    parent.say("ja dankje")
    assert deliver(services) == 1
    assert received(fake_telegram, parent)[-1].startswith("Fijn")
    assert sum("Oudertelefoon" in text for text in received(fake_telegram, parent)) == 1
    assert pending(services) == 0
    with services.factory() as session:
        rows = list(session.scalars(select(Outbox)))
        assert all(row.status is OutboxStatus.sent and row.provider_message_id for row in rows)
        assert all(row.address_encrypted is None for row in rows)  # wiped once sent


def test_a_reply_after_a_delivered_one_is_due_at_once(
    parent: Parent, services: Services, fake_telegram: FakeTelegram
) -> None:
    parent.say("waar vind ik een verloskundige")
    assert deliver(services) == 2
    parent.say("ja dankje")
    assert deliver(services) == 1


def test_stop_ends_the_conversation(parent: Parent, services: Services, fake_telegram: FakeTelegram) -> None:
    parent.say("hoi")
    parent.send("stop")
    deliver(services)
    assert received(fake_telegram, parent)[-1].startswith("Het gesprek is gestopt")
    with services.factory() as session:
        assert session.scalars(select(Conversation)).one().status is ConversationStatus.closed


def test_replay_of_an_update_stores_once_and_replies_once(
    parent: Parent, services: Services, fake_telegram: FakeTelegram
) -> None:
    data = parent.update("text_message")
    for _ in range(3):  # Telegram redelivers until it gets a 2xx
        response = parent.post(data)
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert len(parent_messages(services)) == 1
    assert deliver(services) == 2  # welcome + answer, once
    assert len(fake_telegram.sent) == 2
    parent.post(data)
    assert deliver(services) == 0 and len(fake_telegram.sent) == 2


def test_acute_message_gets_the_emergency_guidance_first(
    parent: Parent, services: Services, fake_telegram: FakeTelegram
) -> None:
    parent.say("ik wil niet meer wakker worden")
    deliver(services)
    texts = received(fake_telegram, parent)
    assert texts[0].startswith("Denk je eraan om jezelf iets aan te doen") and "113" in texts[0]
    assert "Oudertelefoon" in texts[1]
    with services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.status is ConversationStatus.queued and conversation.priority == 0


@pytest.mark.parametrize("name,kind", [("voice", "voice"), ("sticker", "sticker"), ("location", "location")])
def test_media_gets_the_text_only_reply_and_is_kept(
    parent: Parent, services: Services, fake_telegram: FakeTelegram, name: str, kind: str
) -> None:
    parent.send(name)
    deliver(services)
    texts = received(fake_telegram, parent)
    assert any(text.startswith("Ik kan alleen tekst lezen") for text in texts)
    [stored] = parent_messages(services)
    assert stored.media_kind == kind and stored.text == ""


def test_photo_with_caption_keeps_the_caption_as_text(
    parent: Parent, services: Services, fake_telegram: FakeTelegram
) -> None:
    data = parent.send("photo_caption")
    deliver(services)
    [stored] = parent_messages(services)
    assert stored.media_kind == "photo" and stored.text == data["message"]["caption"]
    assert len(received(fake_telegram, parent)) >= 2  # welcome, and an answer to the caption


def test_an_edited_message_is_a_new_message(parent: Parent, services: Services, fake_telegram: FakeTelegram) -> None:
    parent.send("text_message")
    parent.send("edited_message")
    first, edited = parent_messages(services)
    assert edited.text.endswith("Amsterdam-Noord?") and edited.conversation_id == first.conversation_id
    deliver(services)
    assert len(received(fake_telegram, parent)) == 3  # welcome, answer, answer to the edit


@pytest.mark.parametrize("name", ["my_chat_member", "group_message"])
def test_updates_without_a_private_message_are_acknowledged_and_ignored(
    parent: Parent, services: Services, name: str
) -> None:
    response = parent.post(parent.update(name))
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert count(services, Message) == 0 and count(services, Conversation) == 0


# Authentication and bad bodies --------------------------------------------------------------

@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
def test_wrong_or_missing_secret_is_refused(parent: Parent, services: Services, secret: str | None) -> None:
    response = parent.post(parent.update("text_message"), secret=secret)
    assert response.status_code == 403
    assert count(services, Message) == 0 and count(services, Conversation) == 0


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"[1, 2]",
    b'"hello"',
    b'{"message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "text": "hoi"}}',
    b'{"update_id": "12", "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}}}',
    b'{"update_id": 12, "message": "hoi"}',
    b'{"update_id": 12, "message": {"message_id": 1, "date": 1, "text": "hoi"}}',
    b'{"update_id": 12, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "text": "hoi"}}',
    b'{"update_id": 12, "message": {"message_id": 1, "date": 1, "chat": {"id": "1", "type": "private"}, "text": "hoi"}}',
    b'{"update_id": 12, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "text": 5}}',
])
def test_a_body_that_is_not_an_update_is_400(parent: Parent, services: Services, body: bytes) -> None:
    response = parent.post(body)
    assert response.status_code == 400
    assert "not a Telegram update" in response.json()["detail"]
    assert count(services, Message) == 0 and count(services, Conversation) == 0


def test_bad_secret_is_checked_before_the_body(parent: Parent, services: Services) -> None:
    assert parent.post(b"{not json", secret="wrong").status_code == 403


# Delivery: retries and refusals ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["down", "server_error", "flood", "drop"])
def test_api_down_is_retried_later_and_delivered_once(
    parent: Parent, services: Services, fake_telegram: FakeTelegram, kind: str
) -> None:
    parent.send("start")
    parent.say("waar vind ik een verloskundige")
    fake_telegram.fail(3, kind)
    for _ in range(3):
        assert deliver(services) == 0
        rows = outbox_rows(services)
        assert all(row.status is OutboxStatus.pending for row in rows)
        assert rows[0].next_attempt_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None)  # backing off
        make_due(services)
    assert deliver(services) == 2
    welcome, answer = received(fake_telegram, parent)
    assert "Oudertelefoon" in welcome and answer.startswith("Hier kun je terecht")
    rows = outbox_rows(services)
    assert [row.status for row in rows] == [OutboxStatus.sent, OutboxStatus.sent]
    assert rows[0].attempts == 4
    make_due(services)
    assert deliver(services) == 0 and len(fake_telegram.sent) == 2  # never twice


@pytest.mark.parametrize("kind", ["blocked", "chat_not_found"])
def test_blocked_bot_fails_and_is_not_retried(
    parent: Parent, services: Services, fake_telegram: FakeTelegram, kind: str
) -> None:
    parent.send("start")
    parent.say("waar vind ik een verloskundige")
    fake_telegram.fail(100, kind)
    for _ in range(5):
        deliver(services)
        make_due(services)
    rows = outbox_rows(services)
    assert [row.status for row in rows] == [OutboxStatus.failed, OutboxStatus.failed]
    assert all(row.attempts == 1 and row.address_encrypted is None for row in rows)
    assert fake_telegram.methods().count("sendMessage") == 2  # one try each, then given up
    assert "refused" in (rows[0].last_error or "")
    assert fake_telegram.sent == []


# Long texts ----------------------------------------------------------------------------------

def test_split_text_at_line_breaks() -> None:
    lines = [f"Regel {n}: " + "woorden " * 12 for n in range(60)]
    text = "\n".join(lines)  # about 6,000 characters
    assert 5500 < len(text) < 7000
    parts = split_text(text)
    assert len(parts) == 2
    assert all(len(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    assert "\n".join(parts) == text  # split at a line break, nothing lost or reordered
    assert parts[1].startswith("Regel ")
    assert split_text("kort") == ["kort"]
    assert split_text("x" * TELEGRAM_TEXT_LIMIT) == ["x" * TELEGRAM_TEXT_LIMIT]


def test_split_text_without_line_breaks_and_with_emoji() -> None:
    one_line = " ".join(["woord"] * 1500)  # 8,999 characters, no line break
    parts = split_text(one_line)
    assert len(parts) == 3 and " ".join(parts) == one_line
    assert all(len(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    no_spaces = "a" * 9000
    assert [len(p) for p in split_text(no_spaces)] == [4096, 4096, 808]
    emoji = "😊" * 3000  # Telegram counts each as two
    parts = split_text(emoji)
    assert "".join(parts) == emoji and all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert split_text("") == [] and split_text("\n\n") == []


def test_a_long_reply_goes_out_as_several_messages_in_order(
    settings: Settings, fake_telegram: FakeTelegram
) -> None:
    text = "\n".join(f"Regel {n}: " + "woorden " * 12 for n in range(60))
    sender = TelegramSender(settings)

    async def run() -> None:
        message = OutboundMessage(outbox_id="o-1", channel=Channel.telegram, address="4242", text=text)
        fake_telegram.fail(1, "down", after=1)  # the second part fails once
        with pytest.raises(DeliveryError) as failed:
            await sender.send(message)
        assert failed.value.retryable
        result = await sender.send(message)  # the worker's retry goes on with the second part
        assert result.provider_message_id
        await sender.close()

    asyncio.run(run())
    assert [chat for chat, _ in fake_telegram.sent] == ["4242", "4242"]
    assert "\n".join(t for _, t in fake_telegram.sent) == text


def test_sender_error_mapping(settings: Settings, fake_telegram: FakeTelegram) -> None:
    sender = TelegramSender(settings)
    message = OutboundMessage(outbox_id="o-2", channel=Channel.telegram, address="4242", text="hoi")

    async def attempt() -> DeliveryError:
        with pytest.raises(DeliveryError) as failed:
            await sender.send(message)
        return failed.value

    async def run() -> None:
        for kind, retryable in [("down", True), ("server_error", True), ("flood", True), ("drop", True),
                                ("unauthorized", True), ("blocked", False), ("chat_not_found", False)]:
            fake_telegram.fail(1, kind)
            error = await attempt()
            assert error.retryable is retryable, kind
            assert fake_telegram.token not in str(error)
        assert (await sender.send(message)).provider_message_id
        await sender.close()

    asyncio.run(run())


# Privacy -------------------------------------------------------------------------------------

def test_no_chat_id_or_text_in_logs_or_tables(
    parent: Parent, services: Services, fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    words = "mijn vriend slaat me en ik ben bang"
    parent.send("start")
    parent.say(words)
    parent.send("voice")
    parent.send("my_chat_member")
    parent.post(parent.update("text_message"), secret="wrong")
    parent.post(b"{broken")
    fake_telegram.fail(1, "down")
    deliver(services)
    make_due(services)
    deliver(services)
    assert len(fake_telegram.sent) >= 3
    log = caplog.text
    assert parent.chat_id not in log
    assert words not in log and "verloskundige" not in log
    assert fake_telegram.token not in log and fake_telegram.token.split(":")[1] not in log
    assert SECRET not in log
    with services.factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                for column, value in row.items():
                    if column.endswith("_encrypted") or value is None:
                        continue
                    assert parent.chat_id not in str(value), f"{table.name}.{column}"
                    assert "Sanne" not in str(value), f"{table.name}.{column}"  # names are not kept
        conversation = session.scalars(select(Conversation)).one()
        assert services.vault.decrypt(conversation.address_encrypted or b"") == parent.chat_id


# Setup commands ------------------------------------------------------------------------------

def test_poll_reads_updates_and_replies(services: Services, fake_telegram: FakeTelegram) -> None:
    parent = Parent()
    fake_telegram.webhook = {"url": "https://old.example/webhooks/telegram"}  # poll must remove it
    start = parent.update("start")
    fake_telegram.push_update(start)

    async def run() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(poll(services, stop, timeout=1))
        deadline = time.monotonic() + 30
        while (not fake_telegram.sent or fake_telegram.methods().count("getUpdates") < 2) \
                and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        return await task

    assert asyncio.run(run()) == 1
    [welcome] = received(fake_telegram, parent)
    assert "Oudertelefoon" in welcome
    methods = fake_telegram.methods()
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert fake_telegram.webhook is None
    offsets = [params.get("offset") for method, params in fake_telegram.calls if method == "getUpdates"]
    assert str(start["update_id"] + 1) in [str(o) for o in offsets]  # confirmed
    [stored] = parent_messages(services)
    assert stored.text == "/start" and stored.provider_message_id == str(start["update_id"])


def test_poll_runs_the_desk_round_like_serve(services: Services, fake_telegram: FakeTelegram) -> None:
    """`telegram poll` runs the same worker round as `serve` and `worker`: the desk's tick puts a
    waiting conversation the queue index lost back in the queue (it used to run no tick at all)."""
    from tests.people import Parent as WebParent

    conversation_id = WebParent(services).wants_volunteer()
    with services.factory() as session:
        assert session.get(Conversation, conversation_id).status is ConversationStatus.queued
    index = services.desk.index
    assert any(conversation_id in index.waiting(q) for q in QueueName)
    index.remove(conversation_id)  # the index lost track of it (a Redis restart, a race)
    assert not any(conversation_id in index.waiting(q) for q in QueueName)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poll(services, stop, timeout=1))
        deadline = time.monotonic() + 30
        while not any(conversation_id in index.waiting(q) for q in QueueName) \
                and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    assert any(conversation_id in index.waiting(q) for q in QueueName)


def _cli_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "TWILIO_")) and k not in {"NLU_BACKEND", "RASA_URL"}}
    env.update({"OUDERTELEFOON_VAR_DIR": str(var_dir), "OUDERTELEFOON_ENV": "test", "LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], check=False, capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO_ROOT)


@pytest.mark.parametrize("command", ["set-webhook", "poll"])
def test_commands_refuse_without_a_token(tmp_path: Path, command: str) -> None:
    result = _cli(_cli_env(tmp_path), "telegram", command)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN is not set" in lines[0]


def test_set_webhook_command(tmp_path: Path, fake_telegram: FakeTelegram) -> None:
    env = _cli_env(tmp_path, TELEGRAM_BOT_TOKEN=fake_telegram.token, TELEGRAM_WEBHOOK_SECRET=SECRET,
                   TELEGRAM_API_BASE=fake_telegram.url, PUBLIC_BASE_URL="https://oudertelefoon.example/")
    result = _cli(env, "telegram", "set-webhook")
    assert result.returncode == 0, result.stderr
    assert fake_telegram.webhook is not None
    assert fake_telegram.webhook["url"] == "https://oudertelefoon.example/webhooks/telegram"
    assert fake_telegram.webhook["secret_token"] == SECRET
    assert fake_telegram.webhook["allowed_updates"] == ["message", "edited_message"]
    assert "https://oudertelefoon.example/webhooks/telegram" in result.stdout
    assert "@oudertelefoon_test_bot" in result.stdout and "message, edited_message" in result.stdout
    output = result.stdout + result.stderr
    assert SECRET not in output and fake_telegram.token.split(":")[1] not in output

    plain = _cli({**env, "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, "telegram", "set-webhook")
    assert plain.returncode == 1 and "https://" in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
    wrong = _cli({**env, "TELEGRAM_BOT_TOKEN": "999:wrong"}, "telegram", "set-webhook")
    assert wrong.returncode == 1 and "refused TELEGRAM_BOT_TOKEN" in wrong.stderr
    assert "999:wrong" not in wrong.stderr + wrong.stdout


def test_poll_command_replies_and_stops_on_ctrl_c(
    tmp_path: Path, settings: Settings, fake_telegram: FakeTelegram, model_cache: Path, embedded_model: object
) -> None:
    var = tmp_path / "cli-var"
    shutil.copytree(model_cache, var / "models")  # the trained model: no training in the child
    parent = Parent()
    fake_telegram.push_update(parent.update("start"))
    env = _cli_env(var, TELEGRAM_BOT_TOKEN=fake_telegram.token, TELEGRAM_API_BASE=fake_telegram.url,
                   DATABASE_URL=settings.effective_database_url, REDIS_URL=ENV_REDIS_URL,
                   LOG_LEVEL="DEBUG")  # even at DEBUG no chat id, text or token is logged
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "telegram", "poll", "--timeout", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    try:
        fake_telegram.wait_for_sent(1, timeout=120)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    assert "Ctrl-C stops" in stdout and "stopped after 1 update(s)" in stdout
    [welcome] = received(fake_telegram, parent)
    assert "Oudertelefoon" in welcome
    output = stdout + stderr
    assert parent.chat_id not in output and "Oudertelefoon. Hier" not in output
    assert fake_telegram.token.split(":")[1] not in output
