"""The catalogue in the dashboard (bot.web.catalogue_admin), through the real app: coordinators
edit, check, publish and add entries; refusals in Dutch per field with nothing lost; every change
audited with old and new values; the bot's next answer uses the change."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from bot.catalogue_service import CHANGED, CHECKED, PUBLISHED, UNPUBLISHED
from bot.config import Settings
from bot.storage.models import AuditLog, CatalogueRecord, Role, utcnow
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.bot.web.test_dashboard import Staff, dashboard_app, staff, text_of
from tests.channels.conftest import run_async, services  # noqa: F401 (a fixture)

MONEY = "waar kan ik hulp krijgen met mijn schulden"


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return dashboard_app(settings, services)


@pytest.fixture
def coordinator(app: FastAPI, services: Services) -> Iterator[Staff]:
    person = staff(app, services, Role.coordinator, display_name="Coco")
    with person.client:
        yield person


def form_of(page: str) -> dict[str, object]:
    """The edit form's fields as the browser would send them (checked boxes only)."""
    form = re.search(r'<form[^>]*id="entry-form".*?</form>', page, re.DOTALL)
    assert form, page
    fields: dict[str, object] = {}
    boxes: dict[str, list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", form.group(0)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                boxes.setdefault(name.group(1), []).append(html.unescape(value.group(1) if value else ""))
        else:
            fields[name.group(1)] = html.unescape(value.group(1) if value else "")
    for box, chosen in boxes.items():
        fields[box] = chosen if box in ("themes", "phases") else chosen[0]
    for group in ("themes", "phases"):
        fields.setdefault(group, [])
    for field, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form.group(0), re.DOTALL):
        fields[field] = html.unescape(body)
    for field, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form.group(0), re.DOTALL):
        option = re.search(r'<option value="([^"]*)" selected', body)
        fields[field] = option.group(1) if option else ""
    return fields


def bot_texts(client: TestClient) -> list[str]:
    return [m["text"] for m in client.get("/chat/api/messages").json()["messages"] if m["from"] == "bot"]


