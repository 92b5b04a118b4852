"""The handover card (handoff.card) with the real pipeline, SQL and Redis: what a person may put in
the box for the parent."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import Message
from bot.web.app import Services
from tests.channels.conftest import services  # noqa: F401 (a fixture)
from tests.people import Parent, person


def test_an_unpublished_entry_is_no_longer_offered_to_insert(services: Services) -> None:
    """A coordinator unpublishes a service (it closed, its number changed): a volunteer must not
    put it in the box again, also when the bot gave it to this parent earlier."""
    parent = Parent(services)
    conversation_id = parent.says("ik kan de huur niet betalen, waar kan ik hulp vinden?")
    with services.factory() as session:
        given = {i for ids in session.scalars(select(Message.catalogue_ids).where(
            Message.conversation_id == conversation_id)) if ids for i in ids}
    assert given, "the bot answered with the catalogue"
    parent.wants_volunteer()
    sanne = person(services, name="Sanne")
    services.desk.start_shift(sanne)
    services.desk.claim(conversation_id, sanne)
    names = {services.catalogue.get(i).name for i in given}
    before = {title for title, _ in services.desk.card(conversation_id, sanne).quick_texts}
    assert names <= before
    assert services.catalogue_service is not None
    for entry_id in given:
        services.catalogue_service.set_published(None, entry_id, False)
    after = {title for title, _ in services.desk.card(conversation_id, sanne).quick_texts}
    assert not names & after
