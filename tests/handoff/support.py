"""Helpers for the handoff tests that run through the desk with the real pipeline, SQL and Redis."""

from __future__ import annotations

from bot.storage.models import Conversation
from bot.web.app import Services


def status(services: Services, conversation_id: str) -> Conversation:
    """The conversation as SQL has it now."""
    with services.factory() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation
