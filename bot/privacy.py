"""Masking of contact details and identifiers in text kept for statistics or training."""

from __future__ import annotations

import re

_PATTERNS = (
    ("[email]", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("[url]", re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)),
    # Dutch and international phone numbers: +31 6 12345678, 06-12345678, 020 123 4567, 0031...
    ("[telefoon]", re.compile(r"(?<![\w+])(?:\+|00)?\d[\d\s().-]{7,}\d(?!\w)")),
    # Postcodes: 1234 AB
    ("[postcode]", re.compile(r"\b\d{4}\s?[A-Za-z]{2}\b")),
    # BSN-like: any remaining run of 8-9 digits
    ("[nummer]", re.compile(r"\b\d{8,9}\b")),
)

NAME = "[naam]"
# Words after which a capitalised word is most likely a person's name. The words themselves are
# matched in any case ("Ik heet", "ik heet"); the name must start with a capital letter.
_INTRODUCTIONS = (
    r"ik\s+ben", r"ik\s+heet", r"heet", r"heten", r"mijn\s+naam\s+is", r"de\s+naam\s+is",
    r"my\s+name\s+is", r"i\s+am", r"i'm", r"call\s+me", r"noem\s+me",
)
_RELATIVES = (
    "man", "vrouw", "vriend", "vriendin", "partner", "ex", "echtgenoot", "echtgenote",
    "dochter", "zoon", "kind", "baby", "dochtertje", "zoontje", "moeder", "vader", "mama", "papa",
    "broer", "zus", "zusje", "broertje", "oma", "opa", "tante", "oom", "schoonmoeder",
    "schoonvader", "buurvrouw", "buurman", "stiefvader", "stiefmoeder", "stiefzoon", "stiefdochter",
    "husband", "wife", "boyfriend", "girlfriend", "son", "daughter", "mother", "father", "mum",
    "mom", "dad", "brother", "sister",
)
_CAPITAL = "A-ZÀ-ÖØ-Þ"
_WORD = rf"[{_CAPITAL}][\w'’-]*"
_NAME_PATTERN = re.compile(
    r"(?i:\b(?P<lead>" + "|".join(_INTRODUCTIONS)
    + r"|(?:mijn|onze|m'n|my|our)\s+(?:" + "|".join(_RELATIVES) + r")(?:\s+heet)?"
    + r"))(?P<space>[\s,:]+)"
    # The name: one capitalised word, and any capitalised words or name particles right after it
    # ("Fatima El Amrani", "Anna de Vries").
    + rf"(?P<name>{_WORD}(?:\s+(?:(?:van|de|der|den|el|al|ben|ter|ten)\s+)*{_WORD})*)"
)


def mask_names(text: str) -> str:
    """Replace a name after "ik ben", "ik heet", "mijn naam is", "my name is", "mijn zoon" etc."""
    return _NAME_PATTERN.sub(lambda m: f"{m.group('lead')}{m.group('space')}{NAME}", text)


def mask(text: str) -> str:
    """Replace e-mail addresses, links, phone numbers, postcodes, BSN-like numbers and names
    where they can be recognised (after an introduction or a family word)."""
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return mask_names(text)
