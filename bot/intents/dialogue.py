"""The dialogue: what the bot says and does next, for one parent message. A pure function.

`decide` gets a view of the conversation, the message and its triage, and returns a Decision:
the texts to send (in order) and the state changes. It does no I/O; the pipeline applies it.
Rules, in order:
1. Danger: the guidance for its kind comes FIRST in the same reply (bot/intents/guidance.py: every
   acute message, and a high one whose danger is medical or psychiatric), in the parent's own
   language first, then Dutch. Danger now then goes to the top of the professional queue (never
   downgraded); other danger follows its route.
2. Once a person has the conversation (status claimed), the bot is silent.
3. What the bot was waiting for (a queue choice, a yes to deletion, "did this help?").
4. While queued: questions about privacy, hours and deletion are answered; otherwise the
   message joins the conversation, with at most one "your message was added" per 10 minutes.
5. Conversation intents, then the route: catalogue answer, a choice of queue, or the queue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.hours import Schedule
from bot.intents.catalogue import Catalogue, phases_for, render_answer
from bot.intents.guidance import guidance_kind
from bot.intents.messages import Texts
from bot.rules import PRIORITY, QueueName, WaitEstimate
from bot.storage.models import ConversationStatus
from bot.triage.engine import TriageResult
from bot.triage.types import ConversationIntent, Language, Risk, Route, Theme

NOTICE_INTERVAL = timedelta(minutes=10)
_YES = re.compile(
    r"^\s*(ja+|jaa|jep|jup|yes|yep|ok(ay|e)?|zeker|graag|doe maar|klopt|evet|tak|si|sí|oui)\b",
    re.IGNORECASE,
)
_NO = re.compile(r"^\s*(nee+|neen|no+|nope|niet|liever niet|hayir|hayır|nie|non)\b", re.IGNORECASE)
_VOLUNTEER = re.compile(r"^\s*(1|een|één|vrijwillig\w*|volunteer|ervaringsouder|ouder)\b",
                        re.IGNORECASE)
_PROFESSIONAL = re.compile(r"^\s*(2|twee|prof\w*|hulpverlen\w*|deskundige)\b", re.IGNORECASE)
_HUMAN_WORDS = re.compile(r"^\s*(mens|human|person|iemand)\s*[.!?]*\s*$", re.IGNORECASE)
_DAYS = {
    "nl": ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}


@dataclass(frozen=True)
class ConversationView:
    """What the dialogue needs to know about a conversation."""

    welcomed: bool
    status: ConversationStatus
    awaiting: str | None
    language: str
    queue: QueueName | None
    priority: int | None
    waiting_notice_at: datetime | None
    highest_risk: Risk = Risk.none  # the conversation's, which sets its place in the queue


@dataclass(frozen=True)
class Incoming:
    text: str
    triage: TriageResult | None
    media_only: bool = False
    command: str | None = None


@dataclass
class Decision:
    replies: list[str] = field(default_factory=list)
    status: ConversationStatus | None = None
    queue: QueueName | None = None
    priority: int | None = None
    reason: str | None = None
    awaiting: str | None = None  # the new value (None clears it)
    welcomed: bool = False
    notice_at: datetime | None = None
    delete: bool = False
    close: bool = False
    preferred: QueueName | None = None  # the parent chose volunteer or professional themselves
    # Catalogue entries given in reply number `catalogue_reply` (for the handover card).
    catalogue_ids: list[str] = field(default_factory=list)
    catalogue_reply: int | None = None
    #: The danger guidance given first (a key of data/messages/guidance.yml), and how many replies
    #: it took (own language, then Dutch).
    guidance: str | None = None
    guidance_replies: int = 0


@dataclass(frozen=True)
class DialogueContext:
    texts: Texts
    catalogue: Catalogue
    retention_days: int
    #: When someone is expected per queue: the roster, or the opening hours without one.
    volunteer_hours: Schedule
    professional_hours: Schedule
    zone: ZoneInfo
    region: str
    include_unverified: bool
    estimate: Callable[[QueueName, int], WaitEstimate]
    now: datetime
    #: An on-call professional gets an SMS when danger now waits and nobody is online.
    on_call: bool = False


def decide(view: ConversationView, incoming: Incoming, ctx: DialogueContext) -> Decision:
    decision = _decide(view, incoming, ctx)
    triage = incoming.triage
    if decision.replies and triage is not None and triage.language is Language.other:
        # Whatever we say in Dutch: first (after any guidance, which is already in their language)
        # one line in the parent's own language where we have it.
        own = ctx.texts.in_language(triage.language_code) or ctx.texts.get("other_language", "nl")
        decision.replies.insert(decision.guidance_replies, own)
        if decision.catalogue_reply is not None and decision.catalogue_reply >= decision.guidance_replies:
            decision.catalogue_reply += 1
    return decision


def _decide(view: ConversationView, incoming: Incoming, ctx: DialogueContext) -> Decision:
    lang = _language(view, incoming)
    t = ctx.texts
    decision = Decision(awaiting=view.awaiting, welcomed=view.welcomed)

    def say(key: str, **values: object) -> None:
        decision.replies.append(t.get(key, lang, **values))

    if incoming.command == "stop":
        decision.replies.append(t.get("stop", lang))
        decision.close, decision.awaiting = True, None
        return decision
    if incoming.command == "wipe":  # "stop en wis": deleted at once, whatever the status
        decision.replies.append(t.get("delete_done", lang))
        decision.delete, decision.awaiting = True, None
        return decision

    triage = incoming.triage
    acute = triage is not None and triage.risk is Risk.acute
    if view.status is ConversationStatus.claimed:
        return decision  # a person has it: the bot stays silent (the handoff issue adds alerts)

    kind = guidance_kind(triage.risk, triage.danger, triage.risk_category) if triage is not None else None
    if kind is not None and triage is not None and t.guidance is not None:
        code = "en" if lang == "en" else (triage.language_code if triage.language is Language.other else "nl")
        given = t.guidance.for_parent(kind, code)
        decision.replies.extend(given)
        decision.guidance, decision.guidance_replies = kind, len(given)
    if not view.welcomed:
        say("welcome", retention_days=ctx.retention_days)
        decision.welcomed = True
    if acute:
        if view.status is not ConversationStatus.queued or view.queue is not QueueName.professional \
                or (view.priority or 9) > PRIORITY[Risk.acute]:
            _queue(decision, view, QueueName.professional, Risk.acute, "acute risk", ctx, lang)
        decision.awaiting = None
        return decision
    if incoming.command == "start":
        if view.welcomed:
            say("greet_again")
        return decision
    if incoming.media_only or triage is None:
        say("media")
        return decision

    intent = triage.intent

    # 3. What the bot was waiting for.
    if view.awaiting == "confirm_delete":
        if _YES.match(incoming.text) or intent == ConversationIntent.affirm.value:
            decision.replies.append(t.get("delete_done", lang))
            decision.delete, decision.awaiting = True, None
            return decision
        decision.awaiting = None
        if _NO.match(incoming.text) or intent == ConversationIntent.deny.value:
            say("delete_cancelled")
            return decision
        view = replace(view, awaiting=None)
    if view.awaiting == "choose_queue":
        decision.awaiting = None
        suggested = view.queue or QueueName.volunteer
        if _VOLUNTEER.match(incoming.text):
            decision.preferred = QueueName.volunteer
            return _queue(decision, view, QueueName.volunteer, triage.risk, "parent's choice", ctx, lang)
        if _PROFESSIONAL.match(incoming.text):
            decision.preferred = QueueName.professional
            return _queue(decision, view, QueueName.professional, triage.risk, "parent's choice", ctx, lang)
        if intent in _ANSWERED_WHILE_WAITING or triage.theme is not Theme.none:
            view = replace(view, awaiting=None)  # a new question: handle it below
        else:
            say("choose_queue_unclear")
            return _queue(decision, view, suggested, triage.risk, "no choice made", ctx, lang, quiet=True)
    if view.awaiting == "helped":
        decision.awaiting = None
        if intent == ConversationIntent.affirm.value or _YES.match(incoming.text):
            say("helped_yes")
            return decision
        if intent == ConversationIntent.deny.value or _NO.match(incoming.text):
            say("choose_queue")
            decision.awaiting = "choose_queue"
            return decision

    # 4. While waiting for a person.
    if view.status is ConversationStatus.queued and intent not in _ANSWERED_WHILE_WAITING:
        if triage.risk.rank > Risk.none.rank and view.priority is not None \
                and PRIORITY[triage.risk] < view.priority:
            decision.priority = PRIORITY[triage.risk]  # moves up, never down
        if view.waiting_notice_at is None or ctx.now - view.waiting_notice_at >= NOTICE_INTERVAL:
            say("message_added")
            decision.notice_at = ctx.now
        return decision

    # 5. Conversation intents.
    if intent == ConversationIntent.delete_my_data.value:
        say("delete_confirm")
        decision.awaiting = "confirm_delete"
        return decision
    if intent == ConversationIntent.ask_privacy.value:
        say("privacy", retention_days=ctx.retention_days)
        return decision
    if intent == ConversationIntent.ask_hours.value:
        decision.replies.append(hours_text(ctx, lang))
        return decision
    if intent == ConversationIntent.bot_challenge.value:
        say("bot_challenge")
        return decision
    if intent == ConversationIntent.thanks.value:
        say("thanks")
        return decision
    if intent == ConversationIntent.goodbye.value:
        say("goodbye")
        return decision
    if intent == ConversationIntent.greet.value:
        if view.welcomed:
            say("greet_again")
        return decision
    if intent == ConversationIntent.out_of_scope.value:
        say("out_of_scope")
        return decision
    if intent == ConversationIntent.ask_human.value or _HUMAN_WORDS.match(incoming.text):
        if triage.route is Route.professional:
            return _queue(decision, view, QueueName.professional, triage.risk, "asked for a person", ctx, lang)
        say("choose_queue")
        decision.awaiting = "choose_queue"
        return decision

    # 6. The route. Strain ("ik trek het niet meer") first gets one line of acknowledgement.
    strained = triage.strain and triage.risk.rank < Risk.high.rank and kind is None
    if triage.route is Route.professional:
        reason = f"risk {triage.risk.value}" if triage.risk is Risk.high else f"theme {triage.theme.value}"
        return _queue(decision, view, QueueName.professional, triage.risk, reason, ctx, lang)
    if triage.route is Route.volunteer:
        if strained:
            say("strain_heard")
        say("choose_queue")
        decision.awaiting = "choose_queue"
        return decision
    if triage.clarify or triage.theme is Theme.none:
        if strained:
            say("strain_heard")
            say("choose_queue")
            decision.awaiting = "choose_queue"
            return decision
        say("clarify")
        return decision
    entries = ctx.catalogue.pick(triage.theme, region=ctx.region,
                                 include_unverified=ctx.include_unverified,
                                 phases=phases_for(triage.facts.child_age_days, triage.facts.pregnancy_week))
    if strained:
        say("strain_heard")
        if not entries:
            say("choose_queue")
            decision.awaiting = "choose_queue"
            return decision
        say("strain_offer")
    if entries:
        decision.replies.append(render_answer(entries, _catalogue_language(lang)))
        decision.catalogue_ids = [e.id for e in entries]
        decision.catalogue_reply = len(decision.replies) - 1
        decision.awaiting = "helped"
    else:
        decision.replies.append(render_answer([], _catalogue_language(lang)))
    return decision


_ANSWERED_WHILE_WAITING = {
    ConversationIntent.ask_privacy.value,
    ConversationIntent.ask_hours.value,
    ConversationIntent.delete_my_data.value,
}


def _queue(decision: Decision, view: ConversationView, queue: QueueName, risk: Risk, reason: str,
           ctx: DialogueContext, lang: str, quiet: bool = False) -> Decision:
    """Queue (or re-queue higher) and tell the parent honestly how long it will take. The place in
    the queue follows the conversation's highest risk, not only this message's ("1" after
    "ik voel me zo alleen" waits as a concern)."""
    priority = min(PRIORITY[risk], PRIORITY[view.highest_risk])
    if view.priority is not None and view.status is ConversationStatus.queued:
        priority = min(priority, view.priority)
    decision.status = ConversationStatus.queued
    decision.queue, decision.priority, decision.reason = queue, priority, reason
    t = ctx.texts
    if not quiet:
        key = "queued_emergency" if risk is Risk.acute else f"queued_{queue.value}"
        decision.replies.append(t.get(key, lang))
    decision.replies.append(wait_text(ctx, queue, priority, lang))
    decision.notice_at = ctx.now
    return decision


def wait_text(ctx: DialogueContext, queue: QueueName, priority: int, lang: str) -> str:
    """An honest wait: minutes when someone is online, else that nobody is and from when someone
    is there by the rota. Never a time nobody keeps. Danger now says what to do meanwhile."""
    estimate = ctx.estimate(queue, priority)
    t = ctx.texts
    if estimate.people_on_shift > 0 and estimate.minutes is not None and estimate.closes_at is not None:
        # Someone is there, but the wait runs past the end of their planned time: no minutes.
        ends = estimate.closes_at.astimezone(ctx.zone).strftime("%H:%M")
        after = estimate.next_shift_starts
        if after is None or after <= ctx.now:
            return t.get("wait_past_closing_unknown", lang, time=ends)
        return t.get("wait_past_closing", lang, time=ends, when=_when(ctx, after, lang))
    if estimate.people_on_shift > 0 and estimate.minutes is not None:
        key = "wait_minutes" if estimate.minutes <= 15 else "wait_busy"
        return t.get(key, lang, minutes=max(5, estimate.minutes))
    emergency = priority == PRIORITY[Risk.acute]
    moment = estimate.next_shift_starts
    if moment is None or moment <= ctx.now:
        text = t.get("wait_emergency_unknown" if emergency else "wait_nobody_unknown", lang)
    else:
        text = t.get("wait_emergency_nobody" if emergency else "wait_nobody", lang,
                     when=_when(ctx, moment, lang))
    if emergency and ctx.on_call:
        text += " " + t.get("wait_on_call", lang)
    return text


def hours_text(ctx: DialogueContext, lang: str) -> str:
    """When is someone there? Fixed daily hours as they are; with a roster (no fixed hours), per
    queue: now, or from when the roster next has someone (never a time nobody planned)."""
    volunteer, professional = ctx.volunteer_hours.text(), ctx.professional_hours.text()
    if volunteer is not None and professional is not None:
        return ctx.texts.get("hours", lang, volunteer_hours=volunteer, professional_hours=professional)

    def phrase(schedule: Schedule) -> str:
        daily = schedule.text()
        if daily is not None:
            return ctx.texts.get("hours_daily", lang, hours=daily)
        if schedule.is_open(ctx.now, ctx.zone):
            return ctx.texts.get("hours_now", lang)
        moment = schedule.next_opening(ctx.now, ctx.zone)
        if moment is None:
            return ctx.texts.get("hours_unknown", lang)
        when = _when(ctx, moment, lang)
        return when[:1].lower() + when[1:]

    return ctx.texts.get("hours_roster", lang, volunteer=phrase(ctx.volunteer_hours),
                         professional=phrase(ctx.professional_hours))


def _when(ctx: DialogueContext, moment: datetime, lang: str) -> str:
    return when_text(ctx.texts, ctx.zone, ctx.now, moment, lang)


def when_text(texts: Texts, zone: ZoneInfo, now: datetime, moment: datetime, lang: str) -> str:
    """When someone is there again, as a parent reads it and a caller hears it ("Morgen vanaf
    09:00"): the ONE place for it, used by `decide` and `decide_call` (bot.intents.call)."""
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return texts.get("when_today", lang, time=clock)
    if local.date() == today + timedelta(days=1):
        return texts.get("when_tomorrow", lang, time=clock)
    day = _DAYS["en" if lang == "en" else "nl"][local.weekday()]
    return texts.get("when_day", lang, day=day, time=clock)


def _language(view: ConversationView, incoming: Incoming) -> str:
    if incoming.triage is not None and incoming.triage.language is Language.en:
        return "en"
    if view.language == "en" and len(incoming.text.split()) < 4:
        return "en"  # "ok", "yes 2": too short to switch back
    return "nl"


def _catalogue_language(lang: str) -> Language:
    return Language.en if lang == "en" else Language.nl


