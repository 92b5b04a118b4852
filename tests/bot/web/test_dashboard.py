"""The dashboard with the real app: a parent's conversation from the web chat to a volunteer and
back, the coordinators' pages, refusals with their Dutch messages, and the live event stream
(under a real uvicorn, since an endless stream is not what TestClient is for)."""

from __future__ import annotations

import html
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from bot.accounts.sessions import Person
from bot.accounts.users import add_user
from bot.config import Settings
from bot.labels import RISK_LABELS, THEME_LABELS
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    Block,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    Outbox,
    OutboxStatus,
    QueueName,
    Role,
    Shift,
    utcnow,
)
from bot.web.app import Services, create_app
from bot.web.auth import COOKIE
from handoff import events
from handoff.desk import Desk
from tests.channels.conftest import deliver, services  # noqa: F401 (services is a fixture)

PASSWORD = "een-lang-wachtwoord"
FETCH = {"X-Requested-With": "fetch"}
LONELY = "Ik wil graag met iemand praten, ik voel me zo alleen"


# Helpers (also used by test_dashboard_access.py) -------------------------------------------------

def app_routes(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """Every route of the app as (path, methods), routers included (recent FastAPI includes
    routers lazily, so app.routes alone does not list their routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        contexts: list = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    return [(route.path, frozenset(route.methods or ())) for route in contexts
            if getattr(route, "path", None) and getattr(route, "methods", None)]


def dashboard_app(settings: Settings, services: Services, *, run_worker: bool = False) -> FastAPI:
    """The real app: bot.web.app wires the login, the dashboard and the desk."""
    return create_app(settings, services, run_worker=run_worker)


@dataclass
class Staff:
    """A logged-in dashboard user with a client of their own (same app, own cookies)."""

    client: TestClient
    person: Person

    @property
    def csrf(self) -> str:
        return self.person.csrf_token

    def post(self, url: str, data: dict | None = None, *, fetch: bool = False,
             csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(url, data=form, headers=FETCH if fetch else None,
                                follow_redirects=False)


def make_user(services: Services, username: str, role: Role, display_name: str | None = None,
              languages: tuple[str, ...] = ("nl",)) -> str:
    with db.transaction(services.factory) as session:
        user = add_user(session, username=username, display_name=display_name or username.title(),
                        role=role, password=PASSWORD, languages=languages)
        return user.id


def staff(app: FastAPI, services: Services, role: Role, username: str | None = None,
          display_name: str | None = None) -> Staff:
    """A user of `role`, logged in (the session made by Auth.login, as POST /login does)."""
    username = username or f"{role.value[:4]}-{uuid.uuid4().hex[:6]}"
    make_user(services, username, role, display_name)
    person, token = services.auth.login(username, PASSWORD, "127.0.0.1")
    client = TestClient(app)
    client.cookies.set(COOKIE, token)
    return Staff(client, person)


def parent_says(client: TestClient, *texts: str) -> None:
    for text in texts:
        response = client.post("/chat/api/messages", json={"text": text, "client_id": uuid.uuid4().hex})
        assert response.status_code == 202, response.text


def parent_texts(client: TestClient, author: str | None = None) -> list[str]:
    items = client.get("/chat/api/messages").json()["messages"]
    return [m["text"] for m in items if author is None or m["from"] == author]


def only_conversation(services: Services) -> Conversation:
    with services.factory() as session:
        return session.scalars(select(Conversation)).one()


def ref_of(conversation_id: str) -> str:
    return "#" + conversation_id.replace("-", "")[:6]


def text_of(page: str) -> str:
    """The visible text of a page, roughly: tags out, entities decoded, spaces collapsed."""
    without = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.DOTALL)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", without))).strip()


def queued_parent(client: TestClient, services: Services) -> Conversation:
    client.get("/chat")
    parent_says(client, LONELY, "1")
    conversation = only_conversation(services)
    assert conversation.status is ConversationStatus.queued
    assert conversation.queue is QueueName.volunteer
    return conversation


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    return dashboard_app(settings, services)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The parent's browser (and the one that runs the app's lifespan)."""
    with TestClient(app) as test_client:
        yield test_client


# The whole flow ------------------------------------------------------------------------------------

def test_a_parent_reaches_a_volunteer_through_the_dashboard(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    conversation = queued_parent(client, services)
    ref = ref_of(conversation.id)

    # The volunteer logs in through the real login form.
    make_user(services, "sanne", Role.volunteer, "Sanne")
    volunteer = TestClient(app)
    login = volunteer.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token, login.text
    response = volunteer.post("/login", data={"username": "sanne", "password": PASSWORD,
                                              "csrf_token": token.group(1), "next": "/dashboard"},
                              follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    page = volunteer.get("/dashboard")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    shown = text_of(page.text)
    assert "Sanne" in shown and "vrijwilliger" in shown and "Niet in dienst" in shown
    assert "Gebruikers" not in shown  # coordinators only
    assert ref in shown and "webchat" in shown and "Nederlands" in shown and "vrijwilliger" in shown
    assert f"Risico {RISK_LABELS[conversation.highest_risk]}" in shown
    assert all(THEME_LABELS[theme] in shown for theme in conversation.themes)
    assert "Volgende oppakken" in shown and "Oppakken" in shown
    # No address, no pseudonym, no parent text on the queue page.
    assert conversation.pseudonym not in page.text and LONELY not in page.text

    response = volunteer.post("/dashboard/shift", data={"csrf_token": csrf, "action": "start"},
                              follow_redirects=False)
    assert response.status_code == 303
    page = volunteer.get(response.headers["location"])
    assert "Je dienst is begonnen" in page.text and "In dienst (vrijwilligers)" in text_of(page.text)
    with services.factory() as session:
        assert session.scalars(select(Shift)).one().queue is QueueName.volunteer

    fragment = volunteer.get("/dashboard/queue", headers=FETCH)
    assert fragment.status_code == 200 and ref in fragment.text and "<html" not in fragment.text

    # "Volgende oppakken" claims it and opens the conversation.
    response = volunteer.post("/dashboard/claim-next", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    url = f"/dashboard/conversations/{conversation.id}"
    assert response.headers["location"] == url
    page = volunteer.get(url)
    assert page.status_code == 200
    shown = text_of(page.text)
    assert f"Gesprek {ref}" in shown and "opgepakt door jou" in shown
    assert "De woorden van de ouder" in shown and LONELY in shown
    assert "Wat de bot al zei" in shown
    assert 'id="reply-text"' in page.text and 'for="reply-text"' in page.text
    assert "Terug in de wachtrij" in shown and "Afsluiten" in shown and "Doorzetten naar" in shown
    assert "Blokkeren" not in shown  # coordinators only
    assert conversation.pseudonym not in page.text
    with services.factory() as session:
        opened = session.scalars(select(AuditLog).where(AuditLog.action == "transcript_opened")).all()
        assert [(a.conversation_id, a.user_id is not None) for a in opened] == [(conversation.id, True)]

    # The parent gets the warm handover at once; the reply goes out via the outbox.
    response = volunteer.post(f"{url}/reply", data={"csrf_token": csrf, "text": "Hoi, fijn dat je schrijft."},
                              headers=FETCH)
    assert response.status_code == 200 and response.json()["ok"] is True
    deliver(services)
    with services.factory() as session:
        rows = session.scalars(select(Outbox).where(Outbox.conversation_id == conversation.id)).all()
        assert rows and all(row.status is OutboxStatus.sent for row in rows)
    person_texts = parent_texts(client, "person")
    assert len(person_texts) == 2, person_texts
    assert "Sanne" in person_texts[0] and "vrijwilliger" in person_texts[0]
    assert "niet opnieuw" in person_texts[0]
    assert person_texts[1] == "Hoi, fijn dat je schrijft."

    # The parent answers; the dashboard fetches only what is new.
    before = int(re.search(r'data-after="(\d+)"', page.text).group(1))
    parent_says(client, "dankjewel, het gaat niet goed met me")
    new = volunteer.get(f"{url}/messages?after={before}", headers=FETCH)
    assert new.status_code == 200
    numbers = [int(n) for n in re.findall(r'data-n="(\d+)"', new.text)]
    assert numbers and min(numbers) == before + 1 and new.headers["x-next"] == str(max(numbers))
    assert "Hoi, fijn dat je schrijft." in new.text and "het gaat niet goed met me" in new.text
    assert "Sanne" in new.text  # who wrote the person's messages
    assert volunteer.get(f"{url}/messages?after={max(numbers)}").text.strip() == ""

    # Close with an outcome and a corrected theme.
    response = volunteer.post(f"{url}/close", data={
        "csrf_token": csrf, "outcome": "helped", "themes": ["mental_health", "loneliness"],
        "closing_note": "Vond het fijn om te praten.", "referred_to": "",
    }, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard")
    assert "afgesloten" in volunteer.get(response.headers["location"]).text
    with services.factory() as session:
        closed = session.get(Conversation, conversation.id)
        assert closed.status is ConversationStatus.closed
        handoff = session.scalars(select(Handoff).where(Handoff.status == HandoffStatus.closed)).one()
        assert handoff.outcome == "helped"
        assert handoff.corrected_themes == ["mental_health", "loneliness"]
        assert handoff.closing_note == "Vond het fijn om te praten."


def test_refusals_are_shown_in_dutch(app: FastAPI, client: TestClient, services: Services) -> None:
    volunteer = staff(app, services, Role.volunteer, display_name="Noor")
    other = staff(app, services, Role.volunteer, display_name="Bram")
    volunteer.post("/dashboard/shift", {"action": "start"})

    # Nobody waits: back to the queue page with the message.
    response = volunteer.post("/dashboard/claim-next")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard?melding=niemand"
    assert "Er wacht nu niemand die jij kunt oppakken" in volunteer.client.get(response.headers["location"]).text
    assert volunteer.post("/dashboard/claim-next", fetch=True).json() == {
        "ok": True, "redirect": "/dashboard?melding=niemand"}

    conversation = queued_parent(client, services)
    url = f"/dashboard/conversations/{conversation.id}"
    assert volunteer.post(f"{url}/claim").status_code == 303

    # Someone else: 409 with the desk's Dutch message, as a page or as JSON.
    taken = other.post(f"{url}/claim")
    assert taken.status_code == 409
    assert "opgepakt" in text_of(taken.text) and "<main" in taken.text
    taken = other.post(f"{url}/claim", fetch=True)
    assert taken.status_code == 409 and "opgepakt" in taken.json()["error"]
    assert other.post(f"{url}/reply", {"text": "hallo"}, fetch=True).status_code == 409
    refused = other.client.get(url)
    assert refused.status_code == 409 and LONELY not in refused.text  # the transcript stays private
    assert "Dit gesprek is opgepakt door Noor." in text_of(refused.text)

    # Input a person can fix: 400 and a message, the reply not sent.
    empty = volunteer.post(f"{url}/reply", {"text": "   "}, fetch=True)
    assert empty.status_code == 400 and empty.json()["error"] == "Schrijf eerst een bericht."
    long = volunteer.post(f"{url}/reply", {"text": "x" * 4001}, fetch=True)
    assert long.status_code == 400 and "te lang" in long.json()["error"]
    no_outcome = volunteer.post(f"{url}/close", {"outcome": "gezellig"})
    assert no_outcome.status_code == 400 and "Kies hoe het gesprek is afgelopen" in no_outcome.text
    no_service = volunteer.post(f"{url}/close", {"outcome": "referred_service"})
    assert no_service.status_code == 400 and "dienst" in no_service.text
    no_note = volunteer.post(f"{url}/transfer", {"note": ""})
    assert no_note.status_code == 400 and "notitie" in no_note.text
    bad_theme = volunteer.post(f"{url}/close", {"outcome": "helped", "themes": ["onzin"]})
    assert bad_theme.status_code == 400
    assert only_conversation(services).status is ConversationStatus.claimed

    # Transfer with a note; the note is on the next handover card.
    response = volunteer.post(f"{url}/transfer", {"note": "Wil graag een hulpverlener spreken."})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard?melding=doorgezet"
    assert only_conversation(services).queue is QueueName.professional
    professional = staff(app, services, Role.professional, display_name="Mark")
    page = professional.client.get(url)
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "Wil graag een hulpverlener spreken." in shown and "Notities bij doorzetten" in shown
    # The volunteer can no longer open it (it waits for a professional now).
    assert volunteer.client.get(url).status_code == 403

    # Release keeps it in the queue.
    assert professional.post(f"{url}/claim").status_code == 303
    response = professional.post(f"{url}/release")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard?melding=teruggezet"
    assert only_conversation(services).status is ConversationStatus.queued

    # An unknown conversation: 404 with a message.
    missing = volunteer.client.get(f"/dashboard/conversations/{uuid.uuid4()}")
    assert missing.status_code == 404 and "bestaat niet" in missing.text


def test_acute_conversations_stand_out_for_who_may_take_them(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    client.get("/chat")
    parent_says(client, "ik wil niet meer wakker worden")
    conversation = only_conversation(services)
    assert conversation.queue is QueueName.professional and conversation.priority == 0
    ref = ref_of(conversation.id)

    professional = staff(app, services, Role.professional)
    page = professional.client.get("/dashboard")
    row = re.search(
        rf'<li class="row acute[^"]*"[^>]*data-conversation="{conversation.id}".*?</li>',
        page.text, re.DOTALL,
    )
    assert row, page.text
    assert "ACUUT" in row.group(0) and "⚠" in row.group(0)  # not by colour alone
    assert 'data-professional="ja"' in page.text

    volunteer = staff(app, services, Role.volunteer)
    page = volunteer.client.get("/dashboard")
    assert ref not in page.text and 'data-professional="nee"' in page.text

    # While a professional has it, an acute message raises an alert on the conversation page.
    url = f"/dashboard/conversations/{conversation.id}"
    assert professional.post(f"{url}/claim").status_code == 303
    with db.transaction(services.factory) as session:
        session.execute(update(Conversation).where(Conversation.id == conversation.id)
                        .values(acute_alert_at=utcnow()))
    page = professional.client.get(url)
    alert = re.search(r'<div class="alert acute" role="alert".*?</div>', page.text, re.DOTALL)
    assert alert and "ACUUT" in alert.group(0) and "Gezien" in alert.group(0)
    response = professional.post(f"{url}/acknowledge")
    assert response.status_code == 303
    assert only_conversation(services).acute_alert_at is None
    assert 'class="alert acute"' not in professional.client.get(url).text


def test_coordinators_keep_standard_texts_and_blocks(
    app: FastAPI, client: TestClient, services: Services
) -> None:
    coordinator = staff(app, services, Role.coordinator, display_name="Fatima")
    page = coordinator.client.get("/dashboard")
    shown = text_of(page.text)
    for link in ("Wachtrij", "Gebruikers", "Standaardteksten", "Blokkades"):
        assert link in shown
    assert 'for="shift-queue"' in page.text  # coordinators choose a queue for their shift
    response = coordinator.post("/dashboard/shift", {"action": "start", "queue": "volunteer"})
    assert response.status_code == 303
    with services.factory() as session:
        assert session.scalars(select(Shift)).one().queue is QueueName.volunteer
    assert coordinator.post("/dashboard/shift", {"action": "pauze"}).status_code == 400

    response = coordinator.post("/dashboard/texts", {"title": "Even geduld",
                                                     "body": "Ik lees even rustig wat je schreef."})
    assert response.status_code == 303
    assert coordinator.post("/dashboard/texts", {"title": "", "body": "x"}).status_code == 400
    page = coordinator.client.get(response.headers["location"])
    assert "De standaardtekst is toegevoegd" in page.text and "Even geduld" in page.text

    conversation = queued_parent(client, services)
    url = f"/dashboard/conversations/{conversation.id}"
    assert coordinator.post(f"{url}/claim").status_code == 303
    page = coordinator.client.get(url)
    assert 'data-insert="Ik lees even rustig wat je schreef."' in page.text  # a quick insert
    assert "Blokkeren" in text_of(page.text)

    text_id = re.search(r'action="/dashboard/texts/([^/"]+)/remove"',
                        coordinator.client.get("/dashboard/texts").text).group(1)
    assert coordinator.post(f"/dashboard/texts/{text_id}/remove").status_code == 303
    assert "Even geduld" not in coordinator.client.get("/dashboard/texts").text

    assert coordinator.post(f"{url}/block", {"reason": "Scheldt steeds", "days": "abc"}).status_code == 400
    assert coordinator.post(f"{url}/block", {"reason": "Scheldt steeds", "days": "0"}).status_code == 400
    response = coordinator.post(f"{url}/block", {"reason": "Scheldt steeds", "days": "7"})
    assert response.status_code == 303
    page = coordinator.client.get("/dashboard/blocks")
    assert "Scheldt steeds" in page.text and conversation.pseudonym not in page.text
    block_id = re.search(r'action="/dashboard/blocks/([^/"]+)/lift"', page.text).group(1)
    assert coordinator.post(f"/dashboard/blocks/{block_id}/lift").status_code == 303
    with services.factory() as session:
        assert session.get(Block, block_id).lifted_at is not None
    assert "Scheldt steeds" not in coordinator.client.get("/dashboard/blocks").text


# Live events (a real server) ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(settings: Settings, services: Services) -> Iterator[tuple[str, FastAPI]]:
    # A desk with a key prefix of its own: other test runs on the same Redis publish on "ot:events".
    services.desk = Desk(settings, services.factory, services.redis, services.texts, services.catalogue,
                         prefix=f"test{uuid.uuid4().hex[:8]}")
    app = dashboard_app(settings, services)
    app.state.sse_ping_seconds = 0.5
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield url, app
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class EventReader:
    """Reads /dashboard/events in a thread; keeps comments and events apart."""

    def __init__(self, url: str, token: str) -> None:
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.content_type = ""
        self._client = httpx.Client(base_url=url, cookies={COOKIE: token},
                                    timeout=httpx.Timeout(10, read=30))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/dashboard/events",
                                     headers={"Accept": "text/event-stream"}) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif line.startswith("data:"):
                        self.events.append(json.loads(line[5:]))
        except httpx.HTTPError:
            pass

    def wait(self, predicate, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(timeout=5)


def subscribers(services: Services, prefix: str) -> int:
    [(_, count)] = services.redis.pubsub_numsub(events.channel(prefix))
    return int(count)


def test_event_stream(server: tuple[str, FastAPI], services: Services) -> None:
    url, _ = server
    volunteer_id = make_user(services, "vera", Role.volunteer)
    person, token = services.auth.login("vera", PASSWORD, "127.0.0.1")
    prefix = services.desk.prefix
    services.desk.start_shift(person)
    long_ago = utcnow() - timedelta(hours=1)
    with db.transaction(services.factory) as session:
        session.execute(update(Shift).where(Shift.user_id == volunteer_id).values(last_seen_at=long_ago))

    # Anonymous: refused (an event stream is not a page, so no redirect).
    anonymous = httpx.get(f"{url}/dashboard/events", headers={"Accept": "text/event-stream"})
    assert anonymous.status_code == 401

    before = subscribers(services, prefix)
    reader = EventReader(url, token)
    try:
        assert reader.wait(lambda: "verbonden" in reader.comments), reader.comments
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        # A ping every interval (0.5 s here, 15 s by default), and a heartbeat for the shift.
        assert reader.wait(lambda: reader.comments.count("ping") >= 2)
        with services.factory() as session:
            seen = session.scalars(select(Shift)).one().last_seen_at
        assert seen is not None and seen.replace(tzinfo=None) > long_ago.replace(tzinfo=None)

        # Only events of the queues this person may take (or about them), and the acute and high
        # ones of every queue (everyone on shift sees those). Pub/sub keeps order, so once the
        # later volunteer-queue event is here, the earlier professional ones are too, or not.
        marker = str(uuid.uuid4())
        hidden = str(uuid.uuid4())
        acute = str(uuid.uuid4())

        def arrived() -> bool:
            events.publish(services.redis, events.Event(type="queued", conversation_id=hidden,
                                                        queue="professional", priority=3), prefix=prefix)
            events.publish(services.redis, events.Event(type="queued", conversation_id=acute,
                                                        queue="professional", priority=0), prefix=prefix)
            events.publish(services.redis, events.Event(type="queued", conversation_id=marker,
                                                        queue="volunteer", priority=3), prefix=prefix)
            time.sleep(0.2)
            return any(e.get("conversation_id") == marker for e in reader.events)

        assert reader.wait(arrived), reader.events
        assert not any(e.get("conversation_id") == hidden for e in reader.events)
        assert any(e.get("conversation_id") == acute for e in reader.events)
        about_me = str(uuid.uuid4())
        events.publish(services.redis, events.Event(type="acute", conversation_id=about_me,
                                                    queue="professional", user_id=volunteer_id),
                       prefix=prefix)
        assert reader.wait(lambda: any(e.get("conversation_id") == about_me for e in reader.events))
        # Events carry no text and no address.
        for event in reader.events:
            assert set(event) <= {"type", "conversation_id", "queue", "user_id", "priority"}
        assert subscribers(services, prefix) >= before + 1
    finally:
        reader.close()
    # The client went away: the stream ends and its subscription with it.
    assert reader.wait(lambda: subscribers(services, prefix) <= before, timeout=10)
