"""Fixtures for whole conversations through the channels' real endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Outbox, OutboxStatus
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app


@pytest.fixture
def services(settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(settings, triage=triage)
    yield built
    asyncio.run(built.close())


@pytest.fixture
def client(settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, services)) as test_client:
        yield test_client


def deliver(services: Services) -> int:
    """One worker round, as `oudertelefoon worker` does it."""
    async def run() -> int:
        worker = services.worker()
        total = 0
        while sent := await worker.run_once():
            total += sent
        return total

    return asyncio.run(run())


def outbox_rows(services: Services) -> list[Outbox]:
    with services.factory() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.created_at, Outbox.seq)))


def pending(services: Services) -> int:
    return sum(1 for row in outbox_rows(services) if row.status is OutboxStatus.pending)
