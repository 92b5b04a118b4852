"""The handover card: what a person reads before and while they help. Who the parent is in
themes and risk (never a number or chat id), why it is urgent and what guidance the parent got
first, the parent's own words, what the bot said and offered, notes of earlier transfers, earlier
conversations, and the transcript. Who may read it is decided here too (`readable`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.intents.catalogue import CatalogueEntry, render_entry
from bot.intents.guidance import guidance_kind
from bot.rules import QueueName
from bot.storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    HandoffStatus,
    Role,
    StandardText,
    User,
    aware,
)
from bot.triage.types import Danger, Language, Risk, Theme
from handoff.availability import Presence
from handoff.context import URGENT, Actor, DeskContext, Outcome, may_take, ref
from handoff.errors import Conflict, NotAllowed, NotFound

EARLIER_LIMIT = 5
_RISK_ORDER = (Risk.none, Risk.concern, Risk.high, Risk.acute)
# Phone numbers in a guidance text, to pass on: "113", "0800-0113", "14 020".
_PHONE_NUMBER = re.compile(r"(?<![\w-])(?:\d{2,4}[- ]\d{3,4}|\d{3})(?![\w-])")


@dataclass(frozen=True)
class Urgency:
    """Why an acute or high conversation comes first, from the triage of its highest-risk
    message: the kind of danger and theme (the dashboard says it in words), and the guidance
    the parent got first (bot.intents.guidance, Dutch) with the numbers in it to pass on."""

    risk: Risk
    danger: Danger
    theme: str | None
    guidance_kind: str | None
    guidance: str | None
    numbers: list[str]


@dataclass(frozen=True)
class CardMessage:
    n: int
    author: Author
    text: str
    at: datetime
    by_name: str | None
    risk: Risk | None
    theme: str | None
    catalogue_names: list[str]


@dataclass(frozen=True)
class Earlier:
    started: datetime
    themes: list[str]
    outcome: Outcome | None
    closing_note: str | None
    helped_by: str | None


@dataclass(frozen=True)
class HandoverCard:
    conversation_id: str
    ref: str
    status: ConversationStatus
    queue: QueueName | None
    priority: int | None
    themes: list[str]
    risk: Risk
    risk_reasons: list[str]
    queue_reason: str | None
    channel: Channel
    language: str
    queued_at: datetime | None
    waiting_minutes: int | None
    preferred: QueueName | None
    claimed_by: str | None
    claimed_by_name: str | None
    claimed_by_me: bool
    parent_words: list[CardMessage]
    bot_said: list[CardMessage]
    given: list[CatalogueEntry]
    suggested: list[CatalogueEntry]
    transfer_notes: list[tuple[str, str, datetime]]
    earlier: list[Earlier]
    messages: list[CardMessage]
    acute_alert: bool
    pending_referral: CatalogueEntry | None
    can_claim: bool
    can_reply: bool
    quick_texts: list[tuple[str, str]]
    urgency: Urgency | None = None
    #: Names of the people present on the professional queue's shift (who takes care).
    professionals_present: list[str] = field(default_factory=list)
    #: Coordinators present on shift this person may hand this conversation to: (id, name).
    coordinators: list[tuple[str, str]] = field(default_factory=list)


class Cards:
    def __init__(self, ctx: DeskContext, presence: Presence) -> None:
        self.ctx = ctx
        self.presence = presence

    def readable(self, session: Session, conversation: Conversation, actor: Actor, now: datetime) -> None:
        """NotAllowed unless this person may see this conversation at all."""
        if actor.role is Role.coordinator:
            return
        if conversation.claimed_by == actor.user_id:
            return
        if conversation.status in (ConversationStatus.queued, ConversationStatus.claimed):
            if may_take(actor, conversation.queue):
                return  # claimed: they see who has it; the transcript is for the one who has it
            # Acute and high conversations are for everyone on shift to see (who takes care).
            if conversation.highest_risk in URGENT and self.presence.on_shift(session, actor.user_id):
                return
            if (conversation.status is ConversationStatus.queued
                    and self.presence.may_claim(session, actor, conversation, now)):
                return
        raise NotAllowed("not_for_you")

    def card(self, conversation_id: str, actor: Actor) -> HandoverCard:
        """The handover card and transcript. Every opening is written to the audit log."""
        ctx = self.ctx
        now = ctx.clock()
        with ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation_deleted")
            self.readable(session, conversation, actor, now)
            mine = conversation.claimed_by == actor.user_id
            full = mine or actor.role is Role.coordinator or conversation.status is ConversationStatus.queued
            if not full:
                raise Conflict("someone_else")
            ctx.audit(session, actor, "transcript_opened", conversation_id)
            names = dict(session.execute(select(User.id, User.display_name)).all())
            messages = self.card_messages(conversation, names)
            given_ids = [i for m in conversation.messages if m.catalogue_ids for i in m.catalogue_ids]
            given = [ctx.catalogue.get(i) for i in dict.fromkeys(given_ids) if i in ctx.catalogue]
            suggested = self.suggest(conversation, {e.id for e in given})
            handoffs = sorted(conversation.handoffs, key=lambda h: aware(h.created_at) or now)
            notes = [(transfer_author(h.reason), h.note, aware(h.created_at) or now)
                     for h in handoffs if h.note]
            reasons: list[str] = []
            for m in conversation.messages:
                for r in (m.triage or {}).get("risk_reasons", []) or []:
                    if r not in reasons:
                        reasons.append(r)
            queued_at = aware(conversation.queued_at)
            pending = ctx.catalogue.get(conversation.pending_referral) \
                if conversation.pending_referral and conversation.pending_referral in ctx.catalogue else None
            lang = Language.en if conversation.language == "en" else Language.nl
            quick = [(t.title, t.body) for t in session.scalars(
                select(StandardText).where(StandardText.active.is_(True)).order_by(StandardText.title))]
            # Only what the catalogue still stands behind: an entry unpublished since the bot gave
            # it (closed, a new number) is not offered for the box again.
            quick += [(e.name, render_entry(e, lang)) for e in [*suggested, *given] if e.published]
            return HandoverCard(
                conversation_id=conversation.id, ref=ref(conversation.id), status=conversation.status,
                queue=conversation.queue, priority=conversation.priority,
                themes=list(conversation.themes or []), risk=conversation.highest_risk,
                risk_reasons=reasons, queue_reason=conversation.queue_reason,
                channel=conversation.channel, language=conversation.language,
                queued_at=queued_at,
                waiting_minutes=int((now - queued_at).total_seconds() // 60) if queued_at else None,
                preferred=conversation.preferred_kind, claimed_by=conversation.claimed_by,
                claimed_by_name=names.get(conversation.claimed_by) if conversation.claimed_by else None,
                claimed_by_me=mine,
                parent_words=[m for m in messages if m.author is Author.parent],
                bot_said=[m for m in messages if m.author is Author.bot],
                given=given, suggested=suggested, transfer_notes=notes,
                earlier=self.earlier(session, conversation, names),
                messages=messages, acute_alert=conversation.acute_alert_at is not None,
                pending_referral=pending,
                can_claim=(conversation.status is ConversationStatus.queued
                           and self.presence.may_claim(session, actor, conversation, now)),
                can_reply=mine and conversation.status is ConversationStatus.claimed,
                quick_texts=quick,
                urgency=self.urgency(conversation),
                professionals_present=self.presence.professional_names(session, now)
                if conversation.queue is QueueName.professional else [],
                coordinators=self.presence.coordinator_options(session, actor, conversation, now),
            )

    def urgency(self, conversation: Conversation) -> Urgency | None:
        """Why an acute or high conversation comes first: its highest-risk parent message decides
        (of equal risk, one with a named danger, then the latest), and the guidance that message
        got first (bot.intents.guidance: the one rule and the one text)."""
        if conversation.highest_risk not in URGENT:
            return None
        best: tuple[tuple[int, bool, int], dict[str, Any]] | None = None
        for n, message in enumerate(conversation.messages):
            triage = message.triage or {}
            if message.author is not Author.parent or triage.get("risk") not in Risk._value2member_map_:
                continue
            key = (_RISK_ORDER.index(Risk(triage["risk"])), triage.get("danger") not in (None, "none"), n)
            if best is None or key > best[0]:
                best = (key, triage)
        triage = best[1] if best is not None else {}
        risk = Risk(triage["risk"]) if triage else conversation.highest_risk
        danger = Danger(triage["danger"]) if triage.get("danger") in Danger._value2member_map_ else Danger.none
        theme = triage.get("theme") if triage.get("theme") not in (None, Theme.none.value) else None
        kind = guidance_kind(risk, danger, triage.get("risk_category"))
        guidance = self.ctx.texts.guidance
        text = guidance.text(kind, "nl") if kind and guidance is not None else None
        numbers = list(dict.fromkeys(_PHONE_NUMBER.findall(text))) if text else []
        return Urgency(risk=conversation.highest_risk, danger=danger, theme=theme,
                       guidance_kind=kind, guidance=text, numbers=numbers)

    def card_messages(self, conversation: Conversation, names: dict[str, str]) -> list[CardMessage]:
        catalogue = self.ctx.catalogue
        out = []
        for n, m in enumerate(conversation.messages, start=1):
            triage = m.triage or {}
            risk = Risk(triage["risk"]) if triage.get("risk") in Risk._value2member_map_ else None
            theme = triage.get("theme") if triage.get("theme") not in (None, Theme.none.value) else None
            entries = [catalogue.get(i).name for i in (m.catalogue_ids or []) if i in catalogue]
            text = m.text or (f"[{m.media_kind}]" if m.media_kind else "")
            out.append(CardMessage(n=n, author=m.author, text=text, at=aware(m.created_at) or self.ctx.clock(),
                                   by_name=names.get(m.user_id) if m.user_id else None,
                                   risk=risk, theme=theme, catalogue_names=entries))
        return out

    def suggest(self, conversation: Conversation, exclude: set[str]) -> list[CatalogueEntry]:
        """Up to three catalogue entries for the conversation's themes, not given yet."""
        settings = self.ctx.settings
        picked: list[CatalogueEntry] = []
        for theme in conversation.themes or []:
            try:
                entries = self.ctx.catalogue.pick(Theme(theme), region=settings.region,
                                                  include_unverified=settings.include_unverified_catalogue)
            except ValueError:
                continue
            for entry in entries:
                if entry.id not in exclude and entry.id not in {e.id for e in picked}:
                    picked.append(entry)
        return picked[:3]

    def earlier(self, session: Session, conversation: Conversation, names: dict[str, str]) -> list[Earlier]:
        """The same sender's earlier conversations (newest first): themes, outcome, who helped."""
        clock = self.ctx.clock
        rows = session.scalars(
            select(Conversation)
            .where(Conversation.channel == conversation.channel,
                   Conversation.pseudonym == conversation.pseudonym,
                   Conversation.id != conversation.id,
                   Conversation.created_at < (conversation.created_at or clock()))
            .order_by(Conversation.created_at.desc())
            .limit(EARLIER_LIMIT)
        ).all()
        out = []
        for c in rows:
            closed = [h for h in c.handoffs if h.status is HandoffStatus.closed]
            last = max(closed, key=lambda h: aware(h.closed_at) or aware(h.created_at) or clock()) \
                if closed else None
            outcome = Outcome(last.outcome) if last and last.outcome in Outcome._value2member_map_ else None
            out.append(Earlier(started=aware(c.created_at) or clock(), themes=list(c.themes or []),
                               outcome=outcome, closing_note=last.closing_note if last else None,
                               helped_by=names.get(c.claimed_by) if c.claimed_by else None))
        return out

    def messages_after(self, conversation_id: str, actor: Actor, after: int) -> list[CardMessage]:
        """Transcript items after position `after` (the live update of the conversation page)."""
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise NotFound("conversation_gone_now")
            self.readable(session, conversation, actor, self.ctx.clock())
            if not (conversation.claimed_by == actor.user_id or actor.role is Role.coordinator
                    or conversation.status is ConversationStatus.queued):
                raise Conflict("someone_else")
            names = dict(session.execute(select(User.id, User.display_name)).all())
            return [m for m in self.card_messages(conversation, names) if m.n > after]


def transfer_author(reason: str) -> str:
    """Who transferred, from a handoff's reason ("transferred by Sanne" -> "Sanne")."""
    prefix = "transferred by "
    return reason[len(prefix):] if reason.startswith(prefix) else ""
