"""The outward warm handover: a short referral summary in the parent's own words, for a catalogue
service, which the parent receives to forward or show. Pure functions; nothing leaves the system
but this message to the parent, and only after their "ja"."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.intents.catalogue import CatalogueEntry, render_entry
from bot.intents.messages import Texts
from bot.triage.engine import TriageResult
from bot.triage.types import ConversationIntent, Language

MAX_WORDS_CHARS = 900

_YES = re.compile(r"^\s*(ja+|jaa|jep|jup|yes|yep|ok(ay|e)?|zeker|graag|doe maar|prima|goed)\b",
                  re.IGNORECASE)
_NO = re.compile(r"^\s*(nee+|neen|no+|nope|niet|liever niet)\b", re.IGNORECASE)


def consent_answer(text: str, triage: TriageResult | None) -> bool | None:
    """True for a yes, False for a no, None when the message is about something else."""
    if _NO.match(text) or (triage is not None and triage.intent == ConversationIntent.deny.value):
        return False
    if _YES.match(text) or (triage is not None and triage.intent == ConversationIntent.affirm.value):
        return True
    return None


def summary_texts(
    texts: Texts,
    language: str,
    entry: CatalogueEntry,
    parent_words: Sequence[str],
) -> list[str]:
    """The summary (the parent's own words, oldest first, shortened from the start when long) and
    how to reach the service, from the catalogue only."""
    lang = "en" if language == "en" else "nl"
    words = [w.strip() for w in parent_words if w.strip()]
    joined = "\n".join(f"- {w}" for w in words)
    if len(joined) > MAX_WORDS_CHARS:
        joined = "…" + joined[-MAX_WORDS_CHARS:]
    summary = texts.get("referral_summary", lang, service=entry.name, words=joined)
    contact = render_entry(entry, Language.en if lang == "en" else Language.nl)
    return [summary, texts.get("referral_contact", lang, service=entry.name, contact=contact)]
