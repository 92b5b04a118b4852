"""Users: adding and (de)activating them in code and with `oudertelefoon users`, and the demo
logins of a development machine, on the configured database and Redis."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import cli
from bot.accounts.sessions import Auth, LoginFailed
from bot.accounts.users import (
    DEMO_USERS,
    UserError,
    add_user,
    demo_password,
    ensure_demo_users,
    generate_password,
    parse_languages,
    set_active,
)
from bot.config import Settings, load_settings
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    Channel,
    Conversation,
    ConversationStatus,
    QueueName,
    Role,
    Shift,
    User,
    UserSession,
    utcnow,
)
from bot.storage.redis import connect as connect_redis

PASSWORD = "een-goed-wachtwoord"


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    db.upgrade(settings.effective_database_url)
    engine = db.make_engine(settings.effective_database_url)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = connect_redis(settings)
    yield client
    client.close()


@pytest.fixture
def auth(settings: Settings, factory: sessionmaker[Session], redis_client: redis.Redis) -> Auth:
    return Auth(settings, factory, redis_client)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`oudertelefoon` in this process, on the test's database, var dir (secret) and Redis."""
    monkeypatch.setenv("OUDERTELEFOON_ENV", "test")
    monkeypatch.setenv("OUDERTELEFOON_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    if settings.redis_url:
        monkeypatch.setenv("REDIS_URL", settings.redis_url)
    return settings


def user_named(factory: sessionmaker[Session], username: str) -> User | None:
    with factory() as session:
        return session.scalar(select(User).where(User.username == username))


# add_user and set_active ------------------------------------------------------------------------


def test_add_user_stores_an_argon2_hash(factory: sessionmaker[Session], auth: Auth) -> None:
    with db.transaction(factory) as session:
        user = add_user(session, username=" Anna ", display_name="  Anna   de Vries ",
                        role=Role.professional, password=PASSWORD, languages=("en", "NL", "ar"))
    stored = user_named(factory, "anna")
    assert stored is not None and stored.id == user.id
    assert stored.display_name == "Anna de Vries" and stored.role is Role.professional
    assert stored.languages == ["nl", "en", "ar"] and stored.active
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    person, _ = auth.login("anna", PASSWORD, "192.0.2.1")
    assert person.languages == ("nl", "en", "ar") and person.display_name == "Anna de Vries"


@pytest.mark.parametrize("changes, message", [
    ({"password": "te-kort"}, "minstens 10 tekens"),
    ({"password": "x" * 1025}, "hoogstens"),
    ({"username": "a"}, "Gebruikersnaam"),
    ({"username": "met spatie"}, "Gebruikersnaam"),
    ({"username": "-streep"}, "Gebruikersnaam"),
    ({"display_name": "   "}, "Weergavenaam"),
    ({"display_name": "x" * 65}, "Weergavenaam"),
    ({"languages": ("nl", "Nederlands")}, "taalcode"),
])
def test_add_user_refuses_bad_input(factory: sessionmaker[Session], changes: dict[str, object],
                                    message: str) -> None:
    fields: dict[str, object] = {"username": "goed", "display_name": "Goed", "role": Role.volunteer,
                                 "password": PASSWORD, "languages": ("nl",)}
    fields.update(changes)
    with pytest.raises(UserError, match=message), db.transaction(factory) as session:
        add_user(session, **fields)  # type: ignore[arg-type]
    assert user_named(factory, "goed") is None


def test_taken_username_is_refused_whatever_the_case(factory: sessionmaker[Session]) -> None:
    with db.transaction(factory) as session:
        add_user(session, username="sanne", display_name="Sanne", role=Role.volunteer,
                 password=PASSWORD)
    with pytest.raises(UserError, match="al in gebruik"), db.transaction(factory) as session:
        add_user(session, username="SANNE", display_name="Andere Sanne", role=Role.volunteer,
                 password=PASSWORD)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_generated_passwords_are_readable_and_random() -> None:
    first, second = generate_password(), generate_password()
    assert re.fullmatch(r"[a-hjkmnp-z2-9]{4}(-[a-hjkmnp-z2-9]{4}){3}", first)
    assert first != second and len(first) >= 10


def test_parse_languages() -> None:
    assert parse_languages("en, ar,,EN") == ["nl", "en", "ar"]
    assert parse_languages("") == ["nl"]
    assert parse_languages(["nl"]) == ["nl"]


def test_deactivating_ends_sessions(factory: sessionmaker[Session], auth: Auth) -> None:
    with db.transaction(factory) as session:
        user = add_user(session, username="piet", display_name="Piet", role=Role.volunteer,
                        password=PASSWORD)
    _, first = auth.login("piet", PASSWORD, "192.0.2.1")
    _, second = auth.login("piet", PASSWORD, "192.0.2.2")
    assert auth.person(first) and auth.person(second)
    with db.transaction(factory) as session:
        set_active(session, user.id, False)
    with factory() as session:
        query = select(UserSession).where(UserSession.user_id == user.id)
        assert session.scalars(query).all() == []
    assert auth.person(first) is None and auth.person(second) is None
    with pytest.raises(LoginFailed):
        auth.login("piet", PASSWORD, "192.0.2.1")
    with db.transaction(factory) as session:
        set_active(session, user.id, True)
    assert auth.login("piet", PASSWORD, "192.0.2.1")[0].username == "piet"
    with pytest.raises(UserError), db.transaction(factory) as session:
        set_active(session, "bestaat-niet", False)


def test_end_sessions(factory: sessionmaker[Session], auth: Auth) -> None:
    with db.transaction(factory) as session:
        user = add_user(session, username="kees", display_name="Kees", role=Role.volunteer,
                        password=PASSWORD)
    _, token = auth.login("kees", PASSWORD, "192.0.2.1")
    auth.end_sessions(user.id)
    assert auth.person(token) is None


# demo users -------------------------------------------------------------------------------------


def demo_settings(settings: Settings, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "OUDERTELEFOON_ENV": "development", "OUDERTELEFOON_VAR_DIR": settings.var_dir,
        "DATABASE_URL": settings.effective_database_url, "REDIS_URL": settings.redis_url,
    }
    values.update(overrides)
    return load_settings(**values)


def test_demo_password_is_stable_per_secret(settings: Settings, tmp_path: Path) -> None:
    first = demo_password(settings, "demo-vrijwilliger")
    assert first == demo_password(settings, "demo-vrijwilliger")
    assert len(first) == 16 and first.isalnum()
    assert first != demo_password(settings, "demo-coordinator")
    elsewhere = load_settings(OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=tmp_path / "ander")
    assert demo_password(elsewhere, "demo-vrijwilliger") != first


def test_demo_users_are_created_once_and_their_logins_work(
        settings: Settings, factory: sessionmaker[Session], redis_client: redis.Redis) -> None:
    dev = demo_settings(settings)
    assert dev.demo_users_enabled  # on by default in development
    logins = ensure_demo_users(dev, factory)
    assert [(u, r) for u, _, r in logins] == [(u, r) for u, _, r in DEMO_USERS]
    assert ensure_demo_users(dev, factory) == logins  # the second start creates nothing new
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 3
        added = session.scalars(select(AuditLog).where(AuditLog.action == "user_added")).all()
        assert len(added) == 3
    auth = Auth(dev, factory, redis_client)
    for username, password, role in logins:
        person, _ = auth.login(username, password, "192.0.2.1")
        assert person.role is role


def test_deactivated_demo_user_stays_off(settings: Settings,
                                         factory: sessionmaker[Session]) -> None:
    dev = demo_settings(settings)
    ensure_demo_users(dev, factory)
    coordinator = user_named(factory, "demo-coordinator")
    assert coordinator is not None
    with db.transaction(factory) as session:
        set_active(session, coordinator.id, False)
    logins = ensure_demo_users(dev, factory)
    assert [u for u, _, _ in logins] == ["demo-vrijwilliger", "demo-hulpverlener"]
    assert not user_named(factory, "demo-coordinator").active  # type: ignore[union-attr]


def test_no_demo_users_in_production_or_when_switched_off(
        settings: Settings, factory: sessionmaker[Session]) -> None:
    production = demo_settings(settings, OUDERTELEFOON_ENV="production",
                               SECRET_KEY="Jq3vN0x_Wm7sTz2LbY8cRk5dHf1gPa4eUo6iVn9wXlE", DEMO_USERS="true",
                               PUBLIC_BASE_URL="https://hulp.oudertelefoon.nl")
    assert not production.demo_users_enabled
    assert ensure_demo_users(production, factory) == []
    off = demo_settings(settings, DEMO_USERS="false")
    assert ensure_demo_users(off, factory) == []
    assert ensure_demo_users(settings, factory) == []  # OUDERTELEFOON_ENV=test: off by default
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_serve_prints_the_demo_logins(cli_env: Settings, factory: sessionmaker[Session],
                                      redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    monkeypatch.setenv("OUDERTELEFOON_ENV", "development")
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))  # no server
    assert cli.main(["serve", "--no-worker", "--port", "8123"]) == 0
    assert served
    err = capsys.readouterr().err.splitlines()
    start = err.index("Demo-logins (alleen voor uitproberen):")
    lines = err[start + 1:start + 5]
    dev = demo_settings(cli_env)
    assert lines[:3] == [
        f"  demo-vrijwilliger / {demo_password(dev, 'demo-vrijwilliger')}  (vrijwilliger)",
        f"  demo-hulpverlener / {demo_password(dev, 'demo-hulpverlener')}  (hulpverlener)",
        f"  demo-coordinator / {demo_password(dev, 'demo-coordinator')}  (coördinator)",
    ]
    assert lines[3] == "  dashboard: http://127.0.0.1:8123/dashboard"  # where this server listens
    auth = Auth(dev, factory, redis_client)
    assert auth.login("demo-vrijwilliger", demo_password(dev, "demo-vrijwilliger"), "192.0.2.1")


