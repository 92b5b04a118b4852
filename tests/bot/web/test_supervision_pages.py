"""Supervision on the dashboard with the real app (bot.web.supervision): the "Meekijken" page,
a conversation read-only, a note the parent never sees (checked in the parent's own web chat),
"Neem over", and the holder's "Vraag hulp" and notes; volunteers refused on every route."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.config import Settings
from bot.storage.models import (
    AuditLog,
    Conversation,
    ConversationStatus,
    Outbox,
    Role,
    SupervisionNote,
)
from bot.web.app import Services
from tests.bot.web.test_dashboard import (
    FETCH,
    LONELY,
    Staff,
    dashboard_app,
    parent_texts,
    queued_parent,
    staff,
    text_of,
)
from tests.channels.conftest import services  # noqa: F401 (a fixture)

NOTE = "Vraag of ze vannacht iemand kan bellen, en noem de huisartsenpost."


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return dashboard_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The parent's browser (and the one that runs the app's lifespan)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def scene(app: FastAPI, client: TestClient, services: Services) -> tuple[Conversation, Staff, Staff]:
    """A parent with volunteer Sanne (her page opened), and coordinator Ria on shift."""
    conversation = queued_parent(client, services)
    sanne = staff(app, services, Role.volunteer, display_name="Sanne")
    sanne.post("/dashboard/shift", {"action": "start"})
    assert sanne.post(f"/dashboard/conversations/{conversation.id}/claim").status_code == 303
    assert sanne.client.get(f"/dashboard/conversations/{conversation.id}").status_code == 200
    ria = staff(app, services, Role.coordinator, display_name="Ria")
    ria.post("/dashboard/shift", {"action": "start"})
    return conversation, sanne, ria


def test_a_coordinator_watches_sends_a_note_and_takes_over(
    client: TestClient, services: Services, scene: tuple[Conversation, Staff, Staff]
) -> None:
    conversation, sanne, ria = scene
    # The live list: who has it, and a link to read along.
    page = ria.client.get("/dashboard/supervision")
    assert page.status_code == 200
    row = re.search(rf'<li class="row[^"]*"[^>]*data-conversation="{conversation.id}".*?</li>', page.text, re.DOTALL)
    assert row, page.text
    assert "Sanne (vrijwilliger)" in text_of(row.group(0))
    assert f'href="/dashboard/supervision/{conversation.id}"' in row.group(0)
    assert 'href="/dashboard/supervision"' in page.text  # the menu link "Meekijken"
    fragment = ria.client.get("/dashboard/supervision/live", headers=FETCH)
    assert fragment.status_code == 200 and conversation.id in fragment.text

    # Read-only: the parent's words, a note box and "Neem over", no reply box; audited.
    url = f"/dashboard/supervision/{conversation.id}"
    watch = ria.client.get(url)
    assert watch.status_code == 200 and LONELY in watch.text
    assert 'id="note-form"' in watch.text and "Neem over" in watch.text and 'id="reply-form"' not in watch.text
    assert ria.client.get(f"{url}/messages?after=0", headers=FETCH).status_code == 200
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "supervision_opened", AuditLog.user_id == ria.person.user_id)) == 1
        assert session.get(Conversation, conversation.id).claimed_by == sanne.person.user_id

    # The note: Sanne sees it on her page; the parent's chat never shows it.
    before = parent_texts(client)
    assert ria.post(f"{url}/note", {"text": NOTE}).status_code == 303
    mine = sanne.client.get(f"/dashboard/conversations/{conversation.id}")
    assert NOTE in mine.text and 'id="supervision-holder"' in mine.text
    notes = sanne.client.get(f"/dashboard/conversations/{conversation.id}/notes", headers=FETCH)
    assert notes.status_code == 200 and NOTE in notes.text
    assert parent_texts(client) == before and all(NOTE not in t for t in parent_texts(client))
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.text.contains("huisartsenpost"))) == 0
    # Ria's view lists it as read.
    assert "gelezen" in text_of(ria.client.get(url).text)

    # Neem over: it is Ria's, the parent hears who joins, Sanne cannot answer any more.
    taken = ria.post(f"{url}/takeover", {"holder": sanne.person.user_id})
    assert taken.status_code == 303
    assert taken.headers["location"] == f"/dashboard/conversations/{conversation.id}?melding=overgenomen"
    with services.factory() as session:
        assert session.get(Conversation, conversation.id).claimed_by == ria.person.user_id
    handover = [t for t in parent_texts(client, "person") if "Ria" in t]
    assert len(handover) == 1 and "niet opnieuw" in handover[0], parent_texts(client)
    own = ria.client.get(f"/dashboard/conversations/{conversation.id}?melding=overgenomen")
    assert own.status_code == 200 and "Je hebt het gesprek overgenomen" in own.text and 'id="reply-form"' in own.text
    assert sanne.post(f"/dashboard/conversations/{conversation.id}/reply", {"text": "hoi"}).status_code == 409
    gone = sanne.client.get(f"/dashboard/conversations/{conversation.id}")
    assert gone.status_code == 409 and "opgepakt door Ria" in text_of(gone.text)
    # The same press again (the holder it saw is gone): refused in Dutch, nothing moves.
    again = ria.post(f"{url}/takeover", {"holder": sanne.person.user_id})
    assert again.status_code == 409 and "eigen gesprek" in text_of(again.text)


def test_vraag_hulp_marks_it_for_the_supervisor_and_can_be_withdrawn(
    services: Services, scene: tuple[Conversation, Staff, Staff]
) -> None:
    conversation, sanne, ria = scene
    url = f"/dashboard/conversations/{conversation.id}"
    assert "Vraag hulp" in sanne.client.get(url).text
    asked = sanne.post(f"{url}/help", {"action": "request"})
    assert asked.status_code == 303 and asked.headers["location"] == f"{url}?melding=hulp_gevraagd"
    page = sanne.client.get(asked.headers["location"])
    assert "Je vraag om hulp is verstuurd" in page.text and "Hulpvraag intrekken" in page.text
    live = ria.client.get("/dashboard/supervision").text
    assert 'data-help="ja"' in live and "Vraagt om hulp" in text_of(live)
    # Ria reads along: Sanne's request is answered, and her page says by whom (not just gone).
    assert ria.client.get(f"/dashboard/supervision/{conversation.id}").status_code == 200
    answered = text_of(sanne.client.get(f"{url}/notes").text)
    assert "Ria heeft je vraag om hulp gezien" in answered and "Hulpvraag intrekken" not in answered, answered
    assert sanne.post(f"{url}/help", {"action": "request"}).status_code == 303
    assert sanne.post(f"{url}/help", {"action": "withdraw"}).headers["location"] == f"{url}?melding=hulp_ingetrokken"
    assert "heeft je vraag om hulp gezien" not in text_of(sanne.client.get(f"{url}/notes").text)
    assert 'data-help="ja"' not in ria.client.get("/dashboard/supervision").text
    # With nobody to alert, the holder hears so.
    ria.post("/dashboard/shift", {"action": "stop"})
    alone = sanne.post(f"{url}/help", {"action": "request"})
    assert alone.headers["location"] == f"{url}?melding=hulp_niemand"
    assert "geen coördinator of hulpverlener online" in sanne.client.get(alone.headers["location"]).text
    # A supervisor who comes on shift later sees it waiting, on every page; a volunteer does not.
    assert "om hulp" not in text_of(ria.client.get("/dashboard").text)  # off shift
    ria.post("/dashboard/shift", {"action": "start"})
    assert "1 gesprek vraagt om hulp. Naar Meekijken" in text_of(ria.client.get("/dashboard").text)
    assert 'id="help-waiting"' not in sanne.client.get("/dashboard").text
    # Only the holder asks: another person gets a refusal, the mark stays Sanne's.
    assert ria.post(f"{url}/help", {"action": "request"}).status_code == 409
    assert sanne.post(f"{url}/help", {"action": "iets"}).status_code == 400


def test_volunteers_are_refused_on_every_supervision_route(
    app: FastAPI, services: Services, scene: tuple[Conversation, Staff, Staff]
) -> None:
    conversation, sanne, _ria = scene
    bas = staff(app, services, Role.volunteer, display_name="Bas")
    bas.post("/dashboard/shift", {"action": "start"})
    url = f"/dashboard/supervision/{conversation.id}"
    for who in (bas, sanne):
        for path in ("/dashboard/supervision", "/dashboard/supervision/live", url, f"{url}/messages?after=0"):
            response = who.client.get(path)
            assert response.status_code == 403, (path, response.status_code)
            assert LONELY not in response.text
            assert "Meekijken is voor coördinatoren en hulpverleners" in text_of(response.text)
        assert who.post(f"{url}/note", {"text": "psst"}).status_code == 403
        assert who.post(f"{url}/takeover", {"holder": sanne.person.user_id}).status_code == 403
        assert 'href="/dashboard/supervision"' not in who.client.get("/dashboard").text
    # Bas does not read Sanne's notes or ask help on her conversation either.
    assert bas.client.get(f"/dashboard/conversations/{conversation.id}/notes", headers=FETCH).status_code == 409
    assert bas.post(f"/dashboard/conversations/{conversation.id}/help", {"action": "request"}).status_code == 409
    with services.factory() as session:
        stored = session.get(Conversation, conversation.id)
        assert stored.status is ConversationStatus.claimed and stored.claimed_by == sanne.person.user_id
        assert stored.help_requested_at is None
        assert session.scalar(select(func.count()).select_from(SupervisionNote)) == 0
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action.in_(("supervision_opened", "taken_over")))) == 0
