"""Login, sessions, roles and CSRF of the dashboard, through the real endpoints on the configured
database and Redis."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.accounts.passwords import hash_password, needs_rehash, verify_password
from bot.accounts.sessions import MSG_FAILED, Auth, LoginFailed, LoginRateLimited
from bot.accounts.users import add_user, set_active
from bot.config import Settings
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    QueueName,
    Role,
    Shift,
    User,
    UserSession,
    aware,
    utcnow,
)
from bot.triage.engine import Triage
from bot.web import auth
from bot.web.app import WEB_DIR, Services, build_services, create_app
from bot.web.auth import COOKIE, safe_next
from handoff.desk import Desk
from tests.channels.conftest import run_async

PASSWORD = "een-goed-wachtwoord"


def set_auth(services: Services, the_auth: Auth) -> None:
    services.auth = the_auth  # type: ignore[attr-defined,unused-ignore]


def auth_of(services: Services) -> Auth:
    found: Auth = services.auth  # type: ignore[attr-defined,unused-ignore]
    return found


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    assert user is not None
    return user


@pytest.fixture
def services(settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(settings, triage=triage)
    if getattr(built, "auth", None) is None:  # until the lead wires Auth into build_services
        set_auth(built, Auth(settings, built.factory, built.redis))
    if getattr(built, "desk", None) is None:  # likewise the desk
        desk = Desk(settings, built.factory, built.redis, built.texts, built.catalogue)
        built.desk = desk  # type: ignore[attr-defined,unused-ignore]
    yield built
    run_async(built.close)


def make_app(settings: Settings, services: Services) -> FastAPI:
    app = create_app(settings, services)
    if not any(getattr(route, "path", None) == "/login" for route in app.routes):
        app.include_router(auth.build_router(Jinja2Templates(directory=WEB_DIR / "templates")))
        auth.install(app)
    return app


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return make_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def other(app: FastAPI) -> Iterator[TestClient]:
    """A second browser."""
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def add(services: Services, username: str, role: Role, password: str = PASSWORD) -> str:
    with db.transaction(services.factory) as session:
        return add_user(session, username=username, display_name=username.title(), role=role,
                        password=password).id


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def alert(html: str) -> str:
    match = re.search(r'role="alert">([^<]*)<', html)
    assert match, html
    return match.group(1).strip()


def login(client: TestClient, username: str, password: str = PASSWORD, *,
          next: str | None = None) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200
    data = {"username": username, "password": password, "csrf_token": form_token(page.text)}
    if next is not None:
        data["next"] = next
    response: httpx.Response = client.post("/login", data=data)
    return response


def session_csrf(client: TestClient) -> str:
    """The logged-in person's CSRF token, as the user admin page carries it."""
    page = client.get("/dashboard/users")
    assert page.status_code == 200, page.text
    return form_token(page.text)


def sessions_of(services: Services, user_id: str) -> list[UserSession]:
    with services.factory() as session:
        return list(session.scalars(select(UserSession).where(UserSession.user_id == user_id)))


def audit_rows(services: Services, action: str) -> list[AuditLog]:
    with services.factory() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


# passwords --------------------------------------------------------------------------------------


def test_argon2id_hash_verify_and_rehash(services: Services, client: TestClient) -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second  # salted
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + "x")
    assert not verify_password("geen hash", PASSWORD)
    assert not needs_rehash(first)

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak) and verify_password(weak, PASSWORD)
    user_id = add(services, "oude-hash", Role.volunteer)
    with db.transaction(services.factory) as session:
        get_user(session, user_id).password_hash = weak
    assert login(client, "oude-hash").status_code == 303
    with services.factory() as session:
        upgraded = get_user(session, user_id).password_hash
    assert upgraded != weak and not needs_rehash(upgraded) and verify_password(upgraded, PASSWORD)


# logging in -------------------------------------------------------------------------------------


def test_login_page_is_dutch_and_accessible(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="nl">' in html and "Inloggen" in html
    assert '<label for="username">' in html and '<label for="password">' in html
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html
    assert 'role="alert"' not in html.split("<main", 1)[1]
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("ot_login_csrf=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()


def test_login_sets_an_httponly_strict_session_cookie(services: Services,
                                                      client: TestClient) -> None:
    user_id = add(services, "sanne", Role.volunteer)
    response = login(client, "Sanne ")  # usernames are case- and space-insensitive
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{COOKIE}="))
    parts = [p.strip().lower() for p in session_cookie.split(";")]
    assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
    assert f"max-age={services.settings.session_hours * 3600}" in parts
    assert "secure" not in parts  # http in tests; https PUBLIC_BASE_URL sets it (next test)
    token = session_cookie.split(";")[0].split("=", 1)[1]
    # The database holds only the token's SHA-256.
    rows = sessions_of(services, user_id)
    assert [row.id for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in {rows[0].id, rows[0].csrf_token}
    with services.factory() as session:
        assert get_user(session, user_id).last_login_at is not None
    logins = audit_rows(services, "login")
    assert [(row.user_id, sorted(row.detail or {})) for row in logins] == [(user_id, ["ip"])]
    # Logged in: the login page sends you on.
    again = client.get("/login")
    assert again.status_code == 303 and again.headers["location"] == "/dashboard"


def test_cookie_is_secure_over_https(settings: Settings, services: Services, app: FastAPI) -> None:
    https = settings.model_copy(update={"public_base_url": "https://oudertelefoon.example"})
    assert https.secure_cookies
    set_auth(services, Auth(https, services.factory, services.redis))
    add(services, "veilig", Role.volunteer)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        response = login(client, "veilig")
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{COOKIE}="))
    assert "secure" in [p.strip().lower() for p in session_cookie.split(";")]


def test_wrong_password_and_unknown_user_get_the_same_answer(services: Services,
                                                             client: TestClient) -> None:
    add(services, "mark", Role.professional)
    wrong = login(client, "mark", "niet-het-wachtwoord")
    unknown = login(client, "niemand", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert alert(response.text) == MSG_FAILED
        assert COOKIE not in response.headers.get("set-cookie", "")
    failed = audit_rows(services, "login_failed")
    assert len(failed) == 2
    for row in failed:  # nothing but the action and a hash of the address
        assert row.user_id is None and list(row.detail or {}) == ["ip"]
        assert "mark" not in str(row.detail) and "niemand" not in str(row.detail)


def test_inactive_user_cannot_log_in(services: Services, client: TestClient) -> None:
    user_id = add(services, "weg", Role.volunteer)
    with db.transaction(services.factory) as session:
        set_active(session, user_id, False)
    response = login(client, "weg")
    assert response.status_code == 401 and alert(response.text) == MSG_FAILED


def test_rate_limit_after_five_failures_refuses_even_the_right_password(
        services: Services, client: TestClient) -> None:
    add(services, "fatima", Role.coordinator)
    for _ in range(5):
        assert login(client, "fatima", "fout-fout-fout").status_code == 401
    limited = login(client, "fatima", PASSWORD)
    assert limited.status_code == 429
    assert "Te veel mislukte pogingen" in alert(limited.text)
    assert limited.headers["retry-after"] == "900"
    assert COOKIE not in limited.headers.get("set-cookie", "")
    # No plain username (or address) in Redis.
    pattern = f"{services.settings.redis_prefix}:login:*"
    keys = [k.decode() for k in services.redis.scan_iter(match=pattern, count=1000)]
    assert keys and not any("fatima" in key or "testclient" in key for key in keys)
    # Another address is not blocked by this one's failures.
    person, _ = auth_of(services).login("fatima", PASSWORD, "192.0.2.7")
    assert person.username == "fatima"


def test_success_clears_the_username_counter(services: Services) -> None:
    add(services, "vergeetachtig", Role.volunteer)
    the_auth = auth_of(services)
    for _round in range(2):
        for _ in range(4):
            with pytest.raises(LoginFailed):
                the_auth.login("vergeetachtig", "verkeerd-verkeerd", "198.51.100.1")
        the_auth.login("vergeetachtig", PASSWORD, "198.51.100.1")


def test_rate_limit_per_address_over_usernames(services: Services) -> None:
    add(services, "echt", Role.volunteer)
    the_auth = auth_of(services)
    for n in range(30):
        with pytest.raises(LoginFailed):
            the_auth.login(f"gok-{n}", "verkeerd-verkeerd", "203.0.113.9")
    with pytest.raises(LoginRateLimited):
        the_auth.login("echt", PASSWORD, "203.0.113.9")
    the_auth.login("echt", PASSWORD, "203.0.113.10")


def test_login_works_when_redis_is_down(settings: Settings, services: Services,
                                        caplog: pytest.LogCaptureFixture) -> None:
    add(services, "zonder-redis", Role.volunteer)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    try:
        the_auth = Auth(settings, services.factory, down)
        with caplog.at_level(logging.WARNING, logger="bot.web.auth"):
            with pytest.raises(LoginFailed):
                the_auth.login("zonder-redis", "verkeerd-verkeerd", "192.0.2.1")
            person, token = the_auth.login("zonder-redis", PASSWORD, "192.0.2.1")
        assert the_auth.person(token) == person
        assert any("argon2" in record.getMessage() for record in caplog.records)
    finally:
        down.close()


def test_no_password_token_or_username_in_logs(services: Services, client: TestClient,
                                               caplog: pytest.LogCaptureFixture) -> None:
    add(services, "geheimzinnig", Role.volunteer)
    with caplog.at_level(logging.DEBUG):
        login(client, "onbekend-iemand", "mijn-geheime-gok")
        response = login(client, "geheimzinnig")
    token = client.cookies.get(COOKIE)
    assert response.status_code == 303 and token
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (PASSWORD, "mijn-geheime-gok", token, "onbekend-iemand", "testclient"):
        assert secret not in logged


def test_login_form_needs_its_csrf_token(services: Services, client: TestClient,
                                         other: TestClient) -> None:
    add(services, "csrf-login", Role.volunteer)
    data = {"username": "csrf-login", "password": PASSWORD}
    assert client.post("/login", data=data).status_code == 403  # no cookie, no token
    client.get("/login")
    assert client.post("/login", data={**data, "csrf_token": "x" * 43}).status_code == 403
    # A token from another browser does not fit this browser's cookie.
    foreign = form_token(other.get("/login").text)
    refused = client.post("/login", data={**data, "csrf_token": foreign})
    assert refused.status_code == 403 and "verlopen" in alert(refused.text)
    assert COOKIE not in client.cookies


@pytest.mark.parametrize("target, expected", [
    ("/dashboard/gesprek/abc?x=1", "/dashboard/gesprek/abc?x=1"),
    ("/dashboard", "/dashboard"),
    ("https://evil.example/dashboard", "/dashboard"),
    ("//evil.example/dashboard", "/dashboard"),
    ("/\\evil.example", "/dashboard"),
    ("/dashboard\\..\\x", "/dashboard"),
    ("/chat", "/dashboard"),
    ("/dashboardx", "/dashboard"),
    ("/dashboard/../chat", "/dashboard"),
    ("javascript:alert(1)", "/dashboard"),
    ("/dashboard/\r\nSet-Cookie:x", "/dashboard"),
    ("", "/dashboard"),
])
def test_next_only_to_local_dashboard_paths(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_login_goes_to_next(services: Services, client: TestClient, other: TestClient) -> None:
    add(services, "volgende", Role.volunteer)
    response = login(client, "volgende", next="/dashboard/gesprek/abc")
    assert response.headers["location"] == "/dashboard/gesprek/abc"
    evil = login(other, "volgende", next="https://evil.example/")
    assert evil.headers["location"] == "/dashboard"


# sessions ---------------------------------------------------------------------------------------


def test_expired_session_is_refused(services: Services, client: TestClient) -> None:
    user_id = add(services, "verlopen", Role.coordinator)
    login(client, "verlopen")
    assert client.get("/dashboard/users").status_code == 200
    with db.transaction(services.factory) as session:
        for row in session.scalars(select(UserSession).where(UserSession.user_id == user_id)):
            row.expires_at = utcnow() - timedelta(seconds=1)
    response = client.get("/dashboard/users")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fdashboard%2Fusers"
    assert sessions_of(services, user_id) == []


def test_session_expiry_slides_with_use(services: Services, client: TestClient) -> None:
    user_id = add(services, "glijdend", Role.coordinator)
    login(client, "glijdend")
    soon = utcnow() + timedelta(minutes=1)
    with db.transaction(services.factory) as session:
        for row in session.scalars(select(UserSession).where(UserSession.user_id == user_id)):
            row.expires_at = soon
            row.last_seen_at = utcnow() - timedelta(minutes=5)
    response = client.get("/dashboard/users")
    assert response.status_code == 200
    [row] = sessions_of(services, user_id)
    expires = aware(row.expires_at)
    assert expires and expires > utcnow() + timedelta(hours=services.settings.session_hours - 1)
    refreshed = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
    assert refreshed and "max-age=43200" in refreshed[0].lower()


def test_deactivated_users_session_dies(services: Services, client: TestClient) -> None:
    user_id = add(services, "stopt", Role.coordinator)
    login(client, "stopt")
    token = client.cookies.get(COOKIE)
    assert auth_of(services).person(token) is not None
    # Even when only the flag changes (no session cleanup), the session is refused.
    with db.transaction(services.factory) as session:
        get_user(session, user_id).active = False
    assert auth_of(services).person(token) is None
    assert client.get("/dashboard/users").status_code == 303
    assert sessions_of(services, user_id) == []


def test_logout_needs_csrf(services: Services, client: TestClient) -> None:
    user_id = add(services, "uitlogger", Role.coordinator)
    login(client, "uitlogger")
    csrf = session_csrf(client)
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": "verkeerd"}).status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": "verkeerd"}).status_code == 403
    assert len(sessions_of(services, user_id)) == 1  # still logged in
    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert sessions_of(services, user_id) == []
    assert COOKIE not in client.cookies
    assert [row.user_id for row in audit_rows(services, "logout")] == [user_id]
    assert client.get("/dashboard/users").status_code == 303


def test_logout_with_the_csrf_header(services: Services, client: TestClient) -> None:
    user_id = add(services, "fetcher", Role.coordinator)
    login(client, "fetcher")
    csrf = session_csrf(client)
    response = client.post("/logout", headers={"X-CSRF-Token": csrf, "X-Requested-With": "fetch"})
    assert response.status_code == 303 and sessions_of(services, user_id) == []


def test_anonymous_requests(client: TestClient) -> None:
    page = client.get("/dashboard/users")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert client.get("/dashboard/users", headers={"X-Requested-With": "fetch"}).status_code == 401
    stream = client.get("/dashboard/users", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 401
    assert client.post("/dashboard/users", data={"username": "x"}).status_code == 401
    assert client.post("/dashboard/users/abc/deactivate").status_code == 401
    assert client.post("/logout").status_code == 401


# user admin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.volunteer, Role.professional])
def test_user_admin_is_for_coordinators_only(services: Services, client: TestClient,
                                             role: Role) -> None:
    add(services, "baas", Role.coordinator)
    target = add(services, "collega", Role.volunteer)
    add(services, "geen-baas", role)
    login(client, "geen-baas")
    page = client.get("/dashboard/users")
    assert page.status_code == 403 and "Geen toegang" in page.text
    # Even with the right CSRF token (from the top bar of any page), the forms are refused.
    csrf = form_token(page.text)
    assert client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "nieuw", "display_name": "Nieuw", "role": "coordinator",
    }).status_code == 403
    assert client.post(f"/dashboard/users/{target}/deactivate",
                       data={"csrf_token": csrf}).status_code == 403
    with services.factory() as session:
        assert session.scalar(select(User).where(User.username == "nieuw")) is None
        assert get_user(session, target).active


def test_user_admin_forms_need_csrf(services: Services, client: TestClient) -> None:
    add(services, "coord", Role.coordinator)
    target = add(services, "vrijw", Role.volunteer)
    login(client, "coord")
    form = {"username": "zonder-csrf", "display_name": "Z", "role": "volunteer"}
    assert client.post("/dashboard/users", data=form).status_code == 403
    assert client.post("/dashboard/users", data={**form, "csrf_token": "nee"}).status_code == 403
    assert client.post(f"/dashboard/users/{target}/deactivate").status_code == 403
    assert client.post(f"/dashboard/users/{target}/deactivate",
                       data={"csrf_token": "nee"}).status_code == 403
    with services.factory() as session:
        assert session.scalar(select(User).where(User.username == "zonder-csrf")) is None
        assert get_user(session, target).active


def test_add_user_on_the_page(services: Services, client: TestClient, other: TestClient) -> None:
    coordinator = add(services, "coordinator", Role.coordinator)
    login(client, "coordinator")
    csrf = session_csrf(client)
    # A generated password, shown once.
    added = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "Nieuwe", "display_name": "Nina", "role": "volunteer",
        "languages": "nl, en", "password": "",
    })
    assert added.status_code == 200, added.text
    assert added.headers["cache-control"] == "no-store"
    shown = re.search(r'<code class="secret">([^<]+)</code>', added.text)
    assert shown is not None
    password = shown.group(1)
    assert len(password) >= 10
    assert password not in client.get("/dashboard/users").text
    with services.factory() as session:
        user = session.scalar(select(User).where(User.username == "nieuwe"))
        assert user is not None and user.role is Role.volunteer and user.display_name == "Nina"
        assert user.languages == ["nl", "en"] and user.password_hash.startswith("$argon2id$")
    assert login(other, "nieuwe", password).status_code == 303
    [row] = audit_rows(services, "user_added")
    assert row.user_id == coordinator and row.detail == {"user": user.id, "role": "volunteer"}
    # A chosen password is not shown.
    chosen = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "gekozen", "display_name": "Gerrit", "role": "professional",
        "password": "zelf-gekozen-wachtwoord",
    })
    assert chosen.status_code == 200 and 'class="secret"' not in chosen.text
    # Refusals, with the form filled in again.
    short = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "kort", "display_name": "K", "role": "volunteer",
        "password": "kort",
    })
    assert short.status_code == 400 and "minstens 10 tekens" in alert(short.text)
    assert 'value="kort"' in short.text
    taken = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "NIEUWE", "display_name": "X", "role": "volunteer",
    })
    assert taken.status_code == 400 and "al in gebruik" in alert(taken.text)
    no_role = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "rolloos", "display_name": "X", "role": "baas",
    })
    assert no_role.status_code == 400


