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


def mask(text: str) -> str:
    """Replace e-mail addresses, links, phone numbers, postcodes and BSN-like numbers."""
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text
