"""The call: what the phone line says and does next, for one turn of a call. A pure function.

`decide_call` sits beside `decide` (bot.intents.dialogue) and uses the same rules: the danger
kinds and when guidance comes first (bot.intents.guidance), the queue rule and priority
(bot.rules), the same guidance entries (spoken digit by digit) and the same "when" as chat. It does
no I/O: the pipeline applies the decision (`Pipeline.call_turn`), the voice adapter renders it as
TwiML (bot.channels.voice). Rules, in order:

1. Danger now (risk acute, or the emergency route): the guidance for its kind FIRST, then a
   professional present is rung; nobody: the guidance again and the top of the professional queue.
2. A medical or psychiatric danger at risk high: its guidance first, then the call goes on (3).
3. Information asked, or a theme the bot answers: catalogue entries. Unclear words: the keys.
   Otherwise the route's queue (queue_for: calm calls go to a volunteer unless the caller chose):
   closed -> when someone is back (the rota), entries and the keys for SMS and a callback;
   open and someone present -> ring them; nobody -> wait on the line in the queue.
4. A failure anywhere (`CallStep.failed`): the safe fallback, the emergency numbers spoken, then
   the queue by risk (queue_for_risk).
A conversation that already waits, is claimed or is closed keeps its place: it is never queued twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.errors import DataError
from bot.intents.catalogue import DEFAULT_MESSAGES_DIR, Catalogue, CatalogueEntry, render_entry
from bot.intents.dialogue import when_text
from bot.intents.guidance import Guidance, guidance_kind, spoken
from bot.intents.messages import Texts
from bot.rules import PRIORITY, QueueName, queue_for, queue_for_risk
from bot.storage.models import ConversationStatus
from bot.triage.engine import TriageResult
from bot.triage.types import Language, Risk, Route, Theme

#: Which configured number a caller in danger may be connected to by a key, by kind of danger.
DIAL_TARGETS = {"suicide": "113", "violence_now": "veilig_thuis"}
#: Reasons on the dashboard (the desk shows them as they are).
REASON_ACUTE = "telefoon: spoed"
REASON_WAITING = "telefoon: wacht aan de lijn"
REASON_CALLBACK = "telefoon: terugbelverzoek"
REASON_FAILED = "telefoon: storing"


# Texts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceTexts:
    """The spoken texts (data/messages/voice.yml): `nl`, `en` and the Dutch `whisper`."""

    by_language: dict[str, dict[str, str]]
    whisper: dict[str, str]
    #: The emergency guidance: the same entries the chat shows (data/messages/guidance.yml),
    #: spoken with the numbers digit by digit, so chat and phone cannot drift.
    guidance: Guidance

    def get(self, key: str, lang: str, **values: Any) -> str:
        template = self.by_language["en" if lang == "en" else "nl"][key]
        return template.format(**values) if values else template


@lru_cache(maxsize=4)
def load_voice_texts(path: Path) -> VoiceTexts:
    """Read and check voice.yml: both languages must have the same keys (DataError otherwise)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{path}: cannot read the voice texts: {error}") from None
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected sections nl, en and whisper")
    sections: dict[str, dict[str, str]] = {}
    for name in ("nl", "en", "whisper"):
        section = document.get(name)
        if not isinstance(section, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in section.items()):
            raise DataError(f"{path}: key '{name}': expected a mapping of texts")
        sections[name] = section
    if set(sections["nl"]) != set(sections["en"]):
        missing = sorted(set(sections["nl"]) ^ set(sections["en"]))
        raise DataError(f"{path}: nl and en differ in keys: {', '.join(missing)}")
    return VoiceTexts({"nl": sections["nl"], "en": sections["en"]}, sections["whisper"],
                      Guidance.load(path.parent / "guidance.yml"))


def fallback_words(voice: VoiceTexts, chat: Texts, lang: str) -> list[str]:
    """What a caller hears when handling the call failed: the chat's own fallback entry, then the
    emergency lines, every number spoken digit by digit (bot.intents.guidance.spoken)."""
    return [spoken(chat.get("fallback", lang)), spoken(voice.get("fallback_numbers", lang))]


def down_words(voice: VoiceTexts, lang: str) -> list[str]:
    """When even the fallback cannot put the caller in the queue: call again, and the numbers."""
    return [spoken(voice.get("fallback_down", lang)), spoken(voice.get("fallback_numbers", lang))]


# The decision -----------------------------------------------------------------------------------


class CallStep(str, enum.Enum):
    """What happened on the call that needs a decision."""

    words = "words"  # the caller said something (triaged)
    key = "key"  # the caller chose with a key: 1 a volunteer, 2 a professional (`CallTurn.queue`)
    nobody = "nobody"  # the person rung did not take the call (`queue`; with `kind`: danger now)
    callback = "callback"  # after hours, key 2: call me back when someone is there (`queue`)
    sms = "sms"  # key 1 after entries were spoken: send them by SMS (`entries`), once
    failed = "failed"  # handling this request failed: the safe fallback


