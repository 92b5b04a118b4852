"""Identifiers from ../shared/brief/taxonomy.md. These are a contract: data, code, database and
the `triage` command's JSON all use exactly these values."""

from __future__ import annotations

import enum


class Theme(str, enum.Enum):
    """What a message is about. `none` for a message that is only a conversation intent."""

    money = "money"
    housing = "housing"
    pregnancy = "pregnancy"
    family_planning = "family_planning"
    baby_care = "baby_care"
    child_health = "child_health"
    parenting = "parenting"
    mental_health = "mental_health"
    domestic_violence = "domestic_violence"
    addiction = "addiction"
    relationship = "relationship"
    loneliness = "loneliness"
    language_and_forms = "language_and_forms"
    rights_and_status = "rights_and_status"
    childcare_work_school = "childcare_work_school"
    none = "none"


class ConversationIntent(str, enum.Enum):
    """Intents of the same classifier that are about the conversation, not a theme."""

    greet = "greet"
    goodbye = "goodbye"
    thanks = "thanks"
    affirm = "affirm"
    deny = "deny"
    ask_human = "ask_human"
    bot_challenge = "bot_challenge"
    ask_privacy = "ask_privacy"
    ask_hours = "ask_hours"
    delete_my_data = "delete_my_data"
    out_of_scope = "out_of_scope"


class Risk(str, enum.Enum):
    """How urgent a message is. Ordered: compare with `Risk.rank`."""

    none = "none"
    concern = "concern"
    high = "high"
    acute = "acute"

    @property
    def rank(self) -> int:
        return _RISK_ORDER.index(self)

    @classmethod
    def highest(cls, *levels: Risk) -> Risk:
        return max(levels, key=lambda level: level.rank, default=cls.none)


_RISK_ORDER = [Risk.none, Risk.concern, Risk.high, Risk.acute]


class Route(str, enum.Enum):
    """Where the conversation goes next."""

    bot = "bot"
    volunteer = "volunteer"
    professional = "professional"
    emergency = "emergency"


class Danger(str, enum.Enum):
    """What kind of danger a high or acute message carries, so the first reply can carry the
    right guidance (taxonomy.md, "danger kind"). `none` below high, and where no kind fits."""

    none = "none"
    suicide = "suicide"
    violence_now = "violence_now"
    child_in_danger = "child_in_danger"
    medical_child = "medical_child"
    medical_pregnancy = "medical_pregnancy"
    psychiatric = "psychiatric"
    homeless_now = "homeless_now"

    @property
    def medical(self) -> bool:
        """Medical and psychiatric dangers get their guidance first even at risk `high`."""
        return self in _GUIDANCE_AT_HIGH


_GUIDANCE_AT_HIGH = frozenset({Danger.medical_child, Danger.medical_pregnancy, Danger.psychiatric})
DANGER_KINDS: tuple[str, ...] = tuple(d.value for d in Danger if d is not Danger.none)


class Language(str, enum.Enum):
    """Language of a message as triage reports it."""

    nl = "nl"
    en = "en"
    other = "other"


THEMES: tuple[str, ...] = tuple(t.value for t in Theme if t is not Theme.none)
CONVERSATION_INTENTS: tuple[str, ...] = tuple(i.value for i in ConversationIntent)
ALL_INTENTS: tuple[str, ...] = THEMES + CONVERSATION_INTENTS
FALLBACK_INTENT = "nlu_fallback"
