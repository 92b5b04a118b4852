"""Who may use which dashboard route. The routes are read from the app itself, so a route added
later is checked too (and must be classified here before this test passes)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.config import Settings
from bot.storage.models import AuditLog, Conversation, ConversationStatus, QueueName, Role, Shift
from bot.triage.types import Risk
from bot.web.app import Services
from tests.bot.web.test_dashboard import (
    FETCH,
    Staff,
    app_routes,
    dashboard_app,
    parent_says,
    staff,
    text_of,
)
from tests.channels.conftest import services  # noqa: F401 (a fixture)

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}

#: Coordinators only: user admin, standard texts, blocks (and blocking from a conversation),
#: statistics (the page, its CSV exports and everything else under /dashboard/stats).
COORDINATOR_PREFIXES = ("/dashboard/users", "/dashboard/texts", "/dashboard/blocks", "/dashboard/stats")
COORDINATOR_ROUTES = {("POST", "/dashboard/conversations/{conversation_id}/block")}
#: Coordinators only: the learning loop's review and the catalogue view (bot.web.learning).
COORDINATOR_ROUTES |= {
    ("GET", "/dashboard/stats/corrections"),
    ("POST", "/dashboard/stats/corrections/{correction_id}/accept"),
    ("POST", "/dashboard/stats/corrections/{correction_id}/reject"),
    ("GET", "/dashboard/stats/catalogue"),
}
#: Coordinators only: keeping the catalogue (bot.web.catalogue_admin).
CATALOGUE_ROUTES = {
    ("GET", "/dashboard/catalogue"),
    ("GET", "/dashboard/catalogue/new"),
    ("POST", "/dashboard/catalogue/new"),
    ("GET", "/dashboard/catalogue/{entry_id}"),
    ("POST", "/dashboard/catalogue/{entry_id}"),
    ("POST", "/dashboard/catalogue/{entry_id}/check"),
    ("POST", "/dashboard/catalogue/{entry_id}/publish"),
}
COORDINATOR_ROUTES |= CATALOGUE_ROUTES
#: Every logged-in person (what they may do inside is up to the desk; see the last test).
EVERYONE_ROUTES = {
    ("GET", "/dashboard"),
    ("GET", "/dashboard/queue"),
    ("GET", "/dashboard/events"),
    ("POST", "/dashboard/claim-next"),
    ("POST", "/dashboard/shift"),
    ("GET", "/dashboard/conversations/{conversation_id}"),
    ("GET", "/dashboard/conversations/{conversation_id}/messages"),
    ("POST", "/dashboard/conversations/{conversation_id}/claim"),
    ("POST", "/dashboard/conversations/{conversation_id}/reply"),
    ("POST", "/dashboard/conversations/{conversation_id}/release"),
    ("POST", "/dashboard/conversations/{conversation_id}/transfer"),
    ("POST", "/dashboard/conversations/{conversation_id}/close"),
    ("POST", "/dashboard/conversations/{conversation_id}/referral"),
    ("POST", "/dashboard/conversations/{conversation_id}/acknowledge"),
    ("POST", "/dashboard/conversations/{conversation_id}/coordinator"),
}

#: Supervision (bot.web.supervision): the route lets every logged-in person in, the desk only
#: coordinators and professionals ON SHIFT (403 for volunteers and anyone off shift; see
#: test_supervision_routes_for_each_role).
SUPERVISION_ROUTES = {
    ("GET", "/dashboard/supervision"),
    ("GET", "/dashboard/supervision/live"),
    ("GET", "/dashboard/supervision/{conversation_id}"),
    ("GET", "/dashboard/supervision/{conversation_id}/messages"),
    ("POST", "/dashboard/supervision/{conversation_id}/note"),
    ("POST", "/dashboard/supervision/{conversation_id}/takeover"),
}
#: The person who has a conversation: "vraag hulp" and their notes (anyone else: 409).
HOLDER_ROUTES = {
    ("POST", "/dashboard/conversations/{conversation_id}/help"),
    ("GET", "/dashboard/conversations/{conversation_id}/notes"),
}
EVERYONE_ROUTES |= SUPERVISION_ROUTES | HOLDER_ROUTES

#: The roster (bot.web.roster): coordinators plan, swap and delete in the week view; everyone
#: sees their own upcoming shifts (each role tested in tests/bot/web/test_roster_pages.py too).
ROSTER_ROUTES = {
    ("GET", "/dashboard/rooster"),
    ("POST", "/dashboard/rooster"),
    ("POST", "/dashboard/rooster/{shift_id}/swap"),
    ("POST", "/dashboard/rooster/{shift_id}/delete"),
}
COORDINATOR_ROUTES |= ROSTER_ROUTES
EVERYONE_ROUTES |= {("GET", "/dashboard/mijn-diensten")}


def coordinator_only(method: str, path: str) -> bool:
    return path.startswith(COORDINATOR_PREFIXES) or (method, path) in COORDINATOR_ROUTES


def dashboard_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route under /dashboard, from the app itself."""
    found = set()
    for path, methods in app_routes(app):
        if path == "/dashboard" or path.startswith("/dashboard/"):
            for method in methods - {"HEAD", "OPTIONS"}:
                found.add((method, path))
    return sorted(found)