def test_serve_prints_no_logins_when_demo_users_are_off(
        cli_env: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], factory: sessionmaker[Session]) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    assert cli.main(["serve", "--no-worker", "--port", "8123"]) == 0  # OUDERTELEFOON_ENV=test
    assert "Demo-logins" not in capsys.readouterr().err
    assert user_named(factory, "demo-vrijwilliger") is None


# `oudertelefoon users` --------------------------------------------------------------------------


def test_cli_add_with_a_generated_password(cli_env: Settings, factory: sessionmaker[Session],
                                           auth: Auth, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["users", "add", "--role", "coordinator", "--username", "Fatima",
                     "--display-name", "Fatima B.", "--languages", "nl,ar"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0] == "added fatima (Fatima B.), coördinator"
    password = out.splitlines()[1].removeprefix("password (shown once): ")
    assert len(password) >= 10
    user = user_named(factory, "fatima")
    assert user is not None and user.role is Role.coordinator and user.languages == ["nl", "ar"]
    assert auth.login("fatima", password, "192.0.2.1")[0].is_coordinator


def test_cli_add_with_password_on_stdin(cli_env: Settings, auth: Auth,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "bram",
                     "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert out == "added bram (bram), vrijwilliger\n"  # the password is not printed
    assert auth.login("bram", PASSWORD, "192.0.2.1")[0].display_name == "bram"


def test_cli_refusals(cli_env: Settings, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("kort\n"))
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "kort",
                     "--password-stdin"]) == 1
    assert "minstens 10 tekens" in capsys.readouterr().err
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "dubbel"]) == 0
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "dubbel"]) == 1
    assert "al in gebruik" in capsys.readouterr().err
    assert cli.main(["users", "deactivate", "niemand"]) == 1
    assert "bestaat niet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["users", "add", "--role", "baas", "--username", "x"])


