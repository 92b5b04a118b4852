"""The web layer chooses the status code of a refusal of the desk by its kind (handoff.errors
carries no HTTP codes) and says its reason in Dutch."""

from __future__ import annotations

import pytest

from bot.web.dashboard import refusal_status, refusal_text
from handoff.errors import Conflict, DeskError, Invalid, NotAllowed, NotFound


@pytest.mark.parametrize(("error", "status"), [
    (NotFound("conversation_gone"), 404),
    (NotAllowed("no_phone"), 403),
    (Conflict("just_claimed"), 409),
    (Invalid("reply_empty"), 400),
    (DeskError("reply_empty"), 400),
])
def test_each_kind_of_refusal_has_its_status(error: DeskError, status: int) -> None:
    assert refusal_status(error) == status


def test_a_refusal_is_said_in_dutch_with_its_detail() -> None:
    assert refusal_text(NotFound("conversation_gone")) == "Dit gesprek bestaat niet meer."
    assert refusal_text(Invalid("reply_too_long", limit=10)) == "Je bericht is te lang (meer dan 10 tekens)."
    assert not hasattr(Conflict("just_claimed"), "status")  # no HTTP below the web layer
