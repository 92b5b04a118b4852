"""The labels file (data/labels/nl.yml, bot.labels): every value people can see has its word, and
every refusal the desk can raise has its Dutch text (the desk itself names only a reason)."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.labels import (
    AUTHOR_LABELS,
    CHANNEL_LABELS,
    ERROR_TEXTS,
    KIND_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    QUEUE_LABELS,
    RISK_LABELS,
    ROLE_LABELS,
    THEME_LABELS,
    error_text,
)
from bot.rules import PRIORITY, QueueName
from bot.storage.models import Author, Channel, Role
from bot.triage.types import Risk, Theme
from handoff import errors
from handoff.context import Outcome

HANDOFF = Path(__file__).resolve().parents[2] / "handoff"


def test_every_value_has_a_word_and_an_enum_member_finds_it() -> None:
    assert set(THEME_LABELS) == {t.value for t in Theme if t is not Theme.none}
    for enum, labels in ((Risk, RISK_LABELS), (Channel, CHANNEL_LABELS), (Role, ROLE_LABELS),
                         (QueueName, QUEUE_LABELS), (QueueName, KIND_LABELS), (Outcome, OUTCOME_LABELS),
                         (Author, AUTHOR_LABELS)):
        assert set(labels) == {m.value for m in enum}, enum.__name__
        assert all(labels[m] == labels[m.value] for m in enum)  # a member is a key as well
    assert set(PRIORITY_LABELS) == set(PRIORITY.values())
    assert RISK_LABELS[Risk.acute] == "acuut" and QUEUE_LABELS[QueueName.professional] == "hulpverleners"


def _raised_reasons() -> set[str]:
    """The reason of every `raise SomeDeskError("reason", ...)` in handoff/."""
    kinds = {name for name in dir(errors) if isinstance(getattr(errors, name), type)
             and issubclass(getattr(errors, name), errors.DeskError)}
    reasons: set[str] = set()
    for path in HANDOFF.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in kinds):
                first = node.exc.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), path.name
                reasons.add(first.value)
    return reasons


def test_every_refusal_of_the_desk_has_its_dutch_text() -> None:
    reasons = _raised_reasons()
    assert {"conversation_gone", "not_yours", "no_phone", "reply_too_long"} <= reasons  # the scan works
    assert reasons - set(ERROR_TEXTS) == set()


def test_a_refusal_text_is_filled_from_the_reason_detail() -> None:
    assert error_text("reply_too_long", limit=4000) == "Je bericht is te lang (meer dan 4000 tekens)."
    assert error_text("unknown_theme", themes="x, y") == "Onbekend thema: x, y"
    assert error_text("no_such_reason") == ERROR_TEXTS["unknown"]
    assert error_text("reply_too_long") == ERROR_TEXTS["reply_too_long"]  # detail missing: as written
