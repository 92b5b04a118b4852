"""The catalogue in SQL (bot.storage.catalogue, bot.catalogue_service) on the configured database
and Redis: migration 0009 up and down, seeding once, the YAML round trip, every process picking
up a change before its next turn, the model's rules as problem keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.catalogue_service import CatalogueRefused, CatalogueService, validate
from bot.config import REPO_ROOT, Settings
from bot.intents.catalogue import load_catalogue
from bot.storage import catalogue as store
from bot.storage import db
from bot.storage.models import CatalogueRecord, CatalogueState
from bot.triage.types import Theme

AANBOD = REPO_ROOT / "data" / "aanbod"


@pytest.mark.empty_database
def test_migration_0009_up_and_down(any_database_url: str) -> None:
    db.upgrade(any_database_url, "0009")
    engine = db.make_engine(any_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"catalogue_entries", "catalogue_state"} <= tables
        columns = {c["name"] for c in inspect(engine).get_columns("catalogue_entries")}
        assert {"id", "data", "published", "checked_at", "checked_by", "updated_at", "updated_by",
                "version", "file", "position"} <= columns
        db.downgrade(any_database_url, "0008")
        assert not {"catalogue_entries", "catalogue_state"} & set(inspect(engine).get_table_names())
        db.upgrade(any_database_url)
        assert {"catalogue_entries", "catalogue_state"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    db.upgrade(settings.effective_database_url)
    engine = db.make_engine(settings.effective_database_url)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(settings.redis_url)
    yield connection
    connection.close()


def service(factory: sessionmaker[Session], client: redis.Redis | None, settings: Settings) -> CatalogueService:
    made = CatalogueService(factory, client, prefix=settings.redis_prefix, directory=AANBOD)
    made.start()
    return made


def test_seeded_once_with_the_yaml_order_best_lists_and_checks(
        factory: sessionmaker[Session], client: redis.Redis, settings: Settings) -> None:
    first = service(factory, client, settings)
    yaml = load_catalogue(AANBOD)
    assert list(first.catalogue.entries) == list(yaml.entries)
    assert dict(first.catalogue.entries) == dict(yaml.entries)  # same model, same values
    assert dict(first.catalogue.best) == dict(yaml.best)
    assert first.catalogue.pick(Theme.money, limit=3)[0].id == "buurtteam_amsterdam"
    # A second process finds it seeded and seeds nothing.
    assert service(factory, client, settings).seed_if_empty() == 0
    with factory() as session:
        assert len(store.records(session)) == len(yaml)
        assert session.get(CatalogueState, store.STATE_ID).version == 1  # type: ignore[union-attr]


def test_a_change_reaches_every_process_before_its_next_turn(
        factory: sessionmaker[Session], client: redis.Redis, settings: Settings) -> None:
    one = service(factory, client, settings)
    two = service(factory, client, settings)
    three = service(factory, None, settings)  # no Redis at all: SQL's version decides
    assert two.refresh() is False  # nothing changed: no reload
    stored = one.stored("geldfit")
    raw = {**stored.data, "contact": {"phone": "0800-1234", "website": "geldfit.nl"}}
    one.edit(None, "geldfit", raw, version=stored.version)
    assert one.catalogue.get("geldfit").contact.phone == "0800-1234"  # type: ignore[union-attr]
    assert two.catalogue.get("geldfit").contact.phone == "0800-8115"  # type: ignore[union-attr]
    assert two.refresh() is True and three.refresh() is True
    for process in (two, three):
        assert process.catalogue.get("geldfit").contact.phone == "0800-1234"  # type: ignore[union-attr]
    assert two.refresh() is False

    # Redis lost the key (a restart without data): SQL is asked, and the key is set again.
    one.set_published(None, "geldfit", False)
    client.delete(two.version_key)
    assert two.refresh() is True and not two.catalogue.get("geldfit").published
    assert int(client.get(two.version_key) or 0) == two.loaded


def test_a_row_the_model_refuses_is_left_out_not_fatal(
        factory: sessionmaker[Session], client: redis.Redis, settings: Settings) -> None:
    one = service(factory, client, settings)
    with factory() as session, session.begin():
        record = session.get(CatalogueRecord, "geldfit")
        assert record is not None
        session.execute(update(CatalogueRecord).where(CatalogueRecord.id == "geldfit")
                        .values(data={**record.data, "contact": {"phone": "bel ons"}}))
        store.bump(session)
    # Written behind the service's back: seen once the Redis key expires (here: at once).
    assert one.refresh() is False
    client.delete(one.version_key)
    assert one.refresh() is True
    assert "geldfit" not in one.catalogue and "fiom" in one.catalogue
    assert [r.flags for r in one.rows() if r.id == "geldfit"] == [("unchecked", "broken")]
    assert "geldfit" not in one.catalogue.best[Theme.money]


def test_the_models_rules_become_problem_keys() -> None:
    base = load_catalogue(AANBOD).get("geldfit").model_dump(mode="json")
    cases = {
        "contact.phone": ({"contact": {"phone": "12"}}, "phone"),
        "contact.website": ({"contact": {"website": "Geldfit NL"}}, "website"),
        "contact": ({"contact": {"free": True}}, "contact_empty"),
        "contact.free_phone": ({"contact": {"free_phone": "0800-0113", "website": "a.nl"}}, "needs_phone"),
        "summary.nl": ({"summary": {"nl": "Voor kwetsbare ouders", "en": "x"}}, "label_word"),
        "summary.en": ({"summary": {"nl": "x", "en": ""}}, "required"),
        "themes": ({"themes": []}, "too_few"),
        "kind": ({"kind": "winkel"}, "choice"),
        "id": ({"id": "Geld Fit"}, "slug"),
        "referral": ({"access": "via_professional"}, "referral_needed"),
        "emergency_only": ({"emergency_only": True, "kind": "programme"}, "emergency_helpline"),
        "replaces": ({"replaces": ["geldfit"]}, "replaces_self"),
    }
    for path, (change, key) in cases.items():
        with pytest.raises(CatalogueRefused) as refused:
            validate({**base, **change})
        assert refused.value.problems.get(path) == key, (path, refused.value.problems)
    assert validate(base).id == "geldfit"


def test_yaml_written_from_sql_loads_back_the_same(factory: sessionmaker[Session], client: redis.Redis,
                                                   settings: Settings, tmp_path: Path) -> None:
    one = service(factory, client, settings)
    one.check(None, "geldfit")
    one.set_published(None, "fiom", False)
    written = one.export(tmp_path / "out")
    assert {p.name for p in written} == {p.name for p in AANBOD.glob("*.yml")}
    again = load_catalogue(tmp_path / "out")
    assert dict(again.entries) == dict(one.catalogue.entries)
    assert dict(again.best) == dict(one.catalogue.best)
    assert again.get("geldfit").verified and not again.get("fiom").published
    assert (tmp_path / "out" / "lines.yml").read_text().startswith("# Aanbod: helplines")
    # Nothing to import from its own export.
    assert one.plan_import(tmp_path / "out").empty
    # A directory with one file: the rest is left as it is, the best lists too.
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "lines.yml").write_text((tmp_path / "out" / "lines.yml").read_text())
    part = one.plan_import(tmp_path / "part")
    assert part.empty and not part.best_changed and "okt_amsterdam" in part.missing
    # A directory with a file the export would not write is refused (it would load twice).
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "extra.yml").write_text("entries: []\n")
    with pytest.raises(CatalogueRefused):
        one.export(tmp_path / "other")
    with factory() as session:
        assert session.scalar(select(CatalogueRecord.published).where(CatalogueRecord.id == "fiom")) is False