class CallNext(str, enum.Enum):
    """What the line does after the spoken texts (the adapter renders it)."""

    dial = "dial"  # ring a person present for `queue`, who hears the handover first
    enqueue = "enqueue"  # wait on the line; the conversation waits in the dashboard queue
    after_hours = "after_hours"  # the entries, then the keys for SMS and a callback
    information = "information"  # the entries (or none known), then the keys
    menu = "menu"  # the words were unclear: the keys
    acute_dial = "acute_dial"  # danger now: ring the professional present
    acute_queued = "acute_queued"  # danger now, nobody: the line by a key (`dial_target`), goodbye
    goodbye = "goodbye"


@dataclass(frozen=True)
class CallView:
    """What the call's decision needs to know about its conversation (after this turn's triage)."""

    status: ConversationStatus
    route: Route = Route.bot
    highest_risk: Risk = Risk.none
    themes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallTurn:
    step: CallStep
    triage: TriageResult | None = None
    #: The caller's key choice, or the queue a call was already on its way to.
    queue: QueueName | None = None
    #: "info": the caller asked for information (key 3).
    mode: str = ""
    #: The danger kind of a call that was rung to a professional (CallStep.nobody).
    kind: str | None = None
    #: The language the call is in so far ("nl" or "en").
    language: str = "nl"
    #: How sure speech recognition is of the words (1.0: not given).
    confidence: float = 1.0
    #: The catalogue entries that were spoken (CallStep.sms).
    entries: tuple[str, ...] = ()

    def with_triage(self, result: TriageResult) -> CallTurn:
        return replace(self, triage=result)


@dataclass(frozen=True)
class CallContext:
    voice: VoiceTexts
    texts: Texts  # the chat's texts: "when", the fallback
    catalogue: Catalogue
    region: str
    include_unverified: bool
    now: datetime
    zone: ZoneInfo
    #: Whether each queue's schedule (the roster, or the opening hours without one) has someone
    #: now, and its next opening by the rota (None: nothing planned ahead).
    open_now: Mapping[QueueName, bool]
    next_opening: Mapping[QueueName, datetime | None]
    #: The queues with someone present who has a number for calls and was not rung yet.
    reachable: frozenset[QueueName] = frozenset()
    messages_dir: Path = DEFAULT_MESSAGES_DIR  # the catalogue's labels for an entry sent by SMS


@dataclass
class CallDecision:
    next: CallNext
    language: str = "nl"
    #: Spoken first, in this order (guidance first for danger).
    say: list[str] = field(default_factory=list)
    #: The danger guidance given (a key of data/messages/guidance.yml), if any.
    guidance: str | None = None
    #: The queue the call is on its way to (dial, enqueue, after hours), and whether the
    #: conversation is put in it now (status queued) with this priority and reason.
    queue: QueueName | None = None
    status: ConversationStatus | None = None
    priority: int | None = None
    reason: str | None = None
    entries: list[CatalogueEntry] = field(default_factory=list)
    dial_target: str | None = None
    audit: str | None = None
    #: The entries as one SMS to the calling number (the caller pressed 1 for it).
    sms: str | None = None


def heard(result: TriageResult, confidence: float, threshold: float) -> bool:
    """Words are taken when recognition is sure enough, or when they are about danger now
    (safety first: asked again would lose time)."""
    return confidence >= threshold or _acute(result)


def decide_call(view: CallView, turn: CallTurn, ctx: CallContext) -> CallDecision:
    lang = "en" if turn.language == "en" else "nl"
    triage = turn.triage
    if triage is not None and triage.language is Language.en:
        lang = "en"
    if turn.step is CallStep.failed:
        decision = CallDecision(CallNext.enqueue, lang, say=fallback_words(ctx.voice, ctx.texts, lang))
        return _queue(decision, view, queue_for_risk(view.highest_risk), PRIORITY[view.highest_risk],
                      REASON_FAILED)
    if turn.step is CallStep.nobody and turn.kind is not None:
        return _acute_queued(view, turn.kind, lang, ctx, times=1)
    if turn.step is CallStep.callback:
        queue = queue_for(view.route, turn.queue)
        decision = CallDecision(CallNext.goodbye, lang, say=[ctx.voice.get("callback_done", lang)],
                                audit="voice_callback_requested")
        return _queue(decision, view, queue, PRIORITY[view.highest_risk], REASON_CALLBACK)
    if turn.step is CallStep.sms:
        decision = CallDecision(CallNext.goodbye, lang, say=[ctx.voice.get("sms_sent", lang)])
        decision.entries = [ctx.catalogue.get(i) for i in turn.entries if i in ctx.catalogue]
        if decision.entries:
            language = Language.en if lang == "en" else Language.nl
            decision.sms = "\n\n".join([ctx.voice.get("sms_intro", lang), *(
                render_entry(e, language, messages_dir=ctx.messages_dir) for e in decision.entries)])
            decision.audit = "voice_sms_consent"
        return decision
    if turn.step is CallStep.key:
        return _connect(view, queue_for(view.route, turn.queue), None, lang, ctx, first=True)
    if turn.step is CallStep.nobody:
        return _connect(view, queue_for(view.route, turn.queue), None, lang, ctx, first=False)

    # The caller's words.
    assert triage is not None, "a words turn needs its triage"
    kind = guidance_kind(triage.risk, triage.danger, triage.risk_category)
    if _acute(triage):
        kind = kind or "general"
        if QueueName.professional in ctx.reachable:
            return CallDecision(CallNext.acute_dial, lang, queue=QueueName.professional, guidance=kind,
                                say=[_guidance(ctx, kind, lang),
                                     ctx.voice.get("acute_connecting", lang)])
        return _acute_queued(view, kind, lang, ctx, times=2)
    if turn.mode == "info" or (triage.route is Route.bot and triage.theme is not Theme.none):
        decision = CallDecision(CallNext.information, lang, entries=_entries(ctx, triage.theme))
    elif triage.route is Route.bot:
        decision = CallDecision(CallNext.menu, lang)  # a greeting or unclear words: the keys
    else:
        decision = _connect(view, queue_for(triage.route), triage.theme, lang, ctx, first=True)
    if kind is not None:
        # A medical or psychiatric danger at risk high: its guidance first, then the line goes on.
        decision.say.insert(0, _guidance(ctx, kind, lang))
        decision.guidance = kind
    return decision


