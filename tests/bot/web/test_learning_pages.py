"""The coordinators' corrections review and catalogue view, through the real app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import AuditLog, Channel, ContactFact, Correction, Role, utcnow
from bot.web.app import WEB_DIR, Services
from bot.web.learning import build_router
from handoff.desk import Outcome
from tests.bot.web.test_dashboard import app_routes, dashboard_app, staff, text_of
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    app = dashboard_app(settings, services)
    if not any(path == "/dashboard/stats/corrections" for path, _ in app_routes(app)):
        app.include_router(build_router(Jinja2Templates(directory=WEB_DIR / "templates")))
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def test_a_coordinator_reviews_corrections(app: FastAPI, client: TestClient,
                                           services: Services) -> None:
    # A real correction: a volunteer closes with other themes than the bot's.
    parent = Parent(services)
    parent.says("Ik ben Fatima, bel me op 06-12345678")
    conversation_id = parent.wants_volunteer()
    sanne = person(services, Role.volunteer)
    services.desk.claim(conversation_id, sanne)
    services.desk.close(conversation_id, sanne, Outcome.referred_network, corrected_themes=["housing"])
    with services.factory() as session:
        correction = session.scalars(select(Correction)).one()
        correction_id = correction.id

    coordinator = staff(app, services, Role.coordinator, display_name="Carla")
    page = coordinator.client.get("/dashboard/stats/corrections")
    assert page.status_code == 200
    visible = text_of(page.text)
    assert "Correcties van de bot" in visible and "Te beoordelen (1)" in visible
    assert "wonen" in visible  # the corrected theme, in Dutch
    assert "Ik ben [naam], bel me op [telefoon]" in visible
    assert "Fatima" not in page.text and "12345678" not in page.text
    assert "<caption>" in page.text and 'scope="col"' in page.text

    volunteer = staff(app, services, Role.volunteer)
    assert volunteer.client.get("/dashboard/stats/corrections").status_code == 403
    assert volunteer.post(f"/dashboard/stats/corrections/{correction_id}/accept").status_code == 403
    assert coordinator.post(f"/dashboard/stats/corrections/{correction_id}/accept", csrf=False).status_code == 403

    done = coordinator.post(f"/dashboard/stats/corrections/{correction_id}/accept")
    assert done.status_code == 303
    assert done.headers["location"] == "/dashboard/stats/corrections?melding=geaccepteerd"
    with services.factory() as session:
        reviewed = session.get(Correction, correction_id)
        assert reviewed is not None and reviewed.accepted is True
        assert reviewed.reviewed_by == coordinator.person.user_id and reviewed.reviewed_at is not None
        assert session.scalars(select(AuditLog.action).where(AuditLog.action == "correction_reviewed")).all()
    after = text_of(coordinator.client.get(done.headers["location"]).text)
    assert "De correctie is geaccepteerd" in after and "Er wachten geen correcties" in after

    tab = text_of(coordinator.client.get("/dashboard/stats/corrections?bekeken=ja").text)
    assert "geaccepteerd door Carla" in tab and "Afwijzen" in tab
    changed = coordinator.post(f"/dashboard/stats/corrections/{correction_id}/reject", fetch=True)
    assert changed.status_code == 200 and changed.json()["ok"] is True
    with services.factory() as session:
        assert session.get(Correction, correction_id).accepted is False

    missing = coordinator.post("/dashboard/stats/corrections/onbekend/accept")
    assert missing.status_code == 404 and "bestaat niet" in missing.text
    assert coordinator.post("/dashboard/stats/corrections/onbekend/accept", fetch=True).status_code == 404


def cell(page: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="dienst-{row_id}"[^>]*>(.*?)</tr>', page, re.DOTALL)
    assert row, row_id
    return [text_of(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row.group(1), re.DOTALL)]


def test_the_catalogue_view_counts_use_and_flags_entries(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    with services.factory() as session, session.begin():
        for index in range(8):
            session.add(ContactFact(hour=hour, channel=Channel.web,
                                    catalogue_given=["geldfit", "okt_amsterdam"] if index < 3 else ["geldfit"],
                                    referred_to="geldfit" if index < 6 else None))
        session.add(ContactFact(hour=hour - timedelta(days=100), channel=Channel.web,
                                catalogue_given=["okt_amsterdam"] * 1, referred_to="okt_amsterdam"))

    coordinator = staff(app, services, Role.coordinator)
    page = coordinator.client.get("/dashboard/stats/catalogue")
    assert page.status_code == 200
    geldfit = cell(page.text, "geldfit")
    assert geldfit[1:3] == ["8", "6"]
    okt = cell(page.text, "okt_amsterdam")
    assert okt[1:3] == ["<5", "0"]  # 3 in the last 90 days: shown as <5, never 3
    assert "3" not in okt[1] and "3" not in okt[2]
    assert "Let op: niet gecontroleerd" in okt[5]
    entry = services.catalogue.get("okt_amsterdam")
    assert entry.source in okt[3]
    assert "geen telefoonnummer of website" in cell(page.text, "spelinloop_amsterdam")[5]
    assert len(re.findall(r'<tr id="dienst-', page.text)) == len(services.catalogue)
    assert "<caption>" in page.text

    assert staff(app, services, Role.professional).client.get("/dashboard/stats/catalogue").status_code == 403
