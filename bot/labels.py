"""Words people read for the values the code uses (data/labels/nl.yml): themes, risks, queues,
roles, outcomes, channels, and why the desk refused something. One place for every label; the
layers below the web layer (handoff, the triage) keep only values and reasons.

Each group is a plain mapping from the value (a string, or a priority number) to its Dutch
word. The enums are str enums whose names are their values, so a member works as a key too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LABELS_FILE = Path(__file__).resolve().parent.parent / "data" / "labels" / "nl.yml"


def load(path: Path = LABELS_FILE) -> dict[str, dict[Any, str]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict):
        raise TypeError(f"{path}: expected a mapping of label groups")
    return {str(group): {key: str(text) for key, text in (values or {}).items()}
            for group, values in document.items()}


_LABELS = load()

THEME_LABELS: dict[str, str] = _LABELS["themes"]
RISK_LABELS: dict[str, str] = _LABELS["risks"]
OUTCOME_LABELS: dict[str, str] = _LABELS["outcomes"]
ROLE_LABELS: dict[str, str] = _LABELS["roles"]
QUEUE_LABELS: dict[str, str] = _LABELS["queues"]
KIND_LABELS: dict[str, str] = _LABELS["kinds"]
CHANNEL_LABELS: dict[str, str] = _LABELS["channels"]
LANGUAGE_LABELS: dict[str, str] = _LABELS["languages"]
PRIORITY_LABELS: dict[int, str] = _LABELS["priorities"]
AUTHOR_LABELS: dict[str, str] = _LABELS["authors"]
ERROR_TEXTS: dict[str, str] = _LABELS["errors"]


def error_text(reason: str, **detail: Any) -> str:
    """Why the desk refused (handoff.errors), in Dutch; an unknown reason gets a general line."""
    template = ERROR_TEXTS.get(reason, ERROR_TEXTS["unknown"])
    try:
        return template.format(**detail)
    except (KeyError, IndexError, ValueError):
        return template