def test_cli_deactivate_activate_and_list(cli_env: Settings, factory: sessionmaker[Session],
                                          auth: Auth, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["users", "add", "--role", "professional", "--username", "joost",
                     "--display-name", "Joost", "--password-stdin"]) == 0
    _, token = auth.login("joost", PASSWORD, "192.0.2.1")
    assert cli.main(["users", "deactivate", "joost"]) == 0
    assert auth.person(token) is None
    with pytest.raises(LoginFailed):
        auth.login("joost", PASSWORD, "192.0.2.1")
    capsys.readouterr()
    assert cli.main(["users", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["username", "name", "role", "languages", "active", "last",
                                  "login"]
    assert listing[1].split()[:5] == ["joost", "Joost", "hulpverlener", "nl", "no"]
    assert cli.main(["users", "activate", "joost"]) == 0
    assert auth.login("joost", PASSWORD, "192.0.2.1")[0].username == "joost"
    with factory() as session:
        actions = [row.action for row in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions.count("user_deactivated") == 1 and actions.count("user_activated") == 1


def test_cli_deactivate_ends_the_shift_and_returns_claims(
        cli_env: Settings, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "indienst",
                     "--password-stdin"]) == 0
    user = user_named(factory, "indienst")
    assert user is not None
    now = utcnow()
    with db.transaction(factory) as session:
        session.add(Shift(user_id=user.id, queue=QueueName.volunteer, started_at=now,
                          last_seen_at=now))
        conversation = Conversation(channel=Channel.web, pseudonym="p-indienst",
                                    status=ConversationStatus.claimed, queue=QueueName.volunteer,
                                    priority=3, queued_at=now, claimed_by=user.id, claimed_at=now)
        session.add(conversation)
    capsys.readouterr()
    assert cli.main(["users", "deactivate", "indienst"]) == 0
    assert "1 claimed conversation(s) back in the queue" in capsys.readouterr().out
    with factory() as session:
        shift = session.scalar(select(Shift).where(Shift.user_id == user.id))
        assert shift is not None and shift.ended_at is not None
        back = session.get(Conversation, conversation.id)
        assert back is not None and back.status is ConversationStatus.queued
        assert back.claimed_by is None


# A person's own number for calls -------------------------------------------------------------


def test_normalize_and_set_phone(settings: Settings, factory: sessionmaker[Session],
                                 caplog: pytest.LogCaptureFixture) -> None:
    from bot.accounts.users import normalize_phone, phone_hint, set_phone
    from bot.storage.crypto import AddressVault

    assert normalize_phone("+31 6 1234-5678") == "+31612345678"
    assert normalize_phone("0031612345678") == "+31612345678"
    for bad in ("0612345678", "+0612345678", "+31 6 abc", "", "+1234"):
        with pytest.raises(UserError, match="landcode") as refused:
            normalize_phone(bad)
        assert bad.strip() == "" or bad not in str(refused.value)
    vault = AddressVault(settings.secret)
    caplog.set_level("DEBUG")
    with db.transaction(factory) as session:
        user = add_user(session, username="beller", display_name="B", role=Role.volunteer,
                        password=PASSWORD)
        assert phone_hint(user, vault) is None
        set_phone(session, user.id, "+31 6 1234 5678", vault)
        assert user.phone_encrypted is not None and b"5678" not in user.phone_encrypted
        assert vault.decrypt(user.phone_encrypted) == "+31612345678"
        assert phone_hint(user, vault) == "ingesteld (eindigt op 78)"
        with pytest.raises(UserError):
            set_phone(session, user.id, "06-12345678", vault)
        assert vault.decrypt(user.phone_encrypted) == "+31612345678"  # unchanged
        set_phone(session, user.id, None, vault)
        assert user.phone_encrypted is None
        with pytest.raises(UserError, match="bestaat niet"):
            set_phone(session, "niemand", "+31612345678", vault)
    assert not any("5678" in r.getMessage() for r in caplog.records)


def test_cli_phone_on_add_set_and_clear(cli_env: Settings, factory: sessionmaker[Session],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.storage.crypto import AddressVault

    vault = AddressVault(cli_env.secret)
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "tel",
                     "--phone", "+31612345678"]) == 0
    out = capsys.readouterr().out
    assert "phone number for calls set" in out and "+3161234" not in out
    user = user_named(factory, "tel")
    assert user is not None and user.phone_encrypted is not None
    assert vault.decrypt(user.phone_encrypted) == "+31612345678"
    # A bad number refuses the whole add.
    assert cli.main(["users", "add", "--role", "volunteer", "--username", "fout",
                     "--phone", "0612345678"]) == 1
    assert "landcode" in capsys.readouterr().err
    assert user_named(factory, "fout") is None

    assert cli.main(["users", "phone", "tel", "+31 6 9876 5432"]) == 0
    out = capsys.readouterr().out
    assert out == "tel: phone number for calls ingesteld (eindigt op 32)\n"
    user = user_named(factory, "tel")
    assert user is not None and vault.decrypt(user.phone_encrypted or b"") == "+31698765432"
    assert cli.main(["users", "phone", "tel", "--clear"]) == 0
    assert capsys.readouterr().out == "tel: phone number for calls cleared\n"
    user = user_named(factory, "tel")
    assert user is not None and user.phone_encrypted is None
    assert cli.main(["users", "phone", "tel"]) == 1  # neither a number nor --clear
    assert cli.main(["users", "phone", "tel", "+31612345678", "--clear"]) == 1
    assert cli.main(["users", "phone", "niemand", "+31612345678"]) == 1
    assert "bestaat niet" in capsys.readouterr().err
    with factory() as session:
        actions = [row.action for row in session.scalars(select(AuditLog).order_by(AuditLog.id))]
        details = [row.detail for row in session.scalars(select(AuditLog))]
    assert actions.count("user_phone_set") == 2 and actions.count("user_phone_cleared") == 1
    assert "5432" not in repr(details) and "5678" not in repr(details)
