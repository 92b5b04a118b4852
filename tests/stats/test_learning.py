"""The learning loop (review, export as Rasa NLU YAML) and the catalogue's use, on the configured
database (SQLite, or PostgreSQL when DATABASE_URL is set)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot import cli
from bot.accounts.users import add_user
from bot.intents.catalogue import Catalogue, load_catalogue
from bot.storage import db
from bot.storage.models import Channel, ContactFact, Correction, Role, utcnow
from bot.triage.nludata import load, load_training
from stats import learning

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PHONE = re.compile(r"\d[\d\s-]{7,}\d")


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    try:
        yield db.session_factory(engine)
    finally:
        engine.dispose()


def add_correction(factory: sessionmaker[Session], predicted: list[str], corrected: list[str],
                   texts: list[str], *, accepted: bool | None = None,
                   reviewed_at: datetime | None = None, created_at: datetime = NOW) -> str:
    with factory() as session, session.begin():
        correction = Correction(predicted=predicted, corrected=corrected, texts_masked=texts,
                                accepted=accepted, reviewed_at=reviewed_at, created_at=created_at)
        session.add(correction)
        session.flush()
        return correction.id


def coordinator(factory: sessionmaker[Session]) -> str:
    with factory() as session, session.begin():
        return add_user(session, username="coord", display_name="Carla", role=Role.coordinator,
                        password="een lang wachtwoord").id


def test_the_theme_a_correction_teaches() -> None:
    assert learning.training_theme(["money"], ["money", "housing"]) == "housing"
    assert learning.training_theme([], ["loneliness", "parenting"]) == "loneliness"
    assert learning.training_theme(["money", "housing"], ["housing", "money"]) == "housing"
    assert learning.training_theme(["money"], ["not_a_theme"]) is None
    assert learning.training_theme(["money"], []) is None


def test_review_lists_and_masks(factory: sessionmaker[Session]) -> None:
    user_id = coordinator(factory)
    # Stored before names were masked: the review masks them again.
    first = add_correction(factory, ["money"], ["housing"],
                           ["Ik ben Fatima, bel me op 06-12345678", "we moeten uit ons huis"])
    second = add_correction(factory, ["parenting"], ["loneliness"], ["ik voel me alleen"],
                            created_at=NOW + timedelta(minutes=1))
    with factory() as session:
        waiting = learning.corrections(session, reviewed=False)
        assert [item.id for item in waiting] == [first, second]  # oldest first
        assert waiting[0].texts == ["Ik ben [naam], bel me op [telefoon]", "we moeten uit ons huis"]
        assert learning.waiting_count(session) == 2
        assert learning.corrections(session, reviewed=True) == []

    with factory() as session, session.begin():
        learning.review(session, first, accepted=True, user_id=user_id, now=NOW)
        learning.review(session, second, accepted=False, user_id=user_id, now=NOW)
    with factory() as session:
        assert learning.corrections(session, reviewed=False) == []
        reviewed = {item.id: item for item in learning.corrections(session, reviewed=True)}
        assert reviewed[first].accepted is True and reviewed[second].accepted is False
        assert reviewed[first].reviewed_by == "Carla" and reviewed[first].reviewed_at == NOW
        with pytest.raises(learning.CorrectionNotFound):
            learning.review(session, "nope", accepted=True, user_id=user_id)


def test_export_writes_accepted_corrections_once(factory: sessionmaker[Session], tmp_path: Path) -> None:
    nlu_dir = tmp_path / "nlu"
    nlu_dir.mkdir()
    add_correction(factory, ["money"], ["money", "housing"],
                   ["Ik heet Anna de Vries en bel 0612345678", "- # de huisbaas wil ons eruit"],
                   accepted=True, reviewed_at=NOW - timedelta(hours=2))
    add_correction(factory, [], ["loneliness"], ["ik heb niemand om mee te praten"],
                   accepted=True, reviewed_at=NOW - timedelta(hours=1))
    add_correction(factory, ["money"], ["addiction"], ["een afgewezen zin"],
                   accepted=False, reviewed_at=NOW - timedelta(hours=1))
    add_correction(factory, ["money"], ["parenting"], ["nog niet beoordeeld"])

    with factory() as session:
        result = learning.export_corrections(session, nlu_dir, now=NOW)
    assert result.path == nlu_dir / "corrections_20261122.yml"
    assert result.corrections == 2 and result.examples == 3 and result.since is None
    text = result.path.read_text(encoding="utf-8")
    assert text.startswith("# exported 2026-11-22T12:00:00+00:00\n")
    assert 'version: "3.1"' in text
    assert not PHONE.search(text.split("nlu:", 1)[1]) and "0612345678" not in text and "Anna" not in text
    assert "afgewezen" not in text and "nog niet" not in text

    data = load([result.path])  # the project's own loader accepts it
    examples = {(e.intent, e.text) for e in data.examples}
    assert examples == {
        ("housing", "Ik heet [naam] en bel [telefoon]"),
        ("housing", "de huisbaas wil ons eruit"),
        ("loneliness", "ik heb niemand om mee te praten"),
    }

    # The next export takes only what was reviewed after the newest file's header.
    assert learning.last_export(nlu_dir) == NOW
    with factory() as session:
        again = learning.export_corrections(session, nlu_dir, now=NOW + timedelta(hours=1))
    assert again.path is None and again.examples == 0  # nothing new: no (empty) file
    add_correction(factory, ["housing"], ["money"], ["ik heb schulden"], accepted=True,
                   reviewed_at=NOW + timedelta(minutes=30))
    with factory() as session:
        later = learning.export_corrections(session, nlu_dir, now=NOW + timedelta(hours=2))
    assert later.path == nlu_dir / "corrections_20261122_2.yml" and later.since == NOW
    assert [(e.intent, e.text) for e in load([later.path]).examples] == [("money", "ik heb schulden")]


def test_the_cli_writes_a_file_the_training_loads(
    factory: sessionmaker[Session], database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "nlu").mkdir(parents=True)
    repo_nlu = Path(__file__).resolve().parents[2] / "data" / "nlu"
    for path in repo_nlu.glob("*.yml"):
        (data_dir / "nlu" / path.name).write_bytes(path.read_bytes())
    add_correction(factory, ["money"], ["housing"], ["mijn zoon Daan en ik slapen bij vrienden, 06 1234 5678"],
                   accepted=True, reviewed_at=utcnow() - timedelta(minutes=5))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OUDERTELEFOON_ENV", "test")
    monkeypatch.setenv("OUDERTELEFOON_DATA_DIR", str(data_dir))
    monkeypatch.setenv("OUDERTELEFOON_VAR_DIR", str(tmp_path / "var"))

    assert cli.main(["nlu", "export-corrections"]) == 0
    printed = capsys.readouterr().out
    written = list((data_dir / "nlu").glob("corrections_*.yml"))
    assert len(written) == 1 and "exported 1 example(s) from 1 accepted correction(s)" in printed
    text = written[0].read_text(encoding="utf-8")
    assert "Daan" not in text and not PHONE.search(text.split("nlu:", 1)[1])
    training = load_training(data_dir / "nlu")  # the whole training set still loads
    assert ("housing", "mijn zoon [naam] en ik slapen bij vrienden, [telefoon]") in \
        {(e.intent, e.text) for e in training.examples}

    assert cli.main(["nlu", "export-corrections", "--out", str(tmp_path / "x.yml")]) == 0
    assert "no accepted corrections to export" in capsys.readouterr().out
    assert not (tmp_path / "x.yml").exists()


def test_catalogue_use_in_the_last_90_days(factory: sessionmaker[Session]) -> None:
    catalogue = load_catalogue()
    ok = catalogue.get("okt_amsterdam").model_copy(update={"verified": True})
    no_contact = catalogue.get("spelinloop_amsterdam").model_copy(update={"verified": True})
    unverified = catalogue.get("geldfit")
    small = Catalogue({e.id: e for e in (ok, no_contact, unverified)}, {})
    hour = NOW.replace(minute=0) - timedelta(days=1)
    with factory() as session, session.begin():
        for index in range(7):
            session.add(ContactFact(hour=hour, channel=Channel.web,
                                    catalogue_given=["okt_amsterdam", "geldfit"] if index < 3 else ["okt_amsterdam"],
                                    referred_to="okt_amsterdam" if index < 6 else "geldfit"))
        # Too old to count, and a fact without any entries.
        session.add(ContactFact(hour=NOW - timedelta(days=91), channel=Channel.sms,
                                catalogue_given=["geldfit"], referred_to="geldfit"))
        session.add(ContactFact(hour=hour, channel=Channel.sms, catalogue_given=[]))
    with factory() as session:
        rows = {row.id: row for row in learning.catalogue_usage(session, small, now=NOW)}
    assert list(rows) == ["okt_amsterdam", "spelinloop_amsterdam", "geldfit"]
    assert (rows["okt_amsterdam"].given, rows["okt_amsterdam"].referred) == (7, 6)
    assert (rows["geldfit"].given, rows["geldfit"].referred) == (3, 1)
    assert (rows["spelinloop_amsterdam"].given, rows["spelinloop_amsterdam"].referred) == (0, 0)
    assert not rows["okt_amsterdam"].flagged
    assert rows["spelinloop_amsterdam"].problems == ["geen telefoonnummer of website"]
    assert rows["geldfit"].problems == ["niet gecontroleerd"]
    assert [learning.suppress(n) for n in (0, 1, 4, 5, 7)] == [0, "<5", "<5", 5, 7]
