"""People in tests: a parent writing through the real pipeline, and dashboard users."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from bot.accounts.sessions import Person
from bot.channels.base import InboundMessage
from bot.storage.models import Author, Channel, Conversation, Role, User, utcnow
from bot.web.app import Services


def person(services: Services, role: Role = Role.volunteer, name: str | None = None,
           languages: tuple[str, ...] = ("nl",)) -> Person:
    """A dashboard user acting through the desk (no login: the desk tests need no password, and
    fifty argon2 hashes would only slow them down; logins are tested in tests/bot/web)."""
    username = f"{role.value[:4]}-{uuid.uuid4().hex[:8]}"
    with services.factory() as session, session.begin():
        user = User(username=username, display_name=name or username, role=role,
                    password_hash="!no-login", languages=list(languages), active=True)
        session.add(user)
        session.flush()
        user_id = user.id
    return Person(user_id=user_id, username=username, display_name=name or username, role=role,
                  languages=languages, csrf_token="-")


class Parent:
    """A parent on the web chat, through the real pipeline."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.address = uuid.uuid4().hex
        self.pseudonym = services.vault.pseudonym(Channel.web.value, self.address)

    def says(self, text: str) -> str:
        inbound = InboundMessage(channel=Channel.web, pseudonym=self.pseudonym,
                                 address_encrypted=self.services.vault.encrypt(self.address),
                                 provider_message_id=uuid.uuid4().hex, text=text, received_at=utcnow())
        received = self.services.pipeline.process(inbound)
        return received.conversation_id or ""

    def wants_volunteer(self) -> str:
        self.says("ik wil graag met iemand praten")
        return self.says("1")

    def replies(self) -> list[tuple[Author, str]]:
        with self.services.factory() as session:
            conversation = session.scalar(select(Conversation).where(
                Conversation.pseudonym == self.pseudonym).order_by(Conversation.created_at.desc()).limit(1))
            assert conversation is not None
            return [(m.author, m.text) for m in conversation.messages if m.author is not Author.parent]


