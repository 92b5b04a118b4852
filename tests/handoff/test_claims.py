"""Claiming (handoff.claims), through the desk with the real pipeline, SQL and Redis: the warm
handover and the silent bot, alerts while claimed, who may take which queue, one winner among
fifty, and calls that need a phone number."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.accounts.sessions import Person
from bot.storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Outbox,
    QueueName,
    Role,
    User,
    utcnow,
)
from bot.triage.types import Risk
from bot.web.app import Services
from handoff.desk import Conflict, NotAllowed
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.handoff.support import status
from tests.people import Parent, person


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


def test_a_volunteer_cannot_take_the_professional_queue(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.says("mijn vriend slaat me als hij gedronken heeft en ik ben zwanger")
    assert status(services, conversation_id).queue is QueueName.professional
    volunteer, professional = person(services), person(services, Role.professional)
    with pytest.raises(NotAllowed):
        services.desk.claim(conversation_id, volunteer)
    assert services.desk.claim_next(volunteer) is None
    assert services.desk.claim_next(professional) == conversation_id


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
