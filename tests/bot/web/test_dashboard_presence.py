"""The dashboard and presence, with the real app: logging out ends the shift, the people on shift
are shown present or away ("weg"), a polling page keeps its person present, the conversation
page's first opening sends the warm handover, and the card of an acute conversation says in
plain words what is going on and what the parent already read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.config import Settings
from bot.storage.models import (
    AuditLog,
    ConversationStatus,
    QueueName,
    Role,
    Shift,
    utcnow,
)
from bot.web.app import Services
from tests.bot.web.test_dashboard import (
    FETCH,
    dashboard_app,
    only_conversation,
    parent_says,
    parent_texts,
    queued_parent,
    staff,
    text_of,
)
from tests.channels.conftest import services  # noqa: F401 (a fixture)

SUICIDE = "ik wil niet meer leven, ik heb de pillen al klaarliggen"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services) -> Clock:
    moved = Clock()
    services.desk.clock = moved
    services.pipeline.clock = moved
    return moved


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return dashboard_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def open_shift(services: Services, user_id: str) -> Shift | None:
    with services.factory() as session:
        return session.scalar(select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None)))


def people_rows(page: str) -> dict[str, str]:
    """The 'Wie is in dienst' list: name -> its row's text."""
    block = re.search(r'<ul class="people".*?</ul>', page, re.DOTALL)
    if block is None:
        return {}
    rows = re.findall(r'<li class="person-row[^"]*".*?</li>', block.group(0), re.DOTALL)
    out = {}
    for row in rows:
        name = re.search(r'<span class="name">([^<]+)</span>', row)
        assert name
        out[name.group(1)] = text_of(row)
    return out


