"""What a person does in a conversation (handoff.actions), through the desk with the real pipeline,
SQL and Redis: returning with the place kept, transfer with a note, closing with corrections,
and referral consent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.storage.models import (
    AuditLog,
    Author,
    ConversationStatus,
    Correction,
    Handoff,
    QueueName,
    Role,
)
from bot.web.app import Services
from handoff.desk import Conflict, Outcome
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.handoff.support import status
from tests.people import Parent, person


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
