"""The block table's one question below the pipeline: is this sender blocked now?

Blocks are made and lifted by coordinators at the desk (handoff.moderation); the pipeline asks
here before it stores anything, so it needs nothing from the layers above it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bot.storage.models import Block, Channel


def active_block(session: Session, channel: Channel, pseudonym: str, now: datetime) -> Block | None:
    """The block in force for a sender, if any (the newest when there are several)."""
    return session.scalar(active_block_id(channel, pseudonym, now).with_only_columns(Block))


def active_block_id(channel: Channel, pseudonym: str, now: datetime) -> Select[str]:
    """The query for the id of that block (to ask it together with other questions)."""
    return (select(Block.id)
            .where(Block.channel == channel, Block.pseudonym == pseudonym,
                   Block.lifted_at.is_(None), Block.expires_at > now)
            .order_by(Block.created_at.desc())
            .limit(1))
