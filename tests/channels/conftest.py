"""Fixtures for whole conversations through the channels' real endpoints."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import Outbox, OutboxStatus
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app

T = TypeVar("T")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a thread of its own: safe even while another event loop
    (Playwright's, in the browser tests) runs in this thread."""
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(make()))
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


@pytest.fixture
def services(settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(settings, triage=triage)
    yield built
    run_async(built.close)


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

    return run_async(run)


def outbox_rows(services: Services) -> list[Outbox]:
    with services.factory() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.created_at, Outbox.seq)))


def pending(services: Services) -> int:
    return sum(1 for row in outbox_rows(services) if row.status is OutboxStatus.pending)
