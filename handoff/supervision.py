"""Supervision: a coordinator or professional on shift watches the live conversations, opens one
read-only, sends a note only the person who has it sees, and takes it over with one press; the
person who has a conversation can ask for help ("vraag hulp").

Who may supervise (the rule, one place: `Supervision.check`): coordinators and professionals
with an open shift. A volunteer never supervises, so a volunteer never sees another volunteer's
conversation here; someone off shift is not there to answer a help request, so they do not
supervise either. Professionals supervise every live conversation (volunteers' and each
other's): peer supervision is how a shift of professionals works.

- The live list: every queued or claimed conversation, who has it and since when, its risk, the
  minutes since the parent's last message, and whether its person asked for help.
- Opening read-only changes nothing in the conversation (no status, no handover, no text to the
  parent) and is written to the audit log each time (`supervision_opened`); it answers a help
  request (the mark is cleared, `help_answered`).
- A note (`SupervisionNote`) goes to the person who has the conversation at that moment, never
  to the parent: not in the transcript, not in the outbox. Its text is never logged or audited.
- A takeover moves the claim to the supervisor with a conditional UPDATE on the holder they saw
  (two presses at once: one wins), and the parent hears who joins with the very words of the warm
  handover (handoff.claims.Claims.greeting). The previous holder is told on their dashboard
  (a personal "takeover" event). Audited (`taken_over`).
- A help request marks the conversation (`help_requested_at/by`) and alerts the supervisors
  present on shift (handoff.presence), each by a personal "help" event. It counts only while the
  one who asked still has the conversation; it is cleared when a supervisor opens or takes it, or
  when they withdraw it.

No Dutch words and no HTTP codes here: refusals are domain errors with a reason key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.rules import QueueName
from bot.storage.models import (
    AuditLog,
    Channel,
    Conversation,
    ConversationStatus,
    Handoff,
    HandoffStatus,
    Role,
    SupervisionNote,
    User,
    aware,
)
from bot.triage.types import Risk
from handoff.availability import Presence
from handoff.card import CardMessage, Cards, Urgency
from handoff.claims import Claims
from handoff.context import MAX_NOTE_CHARS, Actor, DeskContext, priority_of, ref
from handoff.errors import Conflict, Invalid, NotAllowed, NotFound
from handoff.events import Event, publish
from handoff.indexing import IndexKeeper
from handoff.presence import present_user_ids

#: The roles that supervise (with an open shift).
SUPERVISOR_ROLES = frozenset({Role.coordinator, Role.professional})
LIVE = (ConversationStatus.queued, ConversationStatus.claimed)


def may_supervise(role: Role) -> bool:
    """Whether this role supervises at all (the shift is checked by the desk)."""
    return role in SUPERVISOR_ROLES


@dataclass(frozen=True)
class LiveItem:
    """A row of the live list."""

    conversation_id: str
    ref: str
    status: ConversationStatus
    queue: QueueName | None
    risk: Risk
    priority: int
    themes: list[str]
    channel: Channel
    holder_id: str | None
    holder_name: str | None
    holder_role: Role | None
    #: Claimed: since the claim; queued: since it was queued.
    since: datetime | None
    since_minutes: int | None
    #: Minutes since the parent's last message (None: no message from the parent).
    parent_silent_minutes: int | None
    help_requested_at: datetime | None
    acute_alert: bool
    mine: bool


@dataclass(frozen=True)
class NoteView:
    id: str
    author_name: str | None
    to_name: str | None
    text: str
    at: datetime
    seen_at: datetime | None


@dataclass(frozen=True)
class Watch:
    """The read-only view of one live conversation."""

    conversation_id: str
    ref: str
    status: ConversationStatus
    queue: QueueName | None
    risk: Risk
    themes: list[str]
    channel: Channel
    language: str
    holder_id: str | None
    holder_name: str | None
    since: datetime | None
    help_requested_at: datetime | None
    messages: list[CardMessage]
    notes: list[NoteView]
    urgency: Urgency | None
    #: Someone else has it: a note can go to them, and it can be taken over.
    can_note: bool
    can_take_over: bool
    mine: bool


@dataclass(frozen=True)
class HolderView:
    """What the person who has a conversation sees of supervision on its page."""

    conversation_id: str
    help_requested_at: datetime | None
    notes: list[NoteView]
    #: Their last request was answered (a supervisor opened the conversation): by whom, when.
    help_answered_by: str | None = None
    help_answered_at: datetime | None = None


class Supervision:
    def __init__(self, ctx: DeskContext, presence: Presence, keeper: IndexKeeper, claims: Claims,
                 cards: Cards) -> None:
        self.ctx = ctx
        self.presence = presence
        self.keeper = keeper
        self.claims = claims
        self.cards = cards

    # who ----------------------------------------------------------------------------------------

    def check(self, session: Session, actor: Actor) -> None:
        """The rule: NotAllowed unless this person supervises now (see the module doc)."""
        if not may_supervise(actor.role):
            raise NotAllowed("supervisors_only")
        if not self.presence.on_shift(session, actor.user_id):
            raise NotAllowed("supervise_off_shift")

    def supervisors_present(self, session: Session, now: datetime, exclude: str | None = None) -> list[str]:
        """The supervisors present on shift (their dashboard is there), but `exclude`."""
        ids = present_user_ids(session, now=now, timeout=self.presence.timeout)
        if not ids:
            return []
        found = session.scalars(select(User.id).where(
            User.id.in_(ids), User.role.in_(list(SUPERVISOR_ROLES)), User.active.is_(True)))
        return sorted(uid for uid in found if uid != exclude)

    def help_waiting(self, actor: Actor) -> int:
        """For a supervisor on shift: how many conversations of others ask for help now (a
        supervisor who comes on shift after the alert went still sees them); else 0."""
        if not may_supervise(actor.role):
            return 0
        with self.ctx.factory() as session:
            if not self.presence.on_shift(session, actor.user_id):
                return 0
            return session.scalar(select(func.count()).select_from(Conversation).where(
                Conversation.status == ConversationStatus.claimed,
                Conversation.help_requested_at.is_not(None),
                Conversation.help_requested_by == Conversation.claimed_by,
                Conversation.help_requested_at >= Conversation.claimed_at,
                Conversation.claimed_by != actor.user_id)) or 0

    # reading ------------------------------------------------------------------------------------

    def live(self, actor: Actor) -> list[LiveItem]:
        """Every queued or claimed conversation: help asked first, then by risk, then the longest
        claimed or waiting."""
        now = self.ctx.clock()
        with self.ctx.factory() as session:
            self.check(session, actor)
            rows = session.scalars(select(Conversation).where(Conversation.status.in_(LIVE))).all()
            people = {uid: (name, role) for uid, name, role in
                      session.execute(select(User.id, User.display_name, User.role)).all()}
        items = []
        for c in rows:
            holder = c.claimed_by if c.status is ConversationStatus.claimed else None
            since = aware(c.claimed_at) if holder else aware(c.queued_at) or aware(c.created_at)
            last = aware(c.last_inbound_at)
            name, role = people.get(holder, (None, None)) if holder else (None, None)
            items.append(LiveItem(
                conversation_id=c.id, ref=ref(c.id), status=c.status, queue=c.queue, risk=c.highest_risk,
                priority=priority_of(c), themes=list(c.themes or []), channel=c.channel,
                holder_id=holder, holder_name=name, holder_role=role, since=since,
                since_minutes=_minutes(now, since), parent_silent_minutes=_minutes(now, last),
                help_requested_at=self._help(c), acute_alert=c.acute_alert_at is not None,
                mine=holder == actor.user_id,
            ))
        return sorted(items, key=lambda i: (i.help_requested_at is None, i.priority,
                                            i.since or now))

    def watch(self, conversation_id: str, actor: Actor) -> Watch:
        """Open a live conversation read-only: audited each time; answers a help request."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            self.check(session, actor)
            conversation = self._live(session, conversation_id)
            holder = conversation.claimed_by if conversation.status is ConversationStatus.claimed else None
            self.ctx.audit(session, actor, "supervision_opened", conversation_id, holder=holder)
            answered = self._clear_help(session, conversation, actor, "opened")
            names = dict(session.execute(select(User.id, User.display_name)).all())
            view = Watch(
                conversation_id=conversation.id, ref=ref(conversation.id), status=conversation.status,
                queue=conversation.queue, risk=conversation.highest_risk, themes=list(conversation.themes or []),
                channel=conversation.channel, language=conversation.language, holder_id=holder,
                holder_name=names.get(holder) if holder else None,
                since=aware(conversation.claimed_at) if holder else aware(conversation.queued_at),
                help_requested_at=None if answered else self._help(conversation),
                messages=self.cards.card_messages(conversation, names),
                notes=self._notes(session, conversation_id, names),
                urgency=self.cards.urgency(conversation),
                can_note=holder is not None and holder != actor.user_id,
                can_take_over=(holder is not None and holder != actor.user_id
                               and conversation.channel is not Channel.phone),
                mine=holder == actor.user_id,
            )
        if answered is not None:
            self._tell_cleared(conversation_id, answered, now)
        return view

    def messages_after(self, conversation_id: str, actor: Actor, after: int) -> list[CardMessage]:
        """The read-only view's live transcript, after position `after` (part of the opening that
        was audited; not audited again at every refresh). This route gives the transcript too
        (from 0: all of it), so a supervisor who never opened the page is audited here, once."""
        with self.ctx.factory() as session, session.begin():
            self.check(session, actor)
            conversation = self._live(session, conversation_id)
            opened = session.scalar(select(AuditLog.id).where(
                AuditLog.action == "supervision_opened", AuditLog.user_id == actor.user_id,
                AuditLog.conversation_id == conversation_id).limit(1))
            if opened is None:
                holder = conversation.claimed_by if conversation.status is ConversationStatus.claimed else None
                self.ctx.audit(session, actor, "supervision_opened", conversation_id, holder=holder,
                               via="refresh")
            names = dict(session.execute(select(User.id, User.display_name)).all())
            return [m for m in self.cards.card_messages(conversation, names) if m.n > after]

    def for_holder(self, conversation_id: str, actor: Actor) -> HolderView | None:
        """Supervision on the holder's own conversation page: their help request and the notes
        written to them (marked seen now). None unless this person has the conversation."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = session.get(Conversation, conversation_id)
            if (conversation is None or conversation.status is not ConversationStatus.claimed
                    or conversation.claimed_by != actor.user_id):
                return None
            session.execute(
                update(SupervisionNote)
                .where(SupervisionNote.conversation_id == conversation_id,
                       SupervisionNote.to_user_id == actor.user_id, SupervisionNote.seen_at.is_(None))
                .values(seen_at=now).execution_options(synchronize_session=False))
            names = dict(session.execute(select(User.id, User.display_name)).all())
            notes = self._notes(session, conversation_id, names, to=actor.user_id)
            asked = self._help(conversation)
            answer = None if asked is not None else self._answer(session, conversation_id, actor.user_id)
            return HolderView(conversation_id=conversation_id, help_requested_at=asked, notes=notes,
                              help_answered_by=names.get(answer[0]) if answer else None,
                              help_answered_at=answer[1] if answer else None)

    @staticmethod
    def _answer(session: Session, conversation_id: str, user_id: str) -> tuple[str, datetime] | None:
        """Who answered this person's last help request, and when (the audit log: the last help
        entry is an answer, and the request before it was theirs); else None. So a request does
        not just vanish from the holder's page when a supervisor opens the conversation."""
        entries = select(AuditLog).where(AuditLog.conversation_id == conversation_id,
                                         AuditLog.action.in_(("help_requested", "help_answered", "help_withdrawn")))
        last = session.scalars(entries.order_by(AuditLog.id.desc()).limit(1)).first()
        if last is None or last.action != "help_answered" or last.user_id is None:
            return None
        asked = session.scalars(entries.where(AuditLog.action == "help_requested", AuditLog.id < last.id)
                                .order_by(AuditLog.id.desc()).limit(1)).first()
        if asked is None or asked.user_id != user_id:
            return None
        return last.user_id, aware(last.at) or last.at

    # acting -------------------------------------------------------------------------------------

    def note(self, conversation_id: str, actor: Actor, text: str) -> None:
        """A note to the person who has the conversation; only they see it (never the parent)."""
        text = text.strip()
        if not text:
            raise Invalid("note_empty")
        if len(text) > MAX_NOTE_CHARS:
            raise Invalid("note_too_long", limit=MAX_NOTE_CHARS)
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            self.check(session, actor)
            conversation = self._live(session, conversation_id)
            holder = conversation.claimed_by
            if conversation.status is not ConversationStatus.claimed or holder is None:
                raise Conflict("not_claimed")
            if holder == actor.user_id:
                raise Conflict("supervise_own")
            session.add(SupervisionNote(conversation_id=conversation_id, author_id=actor.user_id,
                                        to_user_id=holder, text=text, created_at=now))
            self.ctx.audit(session, actor, "supervision_note", conversation_id, to=holder)  # never the text
        self._tell(holder, "note", conversation)

    def take_over(self, conversation_id: str, actor: Actor, holder: str) -> None:
        """The conversation becomes this supervisor's, if `holder` (whom they saw) still has it.
        The parent hears who joins (the warm handover's words), the holder is told."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            self.check(session, actor)
            conversation = self._live(session, conversation_id)
            if conversation.status is not ConversationStatus.claimed or conversation.claimed_by is None:
                raise Conflict("not_claimed")
            if conversation.claimed_by == actor.user_id:
                raise Conflict("supervise_own")
            if conversation.claimed_by != holder:
                raise Conflict("holder_changed")
            if conversation.channel is Channel.phone:
                raise NotAllowed("takeover_phone")  # the call is on someone's line
            moved = session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.status == ConversationStatus.claimed,
                       Conversation.claimed_by == holder)
                .values(claimed_by=actor.user_id, claimed_at=now, help_requested_at=None,
                        help_requested_by=None)
                .execution_options(synchronize_session=False))
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict("holder_changed")
            session.refresh(conversation)
            previous = self.ctx.open_handoff(session, conversation_id)
            if previous is not None:
                previous.status = HandoffStatus.transferred
                previous.closed_at = now
            session.add(Handoff(conversation_id=conversation_id, queue=conversation.queue or QueueName.volunteer,
                                priority=priority_of(conversation), reason="taken over",
                                status=HandoffStatus.claimed, claimed_by=actor.user_id, claimed_at=now,
                                created_at=now))
            session.flush()
            # The warm handover, once for this claim: the same rule and words as a pick-up.
            greeting = self.claims.greeting(session, conversation, actor, now)
            if greeting is not None:
                self.ctx.send(session, conversation, [greeting], user_id=actor.user_id)
            self.ctx.audit(session, actor, "taken_over", conversation_id, **{"from": holder})
        try:
            self.ctx.index.set_claim(conversation_id, actor.user_id)
        except redis.RedisError:
            pass  # the marker only guards a claim; the next rebuild takes SQL's holder
        self.ctx.publish("claimed", conversation, user_id=actor.user_id)
        self.ctx.publish("message", conversation, user_id=actor.user_id)
        self._tell(holder, "takeover", conversation)
        self.ctx.wake()

    def request_help(self, conversation_id: str, actor: Actor) -> int:
        """The person who has the conversation asks for help: it is marked and every supervisor
        present on shift is alerted. How many were alerted (0: nobody is there now)."""
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            if self._help(conversation) is None:  # none yet in this claim (an old one is void)
                conversation.help_requested_at = now
                conversation.help_requested_by = actor.user_id
            supervisors = self.supervisors_present(session, now, exclude=actor.user_id)
            self.ctx.audit(session, actor, "help_requested", conversation_id, alerted=len(supervisors))
        for user_id in supervisors:
            self._tell(user_id, "help", conversation)
        return len(supervisors)

    def withdraw_help(self, conversation_id: str, actor: Actor) -> None:
        now = self.ctx.clock()
        with self.ctx.factory() as session, session.begin():
            conversation = self.claims.held(session, conversation_id, actor)
            cleared = self._clear_help(session, conversation, actor, "withdrawn")
        if cleared is not None:
            self._tell_cleared(conversation_id, cleared, now)

    # helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _help(conversation: Conversation) -> datetime | None:
        """The help request, while the one who asked still has the conversation: asked in this
        claim (a request from before they gave it back and took it again is void)."""
        asked, claimed = aware(conversation.help_requested_at), aware(conversation.claimed_at)
        if (asked is not None
                and conversation.status is ConversationStatus.claimed
                and conversation.help_requested_by == conversation.claimed_by
                and (claimed is None or asked >= claimed)):
            return asked
        return None

    def _clear_help(self, session: Session, conversation: Conversation, actor: Actor, how: str) -> str | None:
        """Clear a help request that still counts; the one who asked it, or None."""
        if self._help(conversation) is None:
            return None
        asked_by = conversation.help_requested_by
        conversation.help_requested_at = None
        conversation.help_requested_by = None
        self.ctx.audit(session, actor, "help_withdrawn" if how == "withdrawn" else "help_answered",
                       conversation.id)
        return asked_by

    def _tell_cleared(self, conversation_id: str, asked_by: str, now: datetime) -> None:
        with self.ctx.factory() as session:
            conversation = session.get(Conversation, conversation_id)
            supervisors = self.supervisors_present(session, now)
        if conversation is None:
            return
        for user_id in dict.fromkeys([asked_by, *supervisors]):
            self._tell(user_id, "help_cleared", conversation)

    def _tell(self, user_id: str, kind: str, conversation: Conversation) -> None:
        """A personal event (handoff.events.PERSONAL): only this person's dashboard gets it."""
        publish(self.ctx.redis, Event(type=kind, conversation_id=conversation.id,
                                      queue=conversation.queue.value if conversation.queue else None,
                                      user_id=user_id, priority=conversation.priority),
                prefix=self.ctx.prefix)

    @staticmethod
    def _live(session: Session, conversation_id: str) -> Conversation:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise NotFound("conversation_gone")
        if conversation.status not in LIVE:
            raise Conflict("not_live")
        return conversation

    @staticmethod
    def _notes(session: Session, conversation_id: str, names: dict[str, str],
               to: str | None = None) -> list[NoteView]:
        query = select(SupervisionNote).where(SupervisionNote.conversation_id == conversation_id)
        if to is not None:
            query = query.where(SupervisionNote.to_user_id == to)
        return [NoteView(id=n.id, author_name=names.get(n.author_id) if n.author_id else None,
                         to_name=names.get(n.to_user_id) if n.to_user_id else None, text=n.text,
                         at=aware(n.created_at) or n.created_at, seen_at=aware(n.seen_at))
                for n in session.scalars(query.order_by(SupervisionNote.created_at))]


def _minutes(now: datetime, since: datetime | None) -> int | None:
    if since is None:
        return None
    return max(0, int((now - since).total_seconds() // 60))
