"""What the desk refuses, and why: domain errors without HTTP codes or words for people.

`reason` is a key (e.g. "conversation_gone"); `detail` fills its text. The web layer chooses the
status code by the error's class and says the reason in Dutch (data/labels/nl.yml, "errors").
"""

from __future__ import annotations

from typing import Any

from bot.errors import OudertelefoonError


class DeskError(OudertelefoonError):
    """An action a person cannot do now (the base; on its own: input the desk cannot take)."""

    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class Invalid(DeskError):
    """Input the desk cannot take (empty, too long, not in the list)."""


class NotAllowed(DeskError):
    """Not for this person (their role, their queue, their profile)."""


class Conflict(DeskError):
    """The conversation is no longer where this person thought it was (someone else has it)."""


class NotFound(DeskError):
    """The conversation, block or standard text does not exist (any more)."""


__all__ = ["Conflict", "DeskError", "Invalid", "NotAllowed", "NotFound"]
