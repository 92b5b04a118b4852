"""Supervision (handoff.supervision), through the desk with the real pipeline, SQL and Redis: the
live list, read-only opening (audited, changes nothing), a note the parent never gets, a takeover
with the warm handover's words, "vraag hulp" to the supervisors present only, and who may do it:
coordinators and professionals on shift, never a volunteer. Also the migration, up and down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, inspect, select, text

from bot.accounts.sessions import Person
from bot.storage import db
from bot.storage.models import (
    AuditLog,
    Author,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    Message,
    Outbox,
    Role,
    Shift,
    SupervisionNote,
    aware,
)
from bot.web.app import Services
from handoff.desk import Conflict, Invalid, NotAllowed
from handoff.events import channel
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.handoff.support import status
from tests.people import Parent, person

NOTE = "Vraag eens door naar haar slaap, en noem de huisartsenpost."


def audits(services: Services, action: str, conversation_id: str | None = None) -> list[AuditLog]:
    with services.factory() as session:
        query = select(AuditLog).where(AuditLog.action == action)
        if conversation_id is not None:
            query = query.where(AuditLog.conversation_id == conversation_id)
        return list(session.scalars(query.order_by(AuditLog.id)))


def outbox_texts(services: Services, conversation_id: str) -> list[str]:
    with services.factory() as session:
        return list(session.scalars(select(Outbox.text).where(Outbox.conversation_id == conversation_id)))


def counts(services: Services, conversation_id: str) -> tuple[int, int, int]:
    with services.factory() as session:
        return (session.scalar(select(func.count()).select_from(Message).where(
                    Message.conversation_id == conversation_id)) or 0,
                session.scalar(select(func.count()).select_from(Outbox).where(
                    Outbox.conversation_id == conversation_id)) or 0,
                session.scalar(select(func.count()).select_from(Handoff).where(
                    Handoff.conversation_id == conversation_id)) or 0)


@pytest.fixture
def scene(services: Services) -> tuple[Parent, str, Person, Person]:
    """A parent with volunteer Sanne (opened: the handover went), and coordinator Ria on shift."""
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    services.desk.claim(conversation_id, sanne)
    services.desk.open(conversation_id, sanne)
    ria = person(services, Role.coordinator, name="Ria")
    services.desk.start_shift(ria)
    return parent, conversation_id, sanne, ria


class Listener:
    """The desk's live events, as a dashboard's stream gets them (before its per-person filter)."""

    def __init__(self, services: Services) -> None:
        self.pubsub = services.redis.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel(services.settings.redis_prefix))
        self.pubsub.get_message(timeout=1)  # the subscribe confirmation

    def events(self) -> list[dict[str, object]]:
        found = []
        while (message := self.pubsub.get_message(timeout=0.3)) is not None:
            if message.get("type") == "message":
                found.append(json.loads(message["data"]))
        return found

    def close(self) -> None:
        self.pubsub.close()


@pytest.fixture
def listener(services: Services) -> Iterator[Listener]:
    found = Listener(services)
    yield found
    found.close()


def test_the_live_list_shows_who_has_what_since_when_and_the_silence(
        services: Services, scene: tuple[Parent, str, Person, Person]) -> None:
    _parent, conversation_id, sanne, ria = scene
    waiting = Parent(services)
    waiting_id = waiting.wants_volunteer()
    last = aware(status(services, conversation_id).last_inbound_at)
    assert last is not None
    services.desk.clock = lambda: last + timedelta(minutes=7)
    items = {i.conversation_id: i for i in services.desk.supervision.live(ria)}
    assert set(items) == {conversation_id, waiting_id}
    mine = items[conversation_id]
    assert mine.holder_name == "Sanne" and mine.holder_role is Role.volunteer
    assert mine.status is ConversationStatus.claimed and mine.parent_silent_minutes == 7
    assert mine.since is not None and mine.since_minutes is not None and mine.since_minutes >= 6
    assert items[waiting_id].holder_name is None and items[waiting_id].status is ConversationStatus.queued
    # A help request comes first.
    services.desk.supervision.request_help(conversation_id, sanne)
    assert services.desk.supervision.live(ria)[0].conversation_id == conversation_id


def test_volunteers_are_refused_everywhere_and_supervisors_need_a_shift(
        services: Services, scene: tuple[Parent, str, Person, Person]) -> None:
    _parent, conversation_id, sanne, _ria = scene
    supervision = services.desk.supervision
    other = person(services, name="Bas")  # another volunteer, on shift
    services.desk.start_shift(other)
    before = counts(services, conversation_id)
    for call in (lambda: supervision.live(other), lambda: supervision.watch(conversation_id, other),
                 lambda: supervision.messages_after(conversation_id, other, 0),
                 lambda: supervision.note(conversation_id, other, "psst"),
                 lambda: supervision.take_over(conversation_id, other, sanne.user_id)):
        with pytest.raises(NotAllowed) as refused:
            call()
        assert refused.value.reason == "supervisors_only"
    # Nor the ordinary page: a volunteer never sees another volunteer's conversation.
    with pytest.raises(Conflict):
        services.desk.card(conversation_id, other)
    assert supervision.for_holder(conversation_id, other) is None
    # A professional off shift does not supervise; on shift they do.
    mark = person(services, Role.professional, name="Mark")
    with pytest.raises(NotAllowed) as refused:
        supervision.live(mark)
    assert refused.value.reason == "supervise_off_shift"
    services.desk.start_shift(mark)
    assert [i.conversation_id for i in supervision.live(mark)] == [conversation_id]
    assert status(services, conversation_id).claimed_by == sanne.user_id
    assert counts(services, conversation_id) == before
    assert audits(services, "supervision_opened") == [] and audits(services, "taken_over") == []


def test_opening_read_only_is_audited_each_time_and_changes_nothing(
        services: Services, scene: tuple[Parent, str, Person, Person]) -> None:
    parent, conversation_id, sanne, ria = scene
    parent.says("ik slaap al dagen slecht")
    before = counts(services, conversation_id)
    replies = parent.replies()
    for _ in range(2):
        view = services.desk.supervision.watch(conversation_id, ria)
        assert view.holder_name == "Sanne" and view.can_take_over and view.can_note
        assert any("slaap al dagen slecht" in m.text for m in view.messages)
    opened = audits(services, "supervision_opened", conversation_id)
    assert [(a.user_id, (a.detail or {}).get("holder")) for a in opened] == [(ria.user_id, sanne.user_id)] * 2
    after = status(services, conversation_id)
    assert after.status is ConversationStatus.claimed and after.claimed_by == sanne.user_id
    assert counts(services, conversation_id) == before and parent.replies() == replies
    # The ordinary opening (the card) is Sanne's alone: Ria's read-only opening is not one.
    assert {a.user_id for a in audits(services, "transcript_opened", conversation_id)} == {sanne.user_id}
    assert [m.n for m in services.desk.supervision.messages_after(conversation_id, ria, 0)][-1] == before[0]


def test_a_note_reaches_only_the_holder_never_the_parent(
        services: Services, scene: tuple[Parent, str, Person, Person], listener: Listener,
        caplog: pytest.LogCaptureFixture) -> None:
    parent, conversation_id, sanne, ria = scene
    caplog.set_level("DEBUG")
    before = counts(services, conversation_id)
    services.desk.supervision.note(conversation_id, ria, NOTE)
    # Not to the parent: no message, no outbox row, nothing in what the parent's chat shows.
    assert counts(services, conversation_id) == before
    assert all(NOTE not in t for t in outbox_texts(services, conversation_id))
    assert all(NOTE not in t for _, t in parent.replies())
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(Message.text.contains("huisartsenpost"))) == 0
    # Not in the audit log or any log line either.
    note_audit = audits(services, "supervision_note", conversation_id)
    assert len(note_audit) == 1 and note_audit[0].detail == {"to": sanne.user_id}
    assert "huisartsenpost" not in caplog.text
    # Sanne sees it on her page (and it is marked seen); the list of events told only her.
    held = services.desk.supervision.for_holder(conversation_id, sanne)
    assert held is not None and [(n.text, n.author_name) for n in held.notes] == [(NOTE, "Ria")]
    with services.factory() as session:
        assert session.scalars(select(SupervisionNote)).one().seen_at is not None
    assert [(e["type"], e["user_id"]) for e in listener.events() if e["type"] == "note"] == [("note", sanne.user_id)]
    # Someone who takes the conversation later does not read notes meant for Sanne.
    services.desk.release(conversation_id, sanne)
    bas = person(services, name="Bas")
    services.desk.start_shift(bas)
    services.desk.claim(conversation_id, bas)
    held = services.desk.supervision.for_holder(conversation_id, bas)
    assert held is not None and held.notes == []
    # Empty or too long: refused.
    with pytest.raises(Invalid):
        services.desk.supervision.note(conversation_id, ria, "   ")
    with pytest.raises(Invalid):
        services.desk.supervision.note(conversation_id, ria, "x" * 2001)


def test_a_takeover_moves_the_conversation_and_the_parent_hears_the_warm_words(
        services: Services, scene: tuple[Parent, str, Person, Person], listener: Listener) -> None:
    parent, conversation_id, sanne, ria = scene
    services.desk.supervision.take_over(conversation_id, ria, sanne.user_id)
    after = status(services, conversation_id)
    assert after.status is ConversationStatus.claimed and after.claimed_by == ria.user_id
    author, words = parent.replies()[-1]
    # The very words of a handover (data/messages/nl.yml "handover"), with Ria's name and role.
    expected = services.texts.get("handover", "nl", name="Ria", role=services.texts.get("role_coordinator", "nl"))
    assert (author, words) == (Author.person, expected)
    assert expected in outbox_texts(services, conversation_id)
    taken = audits(services, "taken_over", conversation_id)
    assert [(a.user_id, (a.detail or {}).get("from")) for a in taken] == [(ria.user_id, sanne.user_id)]
    with services.factory() as session:
        rows = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id)
                               .order_by(Handoff.created_at)).all()
        assert [(h.status, h.claimed_by) for h in rows][-2:] == [
            (HandoffStatus.transferred, sanne.user_id), (HandoffStatus.claimed, ria.user_id)]
    assert services.desk.index.claimed_by(conversation_id) == ria.user_id
    seen = [(e["type"], e.get("user_id")) for e in listener.events()]
    assert ("takeover", sanne.user_id) in seen and ("claimed", ria.user_id) in seen
    # Sanne has it no more; Ria replies; opening it does not greet the parent twice.
    with pytest.raises(Conflict):
        services.desk.reply(conversation_id, sanne, "hallo?")
    services.desk.open(conversation_id, ria)
    services.desk.reply(conversation_id, ria, "Ik ben er nu voor je.")
    assert [t for _, t in parent.replies()].count(expected) == 1
    # A second press (or another supervisor) with the holder it saw: refused, not taken twice.
    mark = person(services, Role.professional, name="Mark")
    services.desk.start_shift(mark)
    with pytest.raises(Conflict) as refused:
        services.desk.supervision.take_over(conversation_id, mark, sanne.user_id)
    assert refused.value.reason == "holder_changed"
    assert status(services, conversation_id).claimed_by == ria.user_id


def test_help_alerts_the_supervisors_present_only_and_is_cleared(
        services: Services, scene: tuple[Parent, str, Person, Person], listener: Listener) -> None:
    _parent, conversation_id, sanne, ria = scene
    mark = person(services, Role.professional, name="Mark")  # on shift, dashboard away
    services.desk.start_shift(mark)
    joost = person(services, Role.coordinator, name="Joost")  # not on shift
    bas = person(services, name="Bas")  # a volunteer on shift
    services.desk.start_shift(bas)
    ria_at = services.desk.clock()
    with services.factory() as session, session.begin():
        shift = session.scalars(select(Shift).where(Shift.user_id == mark.user_id)).one()
        shift.started_at = shift.last_seen_at = ria_at - timedelta(hours=1)
    listener.events()
    alerted = services.desk.supervision.request_help(conversation_id, sanne)
    assert alerted == 1
    helps = [e for e in listener.events() if e["type"] == "help"]
    assert [(e["user_id"], e["conversation_id"]) for e in helps] == [(ria.user_id, conversation_id)]
    assert joost.user_id not in str(helps) and bas.user_id not in str(helps)
    assert status(services, conversation_id).help_requested_by == sanne.user_id
    assert services.desk.supervision.help_waiting(ria) == 1
    assert services.desk.supervision.help_waiting(mark) == 1  # on shift, though away now
    assert services.desk.supervision.help_waiting(joost) == 0  # off shift
    assert services.desk.supervision.help_waiting(bas) == 0  # a volunteer
    assert audits(services, "help_requested", conversation_id)[0].detail == {"alerted": 1}
    held = services.desk.supervision.for_holder(conversation_id, sanne)
    assert held is not None and held.help_requested_at is not None
    # Only the one who has it may ask.
    with pytest.raises(Conflict):
        services.desk.supervision.request_help(conversation_id, bas)
    # Ria opens it: answered (cleared), Sanne and Ria are told.
    services.desk.supervision.watch(conversation_id, ria)
    assert status(services, conversation_id).help_requested_at is None
    assert len(audits(services, "help_answered", conversation_id)) == 1
    cleared = {e["user_id"] for e in listener.events() if e["type"] == "help_cleared"}
    assert cleared == {sanne.user_id, ria.user_id}
    # Sanne's request does not just vanish from her page: she sees who answered it.
    held = services.desk.supervision.for_holder(conversation_id, sanne)
    assert held is not None and held.help_requested_at is None and held.help_answered_by == "Ria"
    # Asked again and withdrawn by Sanne herself.
    services.desk.supervision.request_help(conversation_id, sanne)
    services.desk.supervision.withdraw_help(conversation_id, sanne)
    assert status(services, conversation_id).help_requested_at is None
    assert len(audits(services, "help_withdrawn", conversation_id)) == 1
    held = services.desk.supervision.for_holder(conversation_id, sanne)
    assert held is not None and held.help_answered_by is None  # her new request was not answered
    # Nobody present: the mark stays for whoever comes, and the holder hears it (0 alerted).
    services.desk.stop_shift(ria.user_id)
    services.desk.supervision.request_help(conversation_id, sanne)  # Sanne still has it
    assert status(services, conversation_id).help_requested_at is not None


def test_a_takeover_answers_help_and_a_returned_conversation_drops_the_mark(
        services: Services, scene: tuple[Parent, str, Person, Person]) -> None:
    _parent, conversation_id, sanne, ria = scene
    services.desk.supervision.request_help(conversation_id, sanne)
    services.desk.supervision.take_over(conversation_id, ria, sanne.user_id)
    assert status(services, conversation_id).help_requested_at is None
    parent2 = Parent(services)
    other_id = parent2.wants_volunteer()
    services.desk.claim(other_id, sanne)
    services.desk.supervision.request_help(other_id, sanne)
    services.desk.release(other_id, sanne)  # back in the queue: the request no longer counts
    item = next(i for i in services.desk.supervision.live(ria) if i.conversation_id == other_id)
    assert item.help_requested_at is None and item.holder_name is None
    # Sanne takes it again later: her old request does not come back to life (it was about
    # the claim she gave up; a supervisor would come for a call for help nobody made now).
    services.desk.clock = lambda: aware(status(services, other_id).queued_at) + timedelta(minutes=5)  # type: ignore[operator]
    services.desk.claim(other_id, sanne)
    item = next(i for i in services.desk.supervision.live(ria) if i.conversation_id == other_id)
    assert item.help_requested_at is None and item.holder_name == "Sanne"
    assert services.desk.supervision.help_waiting(ria) == 0
    held = services.desk.supervision.for_holder(other_id, sanne)
    assert held is not None and held.help_requested_at is None


def test_notes_go_with_their_conversation(services: Services,
                                          scene: tuple[Parent, str, Person, Person]) -> None:
    parent, conversation_id, _sanne, ria = scene
    services.desk.supervision.note(conversation_id, ria, NOTE)
    parent.says("stop en wis")
    with services.factory() as session:
        assert session.get(Conversation, conversation_id) is None
        assert session.scalar(select(func.count()).select_from(SupervisionNote)) == 0


def test_migration_0011_up_and_down(any_database_url: str) -> None:
    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    try:
        def shape() -> tuple[bool, set[str]]:
            inspector = inspect(engine)
            columns = {c["name"] for c in inspector.get_columns("conversations")}
            return "supervision_notes" in inspector.get_table_names(), columns & {"help_requested_at",
                                                                                     "help_requested_by"}
        assert shape() == (True, {"help_requested_at", "help_requested_by"})
        db.downgrade(any_database_url, "0010")
        assert shape() == (False, set())
        # The partial unique index of 0007 survives the way down (no copy of the table).
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = "
                                              "'uq_conversations_open_sender'")).scalar()
            else:
                sql = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                              "'uq_conversations_open_sender'")).scalar()
        assert sql is not None and "closed" in sql
        db.upgrade(any_database_url)
        assert shape() == (True, {"help_requested_at", "help_requested_by"})
    finally:
        engine.dispose()


def test_reading_the_live_transcript_without_opening_it_is_audited_too(
        services: Services, scene: tuple[Parent, str, Person, Person]) -> None:
    """The read-only view's refresh route gives the transcript too (from position 0: all of it),
    so a supervisor who never opened the page is still in the audit log: once, not per refresh."""
    parent, conversation_id, sanne, ria = scene
    parent.says("ik slaap al dagen slecht")
    assert audits(services, "supervision_opened", conversation_id) == []
    read = services.desk.supervision.messages_after(conversation_id, ria, 0)
    assert any("slaap al dagen slecht" in m.text for m in read)
    opened = audits(services, "supervision_opened", conversation_id)
    assert [(a.user_id, (a.detail or {}).get("holder")) for a in opened] == [(ria.user_id, sanne.user_id)]
    services.desk.supervision.messages_after(conversation_id, ria, 0)
    services.desk.supervision.watch(conversation_id, ria)
    services.desk.supervision.messages_after(conversation_id, ria, 0)
    assert len(audits(services, "supervision_opened", conversation_id)) == 2  # the refresh, the page
