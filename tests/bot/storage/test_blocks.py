"""active_block: the block in force for a sender (the pipeline asks before storing anything)."""

from __future__ import annotations

from datetime import timedelta

from bot.storage.blocks import active_block
from bot.storage.db import make_engine, session_factory, upgrade
from bot.storage.models import Block, Channel, utcnow


def test_only_a_block_in_force_for_this_sender_counts(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = session_factory(engine)
    now = utcnow()
    try:
        with factory() as session, session.begin():
            session.add_all([
                Block(channel=Channel.sms, pseudonym="p-expired", reason="r", expires_at=now - timedelta(minutes=1),
                      created_at=now - timedelta(days=2)),
                Block(channel=Channel.sms, pseudonym="p-lifted", reason="r", expires_at=now + timedelta(days=1),
                      lifted_at=now, created_at=now - timedelta(days=1)),
                Block(channel=Channel.telegram, pseudonym="p-other-channel", reason="r",
                      expires_at=now + timedelta(days=1), created_at=now),
                Block(channel=Channel.sms, pseudonym="p-twice", reason="old", expires_at=now + timedelta(days=1),
                      created_at=now - timedelta(days=1)),
                Block(channel=Channel.sms, pseudonym="p-twice", reason="new", expires_at=now + timedelta(days=2),
                      created_at=now),
            ])
        with factory() as session:
            assert active_block(session, Channel.sms, "p-expired", now) is None
            assert active_block(session, Channel.sms, "p-lifted", now) is None
            assert active_block(session, Channel.sms, "p-other-channel", now) is None
            assert active_block(session, Channel.sms, "p-unknown", now) is None
            newest = active_block(session, Channel.sms, "p-twice", now)
            assert newest is not None and newest.reason == "new"
            # A block runs out by its own time, not by a lift.
            assert active_block(session, Channel.sms, "p-twice", now + timedelta(days=3)) is None
    finally:
        engine.dispose()
