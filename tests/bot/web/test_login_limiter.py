"""The login limiter counts first and checks after, in one step on Redis (issue 12, part B): of
40 tries sent at once only the allowed number reach the password check. A NUL in a login name
is a plain failed login (PostgreSQL refuses a NUL in text: it was a 500), and nothing a person
typed reaches the logs."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from bot.accounts import sessions as sessions_module
from bot.accounts.sessions import (
    MAX_FAILURES_PER_IP,
    MAX_FAILURES_PER_USER_IP,
    LoginFailed,
    LoginRateLimited,
)
from bot.storage.models import Role
from bot.web.app import Services
from tests.bot.web.test_auth import add, app, auth_of, client, login, services  # noqa: F401

TRIES = 40


def counting_verify(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the password checks (each costs an argon2 verification)."""
    calls: list[int] = []
    lock = threading.Lock()
    real = sessions_module.verify_password

    def verify(password_hash: str, password: str) -> bool:
        with lock:
            calls.append(1)
        return real(password_hash, password)

    monkeypatch.setattr(sessions_module, "verify_password", verify)
    return calls


def at_once(count: int, attempt: Callable[[int], None]) -> dict[str, int]:
    barrier = threading.Barrier(count)
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def run(n: int) -> None:
        barrier.wait()
        try:
            attempt(n)
            name = "ok"
        except (LoginFailed, LoginRateLimited) as error:
            name = type(error).__name__
        with lock:
            outcomes[name] = outcomes.get(name, 0) + 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_forty_tries_at_once_for_one_name_evaluate_five(services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    add(services, "doelwit", Role.volunteer)
    calls = counting_verify(monkeypatch)
    the_auth = auth_of(services)
    outcomes = at_once(TRIES, lambda n: the_auth.login("doelwit", f"gok-{n}-gok-gok", "192.0.2.50"))
    assert len(calls) == MAX_FAILURES_PER_USER_IP
    assert outcomes == {"LoginFailed": MAX_FAILURES_PER_USER_IP,
                        "LoginRateLimited": TRIES - MAX_FAILURES_PER_USER_IP}


def test_forty_tries_at_once_over_names_evaluate_thirty(services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_verify(monkeypatch)
    the_auth = auth_of(services)
    outcomes = at_once(TRIES, lambda n: the_auth.login(f"naam-{n}", "gok-gok-gok", "192.0.2.51"))
    assert len(calls) == MAX_FAILURES_PER_IP
    assert outcomes == {"LoginFailed": MAX_FAILURES_PER_IP,
                        "LoginRateLimited": TRIES - MAX_FAILURES_PER_IP}


def test_success_gives_the_address_its_attempt_back(services: Services) -> None:
    add(services, "vaak-binnen", Role.volunteer)
    the_auth = auth_of(services)
    for _ in range(MAX_FAILURES_PER_IP + 5):  # more successes than the address's limit
        the_auth.login("vaak-binnen", "een-goed-wachtwoord", "192.0.2.52")
    keys = the_auth._limit_keys("vaak-binnen", "192.0.2.52")
    assert int(services.redis.get(keys[1]) or 0) == 0
    assert services.redis.ttl(keys[1]) > 0 or not services.redis.exists(keys[1])


@pytest.mark.parametrize("name", ["beheer\x00der", "\x00", "ik\x00' OR 1=1 --"])
def test_a_nul_in_the_login_name_is_a_failed_login(services: Services, client: TestClient,
                                                   caplog: pytest.LogCaptureFixture,
                                                   name: str) -> None:
    add(services, "beheerder", Role.coordinator)
    with caplog.at_level(logging.DEBUG):
        response = login(client, name, "mijn-geheime-gok")
    assert response.status_code == 401
    logged = "\n".join(record.getMessage() + "".join(
        traceback.format_exception(*record.exc_info) if record.exc_info else [])
        for record in caplog.records)
    for typed in ("beheer", "mijn-geheime-gok", "OR 1=1"):
        assert typed not in logged
    assert not any(record.levelno >= logging.ERROR for record in caplog.records)