def concrete(path: str, conversation_id: str) -> str:
    """The path with its parameters filled in: a real conversation, made-up other ids."""
    return (path.replace("{conversation_id}", conversation_id)
            .replace("{text_id}", str(uuid.uuid4()))
            .replace("{block_id}", str(uuid.uuid4()))
            .replace("{user_id}", str(uuid.uuid4()))
            .replace("{correction_id}", str(uuid.uuid4()))
            .replace("{shift_id}", str(uuid.uuid4()))
            .replace("{entry_id}", "geldfit")  # a real catalogue entry (seeded from data/aanbod)
            .replace("{key}", "risk"))  # /dashboard/stats/export/{key}.csv: a real table


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return dashboard_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def waiting(client: TestClient, services: Services) -> str:
    """A conversation waiting in the volunteer queue."""
    client.get("/chat")
    parent_says(client, "Ik wil graag met iemand praten, ik voel me zo alleen", "1")
    with services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.queue is QueueName.volunteer
        return conversation.id


def test_every_dashboard_route_is_classified(app: FastAPI) -> None:
    routes = dashboard_routes(app)
    assert ("GET", "/dashboard") in routes and ("GET", "/dashboard/users") in routes
    unknown = [r for r in routes if not coordinator_only(*r) and r not in EVERYONE_ROUTES]
    assert not unknown, f"classify these new dashboard routes in this test: {unknown}"
    missing = (EVERYONE_ROUTES | CATALOGUE_ROUTES) - set(routes)
    assert not missing, f"routes this test expects but the app does not have: {missing}"


def test_anonymous_requests_are_refused(app: FastAPI, client: TestClient, waiting: str) -> None:
    client.cookies.clear()
    for method, path in dashboard_routes(app):
        url = concrete(path, waiting)
        if method == "GET":
            page = client.get(url, headers=BROWSER, follow_redirects=False)
            assert page.status_code == 303, (path, page.status_code)
            assert page.headers["location"].startswith("/login?next="), path
            script = client.get(url, headers=FETCH, follow_redirects=False)
            assert script.status_code == 401, (path, script.status_code)
        else:
            for headers in (BROWSER, FETCH):
                response = client.post(url, data={"csrf_token": "x"}, headers=headers, follow_redirects=False)
                assert response.status_code == 401, (path, response.status_code)
    stream = client.get("/dashboard/events", headers={"Accept": "text/event-stream"})
    assert stream.status_code == 401


def test_coordinator_routes_refuse_other_roles(
    app: FastAPI, client: TestClient, services: Services, waiting: str
) -> None:
    routes = [r for r in dashboard_routes(app) if coordinator_only(*r)]
    assert len(routes) >= 6
    people: list[Staff] = [staff(app, services, Role.volunteer), staff(app, services, Role.professional)]
    for person in people:
        for method, path in routes:
            url = concrete(path, waiting)
            if method == "GET":
                response = person.client.get(url, follow_redirects=False)
            else:
                response = person.post(url, {"reason": "test", "days": "7", "title": "t", "body": "b",
                                             "username": "nieuw", "role": "coordinator",
                                             "display_name": "Nieuw", "password": "x" * 12})
            assert response.status_code == 403, (person.person.role, method, path, response.status_code)
    with services.factory() as session:
        assert session.get(Conversation, waiting).status is ConversationStatus.queued  # not blocked

    coordinator = staff(app, services, Role.coordinator)
    for method, path in routes:
        if method == "GET":
            assert coordinator.client.get(concrete(path, waiting)).status_code == 200, path