def ask(client: TestClient, text: str) -> str:
    """A parent asks in the web chat; the bot's reply to it (all its parts)."""
    before = len(bot_texts(client))
    response = client.post("/chat/api/messages", json={"text": text, "client_id": uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return "\n".join(bot_texts(client)[before:])


def audits(services: Services, action: str) -> list[AuditLog]:
    with services.factory() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def record(services: Services, entry_id: str) -> CatalogueRecord:
    with services.factory() as session:
        found = session.get(CatalogueRecord, entry_id)
        assert found is not None
        return found


def test_seeded_from_data_aanbod_and_listed_with_flags(coordinator: Staff, services: Services) -> None:
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(CatalogueRecord)) == len(services.catalogue) == 57
    page = coordinator.client.get("/dashboard/catalogue")
    assert page.status_code == 200
    rows = re.findall(r'<tr id="entry-([a-z0-9_]+)"[^>]*data-flags="([^"]*)"', page.text)
    assert len(rows) == 57 and all("unchecked" in flags for _, flags in rows)
    assert "niet gecontroleerd" in text_of(page.text)


def test_a_bad_phone_is_refused_in_dutch_and_nothing_is_lost(coordinator: Staff, services: Services) -> None:
    form = form_of(coordinator.client.get("/dashboard/catalogue/geldfit").text)
    assert form["contact.phone"] == "0800-8115" and form["themes"] == ["money"]
    form.update({"contact.phone": "bel ons maar", "summary.nl": "Nieuwe tekst voor ouders.",
                 "contact.website": "http://geldfit.nl", "csrf_token": coordinator.csrf})
    refused = coordinator.client.post("/dashboard/catalogue/geldfit", data=form)
    assert refused.status_code == 400
    words = text_of(refused.text)
    assert "Dit is geen telefoonnummer zoals we ze schrijven" in words
    assert "Gebruik een https-adres" in words
    # What the person typed is still there.
    again = form_of(refused.text)
    assert again["contact.phone"] == "bel ons maar" and again["summary.nl"] == "Nieuwe tekst voor ouders."
    assert again["themes"] == ["money"]
    # Nothing changed, nothing audited.
    assert record(services, "geldfit").data["contact"]["phone"] == "0800-8115"
    assert audits(services, CHANGED) == []

    # A rule across fields: a second number only next to a first one.
    form.update({"contact.phone": "", "contact.free_phone": "0800-0113", "contact.website": "geldfit.nl"})
    refused = coordinator.client.post("/dashboard/catalogue/geldfit", data=form)
    assert refused.status_code == 400 and "Dit kan alleen naast een telefoonnummer." in text_of(refused.text)
    # A required text left empty, and a label word parents must never read.
    form.update({"contact.free_phone": "", "summary.en": "", "summary.nl": "Voor kwetsbare ouders."})
    refused = coordinator.client.post("/dashboard/catalogue/geldfit", data=form)
    words = text_of(refused.text)
    assert "Vul dit in." in words and "Woorden als 'kwetsbaar' horen niet in tekst voor ouders." in words
    assert audits(services, CHANGED) == []


def test_an_edit_is_audited_with_old_and_new_and_the_next_answer_uses_it(
        coordinator: Staff, services: Services, settings: Settings) -> None:
    parent = TestClient(create_app(settings, services))
    with parent:
        parent.get("/chat")
        first = ask(parent, MONEY)
        assert "0800-8115" in first  # geldfit, as seeded
        form = form_of(coordinator.client.get("/dashboard/catalogue/geldfit").text)
        form.update({"contact.phone": "0800-1234", "csrf_token": coordinator.csrf})
        saved = coordinator.client.post("/dashboard/catalogue/geldfit", data=form, follow_redirects=False)
        assert saved.status_code == 303 and saved.headers["location"].endswith("melding=opgeslagen")
        answer = ask(parent, "ik heb schulden, wie kan me helpen met geld?")
        assert "0800-1234" in answer and "0800-8115" not in answer

    (change,) = audits(services, CHANGED)
    assert change.user_id == coordinator.person.user_id
    assert change.detail == {"entry": "geldfit", "old": {"contact": {"phone": "0800-8115", "website": "geldfit.nl"}},
                             "new": {"contact": {"phone": "0800-1234", "website": "geldfit.nl"}}}
    page = coordinator.client.get("/dashboard/catalogue/geldfit")
    assert "gewijzigd door Coco" in text_of(page.text)


def test_check_and_publish_are_audited_and_a_change_ends_the_check(
        coordinator: Staff, services: Services) -> None:
    response = coordinator.post("/dashboard/catalogue/geldfit/check")
    assert response.status_code == 303
    checked = record(services, "geldfit")
    assert checked.checked_by == coordinator.person.user_id and checked.checked_at is not None
    (audit,) = audits(services, CHECKED)
    assert audit.detail["old"] == {"checked_at": None, "checked_by": None}  # type: ignore[index]
    assert audit.detail["new"]["checked_by"] == coordinator.person.user_id  # type: ignore[index]
    assert services.catalogue.get("geldfit").verified
    assert "Gecontroleerd op" in text_of(coordinator.client.get("/dashboard/catalogue/geldfit").text)

    # Changing its facts ends the check, unless the person says they checked them now.
    form = form_of(coordinator.client.get("/dashboard/catalogue/geldfit").text)
    form.update({"name": "Geldfit (landelijk)", "csrf_token": coordinator.csrf})
    assert coordinator.client.post("/dashboard/catalogue/geldfit", data=form, follow_redirects=False).status_code == 303
    assert record(services, "geldfit").checked_at is None and not services.catalogue.get("geldfit").verified
    form = form_of(coordinator.client.get("/dashboard/catalogue/geldfit").text)
    form.update({"name": "Geldfit", "checked_now": "ja", "csrf_token": coordinator.csrf})
    assert coordinator.client.post("/dashboard/catalogue/geldfit", data=form, follow_redirects=False).status_code == 303
    assert record(services, "geldfit").checked_by == coordinator.person.user_id

    # An entry with unknown access cannot be checked.
    unknown = next(e for e in services.catalogue if e.access.value == "unknown")
    assert coordinator.post(f"/dashboard/catalogue/{unknown.id}/check").status_code == 409
    assert record(services, unknown.id).checked_at is None

    # Offline and back.
    assert coordinator.post("/dashboard/catalogue/geldfit/publish", {"published": "nee"}).status_code == 303
    assert not record(services, "geldfit").published and not services.catalogue.get("geldfit").published
    assert coordinator.post("/dashboard/catalogue/geldfit/publish", {"published": "ja"}).status_code == 303
    assert [a.detail for a in audits(services, UNPUBLISHED)] == [
        {"entry": "geldfit", "old": {"published": True}, "new": {"published": False}}]
    assert len(audits(services, PUBLISHED)) == 1


def test_twelve_months_after_the_check_the_entry_is_flagged(coordinator: Staff, services: Services) -> None:
    now = utcnow()
    with services.factory() as session, session.begin():
        session.execute(update(CatalogueRecord).where(CatalogueRecord.id == "geldfit")
                        .values(checked_at=now - timedelta(days=366)))
        session.execute(update(CatalogueRecord).where(CatalogueRecord.id == "fiom")
                        .values(checked_at=now - timedelta(days=330)))
    page = coordinator.client.get("/dashboard/catalogue").text
    flags = dict(re.findall(r'<tr id="entry-([a-z0-9_]+)"[^>]*data-flags="([^"]*)"', page))
    assert flags["geldfit"] == "check_expired"
    assert flags["fiom"] == ""
    assert "langer dan 12 maanden niet gecontroleerd" in text_of(page)


def test_add_an_entry_with_every_field(coordinator: Staff, services: Services) -> None:
    form = form_of(coordinator.client.get("/dashboard/catalogue/new").text)
    form.update({"id": "geldfit", "name": "Nieuw", "kind": "helpline", "themes": ["money"],
                 "phases": ["all"], "access": "self_referral", "region": "amsterdam",
                 "summary.nl": "Hulp bij geld.", "summary.en": "Help with money.",
                 "contact.phone": "020-1234567", "source": "test", "csrf_token": coordinator.csrf})
    refused = coordinator.client.post("/dashboard/catalogue/new", data=form)
    assert refused.status_code == 400 and "Deze code is al in gebruik." in text_of(refused.text)
    assert form_of(refused.text)["name"] == "Nieuw"
    form.update({"id": "geldhulp_west", "replaces": "okt_amsterdam"})
    refused = coordinator.client.post("/dashboard/catalogue/new", data=form)
    assert "Je kunt alleen een landelijke dienst vervangen." in text_of(refused.text)
    form.update({"replaces": "geldfit", "contact.free": "ja", "contact.hours.nl": "dag en nacht",
                 "contact.hours.en": "day and night", "contact.website": "https://geldhulp.example.nl/west/",
                 "contact.how.nl": "Bel of mail.", "contact.how.en": "Call or mail.",
                 "referral.nl": "Vraag het buurtteam.", "referral.en": "Ask the team.", "note": "n",
                 "published": "ja"})
    added = coordinator.client.post("/dashboard/catalogue/new", data=form, follow_redirects=False)
    assert added.status_code == 303, text_of(added.text)
    entry = services.catalogue.get("geldhulp_west")
    assert entry.contact is not None and entry.contact.website == "geldhulp.example.nl/west"
    assert entry.replaces == ("geldfit",) and entry.published and not entry.verified
    (audit,) = audits(services, "catalogue_entry_added")
    assert audit.detail["new"]["name"] == "Nieuw" and audit.detail["old"] == {}  # type: ignore[index]


def test_a_stale_form_does_not_overwrite_anothers_change(app: FastAPI, coordinator: Staff,
                                                         services: Services) -> None:
    other = staff(app, services, Role.coordinator)
    got = coordinator.client.get("/dashboard/catalogue/fiom")
    assert got.status_code == 200, (got.status_code, got.headers, got.text[:300])
    mine = form_of(got.text)
    theirs = form_of(other.client.get("/dashboard/catalogue/fiom").text)
    theirs.update({"name": "FIOM (hun versie)", "csrf_token": other.csrf})
    assert other.client.post("/dashboard/catalogue/fiom", data=theirs, follow_redirects=False).status_code == 303
    mine.update({"name": "FIOM (mijn versie)", "csrf_token": coordinator.csrf})
    stale = coordinator.client.post("/dashboard/catalogue/fiom", data=mine)
    assert stale.status_code == 409 and "Iemand anders heeft deze dienst intussen gewijzigd" in text_of(stale.text)
    assert form_of(stale.text)["name"] == "FIOM (mijn versie)"
    assert record(services, "fiom").data["name"] == "FIOM (hun versie)"


def test_production_offers_only_published_checked_entries(
        settings: Settings, triage: Triage) -> None:
    production_rule = settings.model_copy(update={"catalogue_include_unverified": False})
    built = build_services(production_rule, triage=triage)
    try:
        app = create_app(production_rule, built)
        coordinator = staff(app, built, Role.coordinator)
        with TestClient(app) as parent, coordinator.client:
            parent.get("/chat")
            nothing = ask(parent, MONEY)
            assert "0800-8115" not in nothing and "Buurtteam" not in nothing
            assert coordinator.post("/dashboard/catalogue/geldfit/check").status_code == 303
            checked = ask(parent, "wie helpt me met mijn schulden?")
            assert "0800-8115" in checked
            assert coordinator.post("/dashboard/catalogue/geldfit/publish", {"published": "nee"}).status_code == 303
            offline = ask(parent, "ik heb geldzorgen, waar kan ik heen?")
            assert "0800-8115" not in offline
    finally:
        run_async(built.close)


def test_ticking_checked_on_an_entry_with_unknown_access_is_refused_at_the_field(
        coordinator: Staff, services: Services) -> None:
    unknown = next(e for e in services.catalogue if e.access.value == "unknown")
    form = form_of(coordinator.client.get(f"/dashboard/catalogue/{unknown.id}").text)
    form.update({"checked_now": "ja", "csrf_token": coordinator.csrf})
    refused = coordinator.client.post(f"/dashboard/catalogue/{unknown.id}", data=form)
    assert refused.status_code == 400
    message = re.search(r'<p class="error" id="error-access">(.*?)</p>', refused.text)
    assert message and "onbekende toegang of regio" in message.group(1)
    assert record(services, unknown.id).checked_at is None
