"""Anonymous facts per contact, written in the same transaction as what they describe.

A fact row holds no text, pseudonym, address or user: only the hour a contact started, its channel,
language, region (when the parent gave one), themes, highest risk, route, whether it came after
hours, whether and where it was handed over, waiting and handling seconds, outcome, referral,
whether the bot's themes were corrected, and the parent's verdict. The conversation points at its
fact (`Conversation.fact_id`); that link is deleted with the transcript, the fact stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import (
    ContactFact,
    ContactTheme,
    Conversation,
    Verdict,
    aware,
    new_id,
    utcnow,
)


def hour_of(moment: datetime) -> datetime:
    """Facts keep time to the hour (UTC)."""
    return (aware(moment) or utcnow()).replace(minute=0, second=0, microsecond=0)


def fact_for(session: Session, conversation: Conversation, *, after_hours: bool = False) -> ContactFact:
    """The conversation's fact row, created on first use."""
    if conversation.fact_id:
        fact = _get(session, conversation.fact_id)
        if fact is not None:
            return fact
    fact = ContactFact(id=new_id(), hour=hour_of(conversation.created_at or utcnow()),
                       channel=conversation.channel, language=conversation.language or "nl",
                       themes=[], catalogue_given=[], after_hours=after_hours)
    session.add(fact)  # written with the caller's other rows (no flush of its own)
    session.info.setdefault(_NEW_FACTS, {})[fact.id] = fact
    conversation.fact_id = fact.id
    return fact


_NEW_FACTS = "facts.new"  # session.info: facts added in this transaction, not written yet


def _get(session: Session, fact_id: str) -> ContactFact | None:
    """A fact by id, also one added in this transaction and not yet written."""
    return session.info.get(_NEW_FACTS, {}).get(fact_id) or session.get(ContactFact, fact_id)


def on_message(session: Session, conversation: Conversation, *, after_hours: bool) -> None:
    """A triaged parent message: themes, risk, route and language as the conversation has them now."""
    fact = fact_for(session, conversation, after_hours=after_hours)
    fact.parent_messages = (fact.parent_messages or 0) + 1
    fact.language = conversation.language or fact.language
    fact.region = conversation.region or fact.region
    fact.risk = conversation.highest_risk
    fact.route = conversation.route
    new = [t for t in (conversation.themes or []) if t not in (fact.themes or [])]
    if new:
        fact.themes = [*(fact.themes or []), *new]
        existing = set() if fact in session.new else set(
            session.scalars(select(ContactTheme.theme).where(ContactTheme.fact_id == fact.id)))
        for theme in new:
            if theme not in existing:
                session.add(ContactTheme(fact_id=fact.id, theme=theme, hour=fact.hour))


def on_catalogue(session: Session, conversation: Conversation, entry_ids: Sequence[str]) -> None:
    fact = fact_for(session, conversation)
    given = list(fact.catalogue_given or [])
    fact.catalogue_given = given + [i for i in entry_ids if i not in given]


def on_queued(session: Session, conversation: Conversation) -> None:
    fact = fact_for(session, conversation)
    fact.handed_over = True
    fact.queue = conversation.queue
    fact.risk = conversation.highest_risk
    fact.route = conversation.route


def on_claimed(session: Session, conversation: Conversation, waited_seconds: int) -> None:
    """The first pick-up counts as the wait (a returned conversation does not wait twice)."""
    fact = fact_for(session, conversation)
    if fact.waited_seconds is None:
        fact.waited_seconds = max(0, waited_seconds)
    fact.queue = conversation.queue
    fact.abandoned = False


def on_closed(session: Session, conversation: Conversation, *, handled_seconds: int | None, outcome: str,
              referred_to: str | None, corrected_themes: Sequence[str] | None) -> None:
    fact = fact_for(session, conversation)
    fact.handled_seconds = (fact.handled_seconds or 0) + max(0, handled_seconds or 0)
    fact.outcome = outcome
    fact.referred_to = referred_to
    fact.queue = conversation.queue or fact.queue
    if corrected_themes:
        fact.corrected = True
        fact.corrected_themes = list(corrected_themes)


def on_left(session: Session, conversation: Conversation) -> None:
    """The conversation ends (stopped, deleted, purged) while it still waited for a person."""
    if conversation.fact_id is None:
        return
    fact = _get(session, conversation.fact_id)
    if fact is not None and fact.handed_over and fact.waited_seconds is None:
        fact.abandoned = True


def on_verdict(session: Session, fact_id: str, verdict: Verdict) -> None:
    fact = _get(session, fact_id)
    if fact is not None:
        fact.verdict = verdict