def test_every_post_needs_the_csrf_token(
    app: FastAPI, client: TestClient, services: Services, waiting: str
) -> None:
    posts = [path for method, path in dashboard_routes(app) if method == "POST"]
    assert len(posts) >= 12
    coordinator = staff(app, services, Role.coordinator)
    volunteer = staff(app, services, Role.volunteer)

    def counts() -> tuple[int, int, int]:
        with services.factory() as session:
            return (session.scalar(select(func.count()).select_from(AuditLog)) or 0,
                    session.scalar(select(func.count()).select_from(Shift)) or 0,
                    session.scalar(select(func.count()).select_from(Conversation).where(
                        Conversation.status == ConversationStatus.queued)) or 0)

    before = counts()
    form = {"action": "start", "text": "hoi", "note": "n", "outcome": "helped", "entry_id": "x",
            "reason": "r", "days": "7", "title": "t", "body": "b"}
    for person in (coordinator, volunteer):
        for path in posts:
            if coordinator_only("POST", path) and person is volunteer:
                continue  # refused for the role already; the coordinator covers these
            url = concrete(path, waiting)
            missing = person.post(url, form, csrf=False)
            assert missing.status_code == 403, ("missing", path, missing.status_code)
            wrong = person.post(url, {**form, "csrf_token": "nep-" + person.csrf[4:]}, csrf=False)
            assert wrong.status_code == 403, ("wrong", path, wrong.status_code)
            other = person.post(url, {**form, "csrf_token": (volunteer if person is coordinator else coordinator).csrf},
                                csrf=False)
            assert other.status_code == 403, ("another session's", path, other.status_code)
            header = person.client.post(url, data=form, follow_redirects=False,
                                        headers={**FETCH, "X-CSRF-Token": "nep"})
            assert header.status_code == 403, ("header", path, header.status_code)
    assert counts() == before, "a refused POST changed something"

    # With the token the same request goes through (the check is not simply "always no").
    response = volunteer.post("/dashboard/shift", {"action": "start"})
    assert response.status_code == 303
    response = volunteer.client.post("/dashboard/shift", data={"action": "stop"},
                                     headers={**FETCH, "X-CSRF-Token": volunteer.csrf})
    assert response.status_code == 200 and response.json()["ok"] is True


def test_a_volunteer_cannot_take_a_professional_conversation(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    # A parent who chose a professional, without danger: for professionals only, even with no
    # professional present (only acute and high conversations are for everyone on shift).
    client.get("/chat")
    parent_says(client, "Ik wil graag met iemand praten, ik voel me zo alleen", "2")
    with services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.queue is QueueName.professional
        assert conversation.highest_risk not in (Risk.high, Risk.acute), conversation.highest_risk
    url = f"/dashboard/conversations/{conversation.id}"
    volunteer = staff(app, services, Role.volunteer)
    volunteer.post("/dashboard/shift", {"action": "start"})

    page = volunteer.client.get(url)
    assert page.status_code == 403 and "ik voel me zo alleen" not in page.text
    assert volunteer.client.get(f"{url}/messages?after=0", headers=FETCH).status_code == 403
    assert volunteer.post(f"{url}/claim").status_code == 403
    assert volunteer.post(f"{url}/claim", fetch=True).status_code == 403
    assert volunteer.post("/dashboard/claim-next").headers["location"] == "/dashboard?melding=niemand"
    assert volunteer.post(f"{url}/reply", {"text": "hoi"}).status_code in (403, 409)
    assert volunteer.post("/dashboard/shift", {"action": "start", "queue": "professional"}).status_code == 403
    assert conversation.id not in volunteer.client.get("/dashboard").text
    with services.factory() as session:
        assert session.get(Conversation, conversation.id).status is ConversationStatus.queued
        opened = session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "transcript_opened")) or 0
        assert opened == 0

    professional = staff(app, services, Role.professional)
    assert professional.client.get(url).status_code == 200
    assert professional.post(f"{url}/claim").status_code == 303