def _acute(triage: TriageResult) -> bool:
    return triage.risk is Risk.acute or triage.route is Route.emergency


def _guidance(ctx: CallContext, kind: str, lang: str) -> str:
    return ctx.voice.guidance.spoken(kind, lang)


def _acute_queued(view: CallView, kind: str, lang: str, ctx: CallContext, *, times: int) -> CallDecision:
    """Nobody present took the call: the guidance (again), the right line by a key, and the top of
    the professional queue."""
    decision = CallDecision(CallNext.acute_queued, lang, guidance=kind,
                            say=[_guidance(ctx, kind, lang)] * times, dial_target=DIAL_TARGETS.get(kind))
    return _queue(decision, view, QueueName.professional, PRIORITY[Risk.acute], REASON_ACUTE)


def _connect(view: CallView, queue: QueueName, theme: Theme | None, lang: str, ctx: CallContext,
             *, first: bool) -> CallDecision:
    # Planned is not present: someone there to ring (stayed on after their shift, or came
    # unplanned) is rung, whatever the rota says; after hours is for when nobody is.
    if not ctx.open_now[queue] and queue not in ctx.reachable:
        opening = ctx.next_opening[queue]
        if opening is not None and opening > ctx.now:
            text = ctx.voice.get("after_hours", lang,
                                 when=when_text(ctx.texts, ctx.zone, ctx.now, opening, lang))
        else:  # nothing planned ahead, or open by the rota but nobody there: no made-up time
            text = ctx.voice.get("after_hours_unknown", lang)
        if theme is None:
            theme = Theme(view.themes[-1]) if view.themes else None
        return CallDecision(CallNext.after_hours, lang, say=[text], queue=queue,
                            entries=_entries(ctx, theme))
    if queue in ctx.reachable:
        return CallDecision(CallNext.dial, lang, queue=queue,
                            say=[ctx.voice.get("connecting", lang)] if first else [])
    decision = CallDecision(CallNext.enqueue, lang, say=[ctx.voice.get("queued", lang)])
    return _queue(decision, view, queue, PRIORITY[view.highest_risk], REASON_WAITING)


def _queue(decision: CallDecision, view: CallView, queue: QueueName, priority: int,
           reason: str) -> CallDecision:
    """The call's conversation into the dashboard queue, unless it already waits, is a person's
    or is closed (a replayed webhook, a second try: once is enough)."""
    queue = queue_for(view.route, queue)  # an emergency or professional route is never moved down
    decision.queue = queue
    if view.status in (ConversationStatus.queued, ConversationStatus.claimed, ConversationStatus.closed):
        return decision
    decision.status = ConversationStatus.queued
    decision.priority, decision.reason = priority, reason
    return decision


def _entries(ctx: CallContext, theme: Theme | None) -> list[CatalogueEntry]:
    """At most two entries for the theme, those with a phone number first."""
    if theme is None or theme is Theme.none:
        return []
    picked = ctx.catalogue.pick(theme, region=ctx.region, limit=3,
                                include_unverified=ctx.include_unverified)
    picked.sort(key=lambda e: e.contact is None or e.contact.phone is None)
    return picked[:2]


@dataclass(frozen=True)
class CallOutcome:
    """What `Pipeline.call_turn` hands back to the adapter. `conversation_id` None: nothing to
    answer for (a blocked caller, a replay of a call deleted since); `heard` False: the words were
    too unsure, nothing was stored (ask again)."""

    conversation_id: str | None
    decision: CallDecision | None
    heard: bool = True