def test_logging_out_ends_the_shift_and_gives_the_claims_back(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    conversation = queued_parent(client, services)
    volunteer = staff(app, services, Role.volunteer, display_name="Sanne")
    assert volunteer.post("/dashboard/shift", {"action": "start"}).status_code == 303
    assert volunteer.post(f"/dashboard/conversations/{conversation.id}/claim").status_code == 303
    assert open_shift(services, volunteer.person.user_id) is not None

    response = volunteer.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert open_shift(services, volunteer.person.user_id) is None
    assert only_conversation(services).status is ConversationStatus.queued
    with services.factory() as session:
        stopped = session.scalars(select(AuditLog).where(AuditLog.action == "shift_stopped")).one()
        assert stopped.detail == {"returned": 1, "reason": "logout"}

    # Logging out without a shift ends nothing and writes no shift audit.
    other = staff(app, services, Role.volunteer)
    assert other.post("/logout").status_code == 303
    with services.factory() as session:
        assert len(session.scalars(select(AuditLog).where(AuditLog.action == "shift_stopped")).all()) == 1


def test_the_people_on_shift_are_shown_present_or_away(
    app: FastAPI, client: TestClient, services: Services, settings: Settings, clock: Clock
) -> None:
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    mark = staff(app, services, Role.professional, display_name="Mark")
    sanne.post("/dashboard/shift", {"action": "start"})
    mark.post("/dashboard/shift", {"action": "start"})
    rows = people_rows(mark.client.get("/dashboard").text)
    assert "aanwezig" in rows["Sanne"] and "aanwezig" in rows["Mark"]

    # Sanne's tab closed: past the timeout she is "weg" and does not count; Mark's page polls
    # (its event stream is down), which keeps him present.
    clock.advance(settings.presence_timeout_seconds - 10)
    assert mark.client.get("/dashboard/queue", headers=FETCH).status_code == 200
    clock.advance(20)
    fragment = mark.client.get("/dashboard/queue", headers=FETCH).text
    rows = people_rows(fragment)
    assert "weg" in rows["Sanne"] and "aanwezig" not in rows["Sanne"]
    assert "aanwezig" in rows["Mark"]
    staffing = text_of(fragment)
    assert "In dienst en aanwezig (vrijwilligers) 0" in staffing
    assert "In dienst en aanwezig (hulpverleners) 1" in staffing

    # She comes back (her page polls): present again, without starting a new shift.
    sanne.client.get("/dashboard/queue", headers=FETCH)
    assert "aanwezig" in people_rows(mark.client.get("/dashboard").text)["Sanne"]


def test_the_handover_goes_when_the_page_opens_not_at_the_claim(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    conversation = queued_parent(client, services)
    volunteer = staff(app, services, Role.volunteer, display_name="Sanne")
    volunteer.post("/dashboard/shift", {"action": "start"})
    url = f"/dashboard/conversations/{conversation.id}"
    response = volunteer.post(f"{url}/claim", fetch=True)
    assert response.status_code == 200 and response.json()["redirect"] == url
    assert parent_texts(client, "person") == []  # claimed, not read yet: nothing said
    assert volunteer.client.get(url).status_code == 200
    [handover] = parent_texts(client, "person")
    assert "Sanne" in handover and "vrijwilliger" in handover and "Ik lees nu" in handover
    assert volunteer.client.get(url).status_code == 200  # a reload
    assert len(parent_texts(client, "person")) == 1


def test_claim_next_opens_the_page_and_that_opening_counts(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    queued_parent(client, services)
    volunteer = staff(app, services, Role.volunteer, display_name="Sanne")
    volunteer.post("/dashboard/shift", {"action": "start"})
    response = volunteer.post("/dashboard/claim-next")
    assert response.status_code == 303
    assert parent_texts(client, "person") == []
    volunteer.client.get(response.headers["location"])
    assert len(parent_texts(client, "person")) == 1


def test_the_acute_card_for_a_volunteer_with_no_professional_present(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    volunteer = staff(app, services, Role.volunteer, display_name="Sanne")
    volunteer.post("/dashboard/shift", {"action": "start"})
    client.get("/chat")
    parent_says(client, SUICIDE)
    conversation = only_conversation(services)
    assert conversation.queue is QueueName.professional
    url = f"/dashboard/conversations/{conversation.id}"

    queue = volunteer.client.get("/dashboard").text
    row = re.search(rf'<li class="row acute[^"]*"[^>]*data-conversation="{conversation.id}".*?</li>',
                    queue, re.DOTALL)
    assert row and f'action="{url}/claim"' in row.group(0)  # hers to take now
    assert "Prioriteit" not in text_of(queue)

    page = volunteer.client.get(url)
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "Spoed: de ouder schreef over zelfdoding" in shown
    assert services.texts.guidance.text("suicide", "nl") in shown
    assert "Nummers om door te geven" in shown and "0800-0113" in shown
    assert "Er is nu geen hulpverlener online. Jij kunt dit gesprek oppakken" in shown
    for unclear in ("Prioriteit", "prioriteit geen", "het model schat"):
        assert unclear not in shown, unclear
    assert 'id="claim-form"' in page.text and 'id="coordinator-form"' not in page.text  # no coordinator on duty

    # A coordinator comes on shift: now the volunteer may also hand it to her.
    fatima = staff(app, services, Role.coordinator, display_name="Fatima")
    fatima.post("/dashboard/shift", {"action": "start", "queue": "volunteer"})
    page = volunteer.client.get(url)
    assert "Geef aan coördinator Fatima" in text_of(page.text)
    response = volunteer.post(f"{url}/coordinator", {"coordinator": fatima.person.user_id})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard?melding=coordinator"
    assert "bij de coördinator" in volunteer.client.get(response.headers["location"]).text
    handed = only_conversation(services)
    assert handed.status is ConversationStatus.claimed and handed.claimed_by == fatima.person.user_id
    assert volunteer.post(f"{url}/coordinator", {"coordinator": fatima.person.user_id}).status_code == 409
    assert parent_texts(client, "person") == []
    fatima_page = fatima.client.get(url)
    assert fatima_page.status_code == 200 and 'id="acute-alert"' in fatima_page.text
    [handover] = parent_texts(client, "person")
    assert "Fatima" in handover