def test_an_acute_conversation_is_seen_by_a_volunteer_but_taken_by_the_professional_present(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    professional = staff(app, services, Role.professional, display_name="Mark")
    professional.post("/dashboard/shift", {"action": "start"})
    volunteer = staff(app, services, Role.volunteer)
    volunteer.post("/dashboard/shift", {"action": "start"})
    client.get("/chat")
    parent_says(client, "ik wil niet meer wakker worden")
    with services.factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.queue is QueueName.professional and conversation.highest_risk is Risk.acute
    url = f"/dashboard/conversations/{conversation.id}"

    # In the volunteer's list, with who takes care, and without "Oppakken".
    queue = volunteer.client.get("/dashboard")
    row = re.search(rf'<li class="row acute[^"]*"[^>]*data-conversation="{conversation.id}".*?</li>',
                    queue.text, re.DOTALL)
    assert row, queue.text
    assert "In dienst: Mark" in text_of(row.group(0)) and "/claim" not in row.group(0)
    # The card too (audited), saying who takes care; claiming it is the professional's.
    page = volunteer.client.get(url)
    assert page.status_code == 200 and "ik wil niet meer wakker worden" in page.text
    assert "Een hulpverlener is in dienst en pakt dit op: Mark" in text_of(page.text)
    assert 'id="claim-form"' not in page.text and 'id="coordinator-form"' not in page.text
    assert volunteer.post(f"{url}/claim").status_code == 403
    assert volunteer.post("/dashboard/claim-next").headers["location"] == "/dashboard?melding=niemand"
    with services.factory() as session:
        assert session.get(Conversation, conversation.id).status is ConversationStatus.queued
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "transcript_opened", AuditLog.user_id == volunteer.person.user_id)) == 1
    assert professional.post(f"{url}/claim").status_code == 303
    # Once Mark has it, the volunteer sees that (who takes care), not the transcript.
    taken = volunteer.client.get(url)
    assert taken.status_code == 409 and "opgepakt door Mark" in text_of(taken.text)
    others = re.search(r'id="list-others".*?</ul>', volunteer.client.get("/dashboard").text, re.DOTALL)
    assert others and conversation.id in others.group(0) and "Opgepakt door Mark" in text_of(others.group(0))


def test_supervision_routes_for_each_role(
    app: FastAPI, client: TestClient, services: Services, waiting: str
) -> None:
    """Every supervision route: a volunteer (on shift) and a professional off shift get 403 and
    change nothing; a professional and a coordinator on shift get through. The holder's routes:
    the one who has the conversation, and nobody else (409)."""
    holder = staff(app, services, Role.volunteer, display_name="Sanne")
    holder.post("/dashboard/shift", {"action": "start"})
    assert holder.post(f"/dashboard/conversations/{waiting}/claim").status_code == 303
    volunteer = staff(app, services, Role.volunteer)
    volunteer.post("/dashboard/shift", {"action": "start"})
    off_shift = staff(app, services, Role.professional)
    professional = staff(app, services, Role.professional)
    professional.post("/dashboard/shift", {"action": "start"})
    coordinator = staff(app, services, Role.coordinator)
    coordinator.post("/dashboard/shift", {"action": "start"})
    gets = sorted(p for m, p in SUPERVISION_ROUTES if m == "GET")
    posts = sorted(p for m, p in SUPERVISION_ROUTES if m == "POST")

    def holder_now() -> str:
        with services.factory() as session:
            return session.get(Conversation, waiting).claimed_by or ""

    def form() -> dict[str, str]:
        return {"text": "Een notitie.", "holder": holder_now(), "action": "request"}

    for person in (volunteer, off_shift):
        for path in gets:
            url = concrete(path, waiting)
            response = person.client.get(url, headers=FETCH if path.endswith("messages") else None)
            assert response.status_code == 403, (person.person.role, path, response.status_code)
        for path in posts:
            response = person.post(concrete(path, waiting), form())
            assert response.status_code == 403, (person.person.role, path, response.status_code)
    with services.factory() as session:
        assert holder_now() == holder.person.user_id
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action.in_(("supervision_opened", "supervision_note", "taken_over")))) == 0

    for person in (professional, coordinator):
        for path in gets:
            response = person.client.get(concrete(path, waiting))
            assert response.status_code == 200, (person.person.role, path, response.status_code)
        assert person.post(concrete("/dashboard/supervision/{conversation_id}/note", waiting),
                           form()).status_code == 303
        previous = holder_now()
        assert person.post(concrete("/dashboard/supervision/{conversation_id}/takeover", waiting),
                           form()).status_code == 303
        assert holder_now() == person.person.user_id != previous

    # Holder routes: the coordinator has it now; the others get 409.
    for method, path in sorted(HOLDER_ROUTES):
        url = concrete(path, waiting)
        for person in (holder, volunteer, professional):
            response = (person.client.get(url, headers=FETCH) if method == "GET"
                        else person.post(url, {"action": "request"}))
            assert response.status_code == 409, (person.person.role, path, response.status_code)
        response = (coordinator.client.get(url, headers=FETCH) if method == "GET"
                    else coordinator.post(url, {"action": "request"}))
        assert response.status_code in (200, 303), (path, response.status_code)
