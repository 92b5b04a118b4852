from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.hours import parse_hours
from bot.privacy import mask

ZONE = ZoneInfo("Europe/Amsterdam")


def test_hours() -> None:
    hours = parse_hours("09:00-23:00")
    assert hours.is_open(datetime(2026, 11, 22, 12, 0, tzinfo=UTC), ZONE)
    late = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 23:30 local
    assert not hours.is_open(late, ZONE)
    assert hours.next_opening(late, ZONE) == datetime(2026, 11, 23, 9, 0, tzinfo=ZONE)
    night = parse_hours("22:00-06:00")
    assert night.is_open(datetime(2026, 11, 22, 2, 0, tzinfo=UTC), ZONE)
    assert parse_hours("00:00-24:00").always
    for bad in ("9-17", "25:00-26:00", "09:00"):
        with pytest.raises(ValueError):
            parse_hours(bad)


def test_mask_removes_contact_details_and_numbers() -> None:
    text = "bel 06-12345678 of +31 6 1234 5678, mail a.b@x.nl, 1012 AB, bsn 123456789; 28 weken, 3 kids"
    masked = mask(text)
    for secret in ("12345678", "1234 5678", "a.b@x.nl", "1012 AB", "123456789"):
        assert secret not in masked
    assert "28 weken" in masked and "3 kids" in masked


def test_mask_replaces_names_after_an_introduction_or_a_family_word() -> None:
    cases = {
        "Ik ben Fatima en mijn zoon Daan is 3": "Ik ben [naam] en mijn zoon [naam] is [leeftijd]",
        "ik heet Anna de Vries, bel 0612345678": "ik heet [naam], bel [telefoon]",
        "Mijn naam is Sarah. Ik ben moe": "Mijn naam is [naam]. Ik ben moe",
        "my name is John Smith": "my name is [naam]",
        "mijn man Ahmed El Amrani slaat me": "mijn man [naam] slaat me",
        "mijn dochter heet Lisa": "mijn dochter heet [naam]",
        "Mijn vriendin Eva helpt soms": "Mijn vriendin [naam] helpt soms",
    }
    for text, masked in cases.items():
        assert mask(text) == masked
    # Ordinary words after the same phrases stay (names are capitalised).
    for text in ("Ik ben zwanger van 28 weken", "mijn zoon is ziek", "ik ben bang", "mijn moeder helpt"):
        assert mask(text) == text
