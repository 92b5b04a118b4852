"""The web service on the configured database and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.config import Settings
from bot.triage.engine import Triage
from bot.web.app import MAX_TEXT_CHARS, build_services, create_app


@pytest.fixture
def client(settings: Settings, triage: Triage) -> Iterator[TestClient]:
    services = build_services(settings, triage=triage)
    with TestClient(create_app(settings, services)) as test_client:
        yield test_client


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok" and response.json()["redis"] == "ok"


def test_triage_api(client: TestClient) -> None:
    response = client.post("/api/triage", json={"text": "waar kan ik een stadspas aanvragen"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "text", "theme", "intent", "confidence", "risk", "route", "language", "backend", "danger"
    ]
    assert body["theme"] == "money" and body["danger"] == "none"


@pytest.mark.parametrize(
    "payload",
    [{"text": ""}, {"text": "   "}, {}, {"text": 5}, {"text": "x" * (MAX_TEXT_CHARS + 1)}],
)
def test_bad_requests_get_a_clear_error(client: TestClient, payload: object) -> None:
    response = client.post("/api/triage", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_malformed_json(client: TestClient) -> None:
    response = client.post("/api/triage", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_build_services_migrates_the_database(settings: Settings, triage: Triage) -> None:
    services = build_services(settings, triage=triage)
    try:
        with services.engine.connect() as connection:
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        from alembic.script import ScriptDirectory

        from bot.storage import db

        head = ScriptDirectory.from_config(db.alembic_config(settings.effective_database_url)).get_current_head()
        assert head is not None and version == head
    finally:
        services.engine.dispose()