def test_deactivate_ends_sessions_and_activate_restores(services: Services, client: TestClient,
                                                        other: TestClient) -> None:
    coordinator = add(services, "leiding", Role.coordinator)
    volunteer = add(services, "ingelogd", Role.volunteer)
    login(client, "leiding")
    login(other, "ingelogd")
    assert len(sessions_of(services, volunteer)) == 1
    with db.transaction(services.factory) as session:
        session.add(Shift(user_id=volunteer, queue=QueueName.volunteer))
    csrf = session_csrf(client)
    response = client.post(f"/dashboard/users/{volunteer}/deactivate", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/users?gedaan=gedeactiveerd"
    assert sessions_of(services, volunteer) == []
    with services.factory() as session:  # the desk ended their shift
        assert session.scalar(select(Shift.ended_at).where(Shift.user_id == volunteer))
    assert other.get("/dashboard/users").status_code == 303  # back to the login page
    assert login(other, "ingelogd").status_code == 401
    [row] = audit_rows(services, "user_deactivated")
    assert row.user_id == coordinator and row.detail == {"user": volunteer}
    page = client.get(response.headers["location"])
    assert "gedeactiveerd" in page.text
    # Not yourself.
    itself = client.post(f"/dashboard/users/{coordinator}/deactivate", data={"csrf_token": csrf})
    assert itself.status_code == 400 and len(sessions_of(services, coordinator)) == 1
    assert client.post("/dashboard/users/bestaat-niet/deactivate",
                       data={"csrf_token": csrf}).status_code == 404
    # Back again.
    assert client.post(f"/dashboard/users/{volunteer}/activate",
                       data={"csrf_token": csrf}).status_code == 303
    assert login(other, "ingelogd").status_code == 303


def test_users_page_lists_users(services: Services, client: TestClient) -> None:
    add(services, "lijst-coord", Role.coordinator)
    add(services, "lijst-hulp", Role.professional)
    login(client, "lijst-coord")
    html = client.get("/dashboard/users").text
    assert "lijst-hulp" in html and "hulpverlener" in html and "coördinator" in html
    assert "nooit" in html  # lijst-hulp never logged in
    assert '<label for="new-username">' in html and 'name="csrf_token"' in html
    assert PASSWORD not in html and "$argon2" not in html


def test_phone_number_for_calls_on_the_users_page(services: Services, client: TestClient) -> None:
    coordinator = add(services, "tel-coord", Role.coordinator)
    volunteer = add(services, "tel-vrijw", Role.volunteer)
    login(client, "tel-coord")
    csrf = session_csrf(client)
    assert "niet ingesteld" in client.get("/dashboard/users").text
    response = client.post(f"/dashboard/users/{volunteer}/phone",
                           data={"csrf_token": csrf, "phone": "+31 6 1234 5612"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/users?gedaan=telefoon"
    with services.factory() as session:
        user = session.get(User, volunteer)
        assert user is not None and user.phone_encrypted is not None
        assert services.vault.decrypt(user.phone_encrypted) == "+31612345612"
    page = client.get(response.headers["location"]).text
    assert "ingesteld (eindigt op 12)" in page and "opgeslagen" in page
    for shown in ("612345612", "1234 5612", "2345612"):
        assert shown not in page  # never shown back in full
    [row] = audit_rows(services, "user_phone_set")
    assert row.user_id == coordinator and row.detail == {"user": volunteer}
    # A bad number: refused, not stored, not shown back.
    bad = client.post(f"/dashboard/users/{volunteer}/phone",
                      data={"csrf_token": csrf, "phone": "0687654321"})
    assert bad.status_code == 400 and "landcode" in alert(bad.text)
    assert "0687654321" not in bad.text
    assert client.post(f"/dashboard/users/{volunteer}/phone",
                       data={"csrf_token": csrf, "phone": " "}).status_code == 400
    # No CSRF token: refused.
    assert client.post(f"/dashboard/users/{volunteer}/phone",
                       data={"phone": "+31612345678"}).status_code == 403
    # Cleared.
    cleared = client.post(f"/dashboard/users/{volunteer}/phone",
                          data={"csrf_token": csrf, "clear": "1"})
    assert cleared.status_code == 303
    with services.factory() as session:
        user = session.get(User, volunteer)
        assert user is not None and user.phone_encrypted is None
    assert len(audit_rows(services, "user_phone_cleared")) == 1
    # Set when adding a user.
    added = client.post("/dashboard/users", data={
        "csrf_token": csrf, "username": "met-tel", "display_name": "T", "role": "professional",
        "phone": "+31699999977"})
    assert added.status_code == 200, added.text
    assert "ingesteld (eindigt op 77)" in added.text and "+31699999977" not in added.text


def test_only_coordinators_set_phone_numbers(services: Services, client: TestClient) -> None:
    add(services, "gewoon", Role.volunteer)
    other = add(services, "ander", Role.volunteer)
    login(client, "gewoon")
    response = client.post(f"/dashboard/users/{other}/phone",
                           data={"phone": "+31612345678", "csrf_token": "x"})
    assert response.status_code in (403, 303)
    with services.factory() as session:
        user = session.get(User, other)
        assert user is not None and user.phone_encrypted is None
