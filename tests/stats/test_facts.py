"""Anonymous facts per contact, written with the conversation, surviving the retention purge."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.retention import purge
from bot.storage.models import (
    ContactFact,
    ContactTheme,
    Conversation,
    QueueName,
    Role,
    Verdict,
    utcnow,
)
from bot.web.app import Services
from handoff.desk import Outcome
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person


def fact_of(services: Services, conversation_id: str) -> ContactFact:
    with services.factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.fact_id
        fact = session.get(ContactFact, conversation.fact_id)
        assert fact is not None
        return fact


def test_a_bot_answer_is_a_contact_with_its_theme(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.says("ik kan de huur deze maand niet betalen")
    fact = fact_of(services, conversation_id)
    assert fact.handed_over is False and fact.parent_messages == 1
    assert fact.themes and fact.catalogue_given  # the bot gave entries
    assert fact.hour.minute == 0 and fact.hour.second == 0  # kept to the hour
    with services.factory() as session:
        assert set(session.scalars(select(ContactTheme.theme).where(ContactTheme.fact_id == fact.id))) \
            == set(fact.themes)


def test_handover_wait_close_correction_and_verdict(services: Services) -> None:
    parent = Parent(services)
    conversation_id = parent.wants_volunteer()
    sanne = person(services, Role.volunteer)
    services.desk.claim(conversation_id, sanne)
    services.desk.close(conversation_id, sanne, Outcome.referred_network, corrected_themes=["loneliness"])
    fact = fact_of(services, conversation_id)
    assert fact.handed_over and fact.queue is QueueName.volunteer
    assert fact.waited_seconds is not None and fact.handled_seconds is not None
    assert fact.outcome == "referred_network" and fact.corrected and fact.corrected_themes == ["loneliness"]
    assert "iets aan gehad" in parent.replies()[-1][1]
    assert parent.says("een beetje") == conversation_id  # the answer joins the closed conversation
    assert fact_of(services, conversation_id).verdict is Verdict.somewhat
    assert "Dank je" in parent.replies()[-1][1]
    assert parent.says("ik heb nog een vraag over de kinderopvang") != conversation_id


def test_purge_keeps_the_facts_and_counts_the_unanswered_as_abandoned(services: Services) -> None:
    waiting, helped = Parent(services), Parent(services)
    waiting_id = waiting.wants_volunteer()
    helped_id = helped.says("waar vind ik een verloskundige")
    fact_ids = {fact_of(services, waiting_id).id, fact_of(services, helped_id).id}
    with services.factory() as session, session.begin():
        purge(session, utcnow() + timedelta(days=31), retention_days=30)
    with services.factory() as session:
        assert session.scalars(select(Conversation)).all() == []
        kept = {f.id: f for f in session.scalars(select(ContactFact))}
        assert set(kept) == fact_ids
        by_id = {i: kept[i] for i in fact_ids}
        abandoned = [f for f in by_id.values() if f.abandoned]
        assert len(abandoned) == 1 and abandoned[0].handed_over
