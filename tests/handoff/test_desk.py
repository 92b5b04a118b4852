"""The desk with the real pipeline, SQL (SQLite or PostgreSQL) and Redis: queueing, claiming, the
warm handover, the silent bot, alerts, returning with the place kept, transfer, closing with
corrections, referral consent, blocks, continuity, and the index rebuilt after Redis lost it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.accounts.sessions import Person
from bot.config import Settings
from bot.storage.models import (
    AuditLog,
    Author,
    Block,
    Channel,
    Conversation,
    ConversationStatus,
    Correction,
    Handoff,
    Message,
    Outbox,
    QueueName,
    Role,
    Shift,
    User,
    utcnow,
)
from bot.triage.types import Risk
from bot.web.app import Services
from handoff.desk import Conflict, NotAllowed, Outcome
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person


def status(services: Services, conversation_id: str) -> Conversation:
    with services.factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation


def test_asking_for_a_person_queues_and_indexes(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    assert status(services, conversation_id).status is ConversationStatus.queued
    assert status(services, conversation_id).preferred_kind is QueueName.volunteer
    assert services.desk.index.waiting(QueueName.volunteer) == [conversation_id]


def test_opening_a_claim_sends_the_warm_handover_and_the_bot_goes_silent(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    assert services.desk.claim_next(sanne) == conversation_id
    conversation = status(services, conversation_id)
    assert conversation.status is ConversationStatus.claimed and conversation.claimed_by == sanne.user_id
    # Not at the claim: Sanne has not read anything yet. When she opens the conversation, yes.
    assert parent.replies()[-1][0] is Author.bot
    services.desk.open(conversation_id, sanne)
    author, handover = parent.replies()[-1]
    assert author is Author.person and "Sanne" in handover and "vrijwilliger" in handover
    assert "niet opnieuw" in handover  # they need not tell it again
    services.desk.open(conversation_id, sanne)  # a reload: once per claim
    assert [text for _, text in parent.replies()].count(handover) == 1
    before = len(parent.replies())
    parent.says("waar vind ik een verloskundige")  # the bot would answer this; not now
    parent.says("hoe laat zijn jullie open")
    assert len(parent.replies()) == before
    services.desk.reply(conversation_id, sanne, "Wat fijn dat je schrijft. Hoe gaat het nu?")
    assert parent.replies()[-1] == (Author.person, "Wat fijn dat je schrijft. Hoe gaat het nu?")
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.conversation_id == conversation_id, Outbox.text.contains("Sanne"))) == 1


def test_acute_message_while_claimed_alerts_the_person_not_the_bot(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services)
    services.desk.start_shift(sanne)
    services.desk.claim(conversation_id, sanne)
    before = len(parent.replies())
    parent.says("ik wil niet meer leven, ik heb de pillen al klaarliggen")
    assert len(parent.replies()) == before  # the person answers, not the bot
    assert status(services, conversation_id).acute_alert_at is not None
    card = services.desk.card(conversation_id, sanne)
    assert card.acute_alert and card.risk is Risk.acute
    services.desk.acknowledge_alert(conversation_id, sanne)
    assert status(services, conversation_id).acute_alert_at is None


def test_release_keeps_the_place_and_the_bot_speaks_again(services: Services) -> None:
    first, second = Parent(services), Parent(services)
    first_id = first.wants_volunteer()
    second_id = second.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    services.desk.claim(first_id, sanne)
    assert services.desk.index.waiting(QueueName.volunteer) == [second_id]
    services.desk.release(first_id, sanne)
    assert services.desk.index.waiting(QueueName.volunteer) == [first_id, second_id]
    assert "Sanne moest stoppen" in first.replies()[-1][1]
    first.says("is er al iemand?")
    assert first.replies()[-1][0] is Author.bot  # queued again: the bot answers ("added")


def test_going_off_shift_and_idle_claims_return_to_the_queue(settings: Settings, services: Services) -> None:
    parent_a, parent_b = Parent(services), Parent(services)
    a, b = parent_a.wants_volunteer(), parent_b.wants_volunteer()
    sanne, mark = person(services), person(services)
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    services.desk.claim(a, sanne)
    services.desk.claim(b, mark)
    assert services.desk.stop_shift(sanne.user_id) == 1
    assert status(services, a).status is ConversationStatus.queued
    # Mark's dashboard went away: past CLAIM_IDLE_MINUTES his claim returns too.
    long_ago = utcnow() - timedelta(minutes=settings.claim_idle_minutes + 1)
    with services.factory() as session, session.begin():
        shift = session.scalar(select(Shift).where(Shift.user_id == mark.user_id, Shift.ended_at.is_(None)))
        assert shift is not None
        shift.last_seen_at = shift.started_at = long_ago
        conversation = session.get(Conversation, b)
        assert conversation is not None
        conversation.claimed_at = long_ago
        for message in conversation.messages:
            if message.user_id == mark.user_id:
                message.created_at = long_ago
    assert services.desk.release_idle() == 1
    assert services.desk.index.waiting(QueueName.volunteer) == [a, b]  # places kept


def test_a_volunteer_cannot_take_the_professional_queue(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.says("mijn vriend slaat me als hij gedronken heeft en ik ben zwanger")
    assert status(services, conversation_id).queue is QueueName.professional
    volunteer, professional = person(services), person(services, Role.professional)
    with pytest.raises(NotAllowed):
        services.desk.claim(conversation_id, volunteer)
    assert services.desk.claim_next(volunteer) is None
    assert services.desk.claim_next(professional) == conversation_id


def test_transfer_carries_a_note_to_the_next_card(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne, mark = person(services, name="Sanne"), person(services, Role.professional, name="Mark")
    services.desk.claim(conversation_id, sanne)
    services.desk.transfer(conversation_id, sanne, "Ze slaapt al weken niet, wil praten over somberheid.")
    conversation = status(services, conversation_id)
    assert conversation.status is ConversationStatus.queued and conversation.queue is QueueName.professional
    assert "hulpverlener" in parent.replies()[-1][1]
    card = services.desk.card(conversation_id, mark)
    assert card.transfer_notes and "somberheid" in card.transfer_notes[0][1]
    assert card.transfer_notes[0][0] == "Sanne"


def test_close_stores_outcome_and_corrections(services: Services) -> None:
    parent = Parent(services)
    parent.says("ik kan de huur niet meer betalen")
    conversation_id = parent.wants_volunteer()
    sanne = person(services)
    services.desk.claim(conversation_id, sanne)
    services.desk.close(conversation_id, sanne, Outcome.referred_service, referred_to="juridisch_loket",
                        corrected_themes=["housing", "money"], closing_note="Verwezen voor huurschuld.")
    conversation = status(services, conversation_id)
    assert conversation.status is ConversationStatus.closed
    with services.factory() as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == conversation_id,
                                                        Handoff.outcome.is_not(None))).one()
        assert handoff.outcome == "referred_service" and handoff.referred_to == "juridisch_loket"
        correction = session.scalars(select(Correction)).one()
        assert correction.corrected == ["housing", "money"]
        assert any("huur" in t for t in correction.texts_masked)
    with pytest.raises(Conflict):
        services.desk.reply(conversation_id, sanne, "nog iets")
    # After closing the bot speaks again: a new message starts a new conversation.
    assert parent.says("hoi") != conversation_id


def test_referral_summary_needs_the_parents_yes(services: Services) -> None:
    parent = Parent(services)
    parent.says("we hebben schulden en ik durf de post niet meer open te maken")
    conversation_id = parent.wants_volunteer()
    sanne = person(services)
    services.desk.claim(conversation_id, sanne)
    entry = services.desk.card(conversation_id, sanne).suggested[0]
    services.desk.ask_referral(conversation_id, sanne, entry.id)
    assert entry.name in parent.replies()[-1][1]
    parent.says("nee liever niet")
    assert "geen samenvatting" in parent.replies()[-1][1]
    services.desk.ask_referral(conversation_id, sanne, entry.id)
    parent.says("ja graag")
    summary = [t for _, t in parent.replies() if t.startswith("Samenvatting")]
    assert len(summary) == 1 and "schulden" in summary[0] and entry.name in summary[0]
    with services.factory() as session:
        actions = set(session.scalars(select(AuditLog.action).where(AuditLog.conversation_id == conversation_id)))
    assert {"referral_consent_refused", "referral_consent_given"} <= actions


def test_a_blocked_sender_gets_one_neutral_message_and_nothing_queues(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    coordinator = person(services, Role.coordinator)
    with pytest.raises(NotAllowed):
        services.desk.block(conversation_id, person(services), "scheldt", 7)
    services.desk.block(conversation_id, coordinator, "Scheldt vrijwilligers uit", 7)
    assert services.desk.index.waiting(QueueName.volunteer) == []
    for text in ("hallo??", "ik wil iemand spreken", "mens"):
        assert parent.says(text) == ""
    with services.factory() as session:
        block = session.scalars(select(Block)).one()
        neutral = session.scalars(select(Outbox).where(Outbox.reply_to == block.id)).all()
        assert len(neutral) == 1 and "112" in neutral[0].text
        assert session.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.status == ConversationStatus.queued)) == 0
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.text == "ik wil iemand spreken")) == 0


def test_returning_parent_is_offered_to_last_helper_first(services: Services) -> None:
    parent = Parent(services)
    first = parent.wants_volunteer()
    sanne, mark = person(services, name="Sanne"), person(services, name="Mark")
    services.desk.start_shift(sanne)
    services.desk.start_shift(mark)
    services.desk.claim(first, sanne)
    services.desk.close(first, sanne, Outcome.helped, closing_note="Afgesproken dat ze terugkomt.")
    second = parent.wants_volunteer()
    assert second != first
    assert services.desk.claim_next(mark) is None  # offered to Sanne first for a while
    assert services.desk.snapshot(sanne).waiting[0].offered_to_me
    card = services.desk.card(second, sanne)
    assert card.earlier and card.earlier[0].outcome is Outcome.helped
    assert card.earlier[0].closing_note == "Afgesproken dat ze terugkomt."
    assert services.desk.claim_next(sanne) == second


def test_redis_flush_loses_nothing(services: Services) -> None:
    parents = [Parent(services) for _ in range(4)]
    ids = [p.wants_volunteer() for p in parents]
    assert services.desk.index.waiting(QueueName.volunteer) == ids
    # What a Redis restart without persistence does to the index: every key of it is gone.
    keys = list(services.redis.scan_iter(match=f"{services.desk.prefix}:*"))
    services.redis.delete(*keys)
    assert not services.desk.index.is_built()
    sanne = person(services)
    assert services.desk.snapshot(sanne).waiting[0].conversation_id == ids[0]  # rebuilt on use
    assert services.desk.index.waiting(QueueName.volunteer) == ids
    assert services.desk.claim_next(sanne) == ids[0]


def test_fifty_people_claim_one_conversation_at_once(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    people = [person(services, Role.professional) for _ in range(50)]
    barrier = threading.Barrier(len(people))
    won: list[str] = []
    lost: list[str] = []

    def click(p: Person) -> None:
        barrier.wait()
        try:
            services.desk.claim(conversation_id, p)
            won.append(p.user_id)
        except Conflict:
            lost.append(p.user_id)

    threads = [threading.Thread(target=click, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 49
    assert status(services, conversation_id).claimed_by == won[0]
    assert not [t for a, t in parent.replies() if a is Author.person]  # greeted at the opening
    # The winner opens the conversation in ten tabs at once: the parent is greeted once.
    winner = next(p for p in people if p.user_id == won[0])
    tabs = threading.Barrier(10)

    def open_tab() -> None:
        tabs.wait()
        services.desk.open(conversation_id, winner)

    threads = [threading.Thread(target=open_tab) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handovers = [t for a, t in parent.replies() if a is Author.person]
    assert len(handovers) == 1 and winner.display_name in handovers[0]


def test_handoff_rebuild_command_restores_the_queue(settings: Settings, services: Services,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.cli import main

    ids = [Parent(services).wants_volunteer() for _ in range(3)]
    keys = list(services.redis.scan_iter(match=f"{services.desk.prefix}:*"))
    services.redis.delete(*keys)
    for name, value in {"OUDERTELEFOON_ENV": "test", "OUDERTELEFOON_VAR_DIR": str(settings.var_dir),
                        "DATABASE_URL": settings.effective_database_url,
                        "REDIS_URL": settings.redis_url or "",
                        "REDIS_KEY_PREFIX": settings.redis_prefix}.items():
        monkeypatch.setenv(name, value)
    assert main(["handoff", "rebuild"]) == 0
    assert services.desk.index.is_built()
    assert services.desk.index.waiting(QueueName.volunteer) == ids


def test_place_in_queue_follows_the_conversations_highest_risk(services: Services) -> None:
    from handoff.interfaces import PRIORITY

    parent = Parent(services)
    parent.says("ik kan het echt niet meer aan, ik huil de hele dag")
    parent.says("mens")
    conversation_id = parent.says("1")  # this message alone carries no risk
    conversation = status(services, conversation_id)
    assert conversation.status is ConversationStatus.queued
    assert conversation.highest_risk is not Risk.none
    assert conversation.priority == PRIORITY[conversation.highest_risk]


def test_calls_need_a_phone_number_and_are_skipped_by_claim_next(services: Services) -> None:
    from handoff.interfaces import PRIORITY

    now = utcnow()
    with services.factory() as session, session.begin():
        call = Conversation(channel=Channel.phone, pseudonym="caller", themes=[],
                            address_encrypted=services.vault.encrypt("+31612345678"),
                            status=ConversationStatus.queued, queue=QueueName.volunteer,
                            priority=PRIORITY[Risk.concern], queued_at=now - timedelta(minutes=5),
                            created_at=now - timedelta(minutes=5))
        session.add(call)
        session.flush()
        call_id = call.id
    services.desk.index_conversation(call_id)
    chat_id = Parent(services).wants_volunteer()  # waits less long, and with less risk
    sanne = person(services)
    with pytest.raises(NotAllowed):
        services.desk.claim(call_id, sanne)
    assert services.desk.claim_next(sanne) == chat_id  # the call is passed over, not lost
    assert services.desk.index.waiting(QueueName.volunteer) == [call_id]
    # With a number for calls she can take it; nothing is sent by text on the phone channel.
    with services.factory() as session, session.begin():
        user = session.get(User, sanne.user_id)
        assert user is not None
        user.phone_encrypted = services.vault.encrypt("+31687654321")
    assert services.desk.claim_next(sanne) == call_id
    with services.factory() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.conversation_id == call_id)) == 0
        assert any(m.author is Author.person for m in session.get(Conversation, call_id).messages)  # type: ignore[union-attr]
