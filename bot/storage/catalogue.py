"""The catalogue's rows in SQL (issue 15) and the YAML of data/aanbod they come from and go back to.

The database holds what the bot offers; data/aanbod stays the reviewed source for a new install
(`seed`) and the export's format (`write_directory`). Every entry read back goes through the same
pydantic model as the YAML (bot.intents.catalogue.CatalogueEntry), so a row the model refuses
never reaches a parent. Whether an entry is checked (`checked_at`) and published are columns;
`verified` and `last_checked` of the YAML are derived from them, and the other fields are the
row's `data`, in the YAML's own shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.intents.catalogue import (
    NATIONAL,
    Catalogue,
    CatalogueEntry,
    Kind,
    load_catalogue,
)
from bot.storage.models import CatalogueRecord, CatalogueState, utcnow
from bot.triage.types import THEMES, Theme

logger = logging.getLogger(__name__)

STATE_ID = 1
#: The YAML fields kept as columns, not in `data`.
COLUMN_FIELDS = frozenset({"verified", "last_checked", "published"})
BEST_FILE = "best.yml"


# --------------------------------------------------------------------------- entries <-> rows


def entry_data(entry: CatalogueEntry) -> dict[str, Any]:
    """The entry's fields as stored in `data`: the YAML's shape, defaults left out."""
    return entry.model_dump(mode="json", exclude=set(COLUMN_FIELDS), exclude_defaults=True)


def checked_on(moment: datetime | None) -> date | None:
    """The day of a check, as the YAML's `last_checked`."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def check_moment(day: date | None) -> datetime | None:
    """A YAML `last_checked` day as a check time (noon UTC: the same day in every time zone
    of ours)."""
    return None if day is None else datetime.combine(day, time(12), tzinfo=UTC)


def to_entry(record: CatalogueRecord) -> CatalogueEntry:
    """The row as the bot's model; ValidationError when the row breaks a rule."""
    data = dict(record.data)
    data["verified"] = record.checked_at is not None
    data["last_checked"] = checked_on(record.checked_at)
    data["published"] = record.published
    return CatalogueEntry.model_validate(data)


def file_for(entry: CatalogueEntry) -> str:
    """The YAML file a new entry is exported to, the way data/aanbod is split."""
    if entry.region == "amsterdam":
        return "amsterdam.yml"
    if entry.region != NATIONAL:
        return "other_regions.yml"
    return {Kind.helpline: "lines.yml", Kind.information: "lines.yml",
            Kind.health_care: "health.yml", Kind.volunteer_peer: "peer.yml"}.get(
        entry.kind, "social.yml")


# --------------------------------------------------------------------------- reading SQL


def records(session: Session) -> list[CatalogueRecord]:
    """Every row, in the export's (and the catalogue's) order."""
    return list(session.scalars(
        select(CatalogueRecord).order_by(CatalogueRecord.file, CatalogueRecord.position,
                                         CatalogueRecord.id)))


def state(session: Session, *, lock: bool = False) -> CatalogueState | None:
    query = select(CatalogueState).where(CatalogueState.id == STATE_ID)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def version(session: Session) -> int | None:
    """The catalogue's version; None before it was seeded."""
    return session.scalar(select(CatalogueState.version).where(CatalogueState.id == STATE_ID))


def load(session: Session) -> tuple[Catalogue, int] | None:
    """The catalogue the bot uses, from SQL, with its version (None before it was seeded).

    Read in one transaction, so entries and version belong together. A row the model refuses
    (a rule made stricter after it was written) is left out and logged by id, and a best list
    keeps only the ids that exist: the bot keeps answering."""
    current = state(session)
    if current is None:
        return None
    entries: dict[str, CatalogueEntry] = {}
    for record in records(session):
        try:
            entries[record.id] = to_entry(record)
        except ValidationError as error:
            logger.error("catalogue entry %s is left out: %d problem(s) with the model",
                         record.id, len(error.errors()))
    best: dict[Theme, tuple[str, ...]] = {}
    for theme, ids in (current.best or {}).items():
        if theme in THEMES and isinstance(ids, list):
            kept = tuple(i for i in ids if i in entries and not entries[i].for_children_only)
            if kept:
                best[Theme(theme)] = kept
    return Catalogue(entries, best), current.version


def bump(session: Session, now: datetime | None = None) -> int:
    """Raise the catalogue's version in the caller's transaction (the row is locked, so two
    changes at once get two versions); returns the new one."""
    current = state(session, lock=True)
    if current is None:
        raise LookupError("the catalogue is not seeded")
    current.version += 1
    current.updated_at = now or utcnow()
    return current.version


def is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(CatalogueRecord))


# --------------------------------------------------------------------------- the YAML directory


@dataclass(frozen=True)
class Snapshot:
    """What a data/aanbod-style directory holds: entries with their file, in order, the best
    lists, and each file's header comment."""

    entries: list[tuple[str, CatalogueEntry]]
    best: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)

    def by_id(self) -> dict[str, tuple[str, CatalogueEntry]]:
        return {entry.id: (name, entry) for name, entry in self.entries}


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def read_directory(directory: Path) -> Snapshot:
    """Validate a directory with the bot's own loader (CatalogueError names file, entry and
    field), then note which file holds which entry and each file's header comment."""
    catalogue = load_catalogue(directory)
    origin: dict[str, str] = {}
    headers: dict[str, str] = {}
    for path in sorted(Path(directory).rglob("*.yml")):
        name = str(path.relative_to(directory))
        text = path.read_text(encoding="utf-8")
        headers[name] = _header(text)
        data = yaml.safe_load(text) or {}
        for raw in data.get("entries") or []:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                origin.setdefault(raw["id"], name)
    entries = [(origin.get(entry.id, file_for(entry)), entry) for entry in catalogue]
    best = {theme.value: list(ids) for theme, ids in catalogue.best.items()}
    return Snapshot(entries, best, headers)


def snapshot(session: Session) -> Snapshot:
    """What SQL holds, in the same form (for the export and the import's diff)."""
    current = state(session)
    entries = []
    for record in records(session):
        try:
            entries.append((record.file, to_entry(record)))
        except ValidationError:
            logger.error("catalogue entry %s is left out of the snapshot: the model refuses it",
                         record.id)
    return Snapshot(entries, dict(current.best) if current else {},
                    dict(current.headers) if current else {})


def seed(session: Session, source: Snapshot, now: datetime | None = None) -> int:
    """Fill empty tables from a directory's snapshot; returns the number of entries."""
    now = now or utcnow()
    positions: dict[str, int] = {}
    for name, entry in source.entries:
        positions[name] = positions.get(name, 0) + 1
        session.add(CatalogueRecord(
            id=entry.id, data=entry_data(entry), file=name, position=positions[name],
            published=entry.published,
            checked_at=check_moment(entry.last_checked) if entry.verified else None,
            created_at=now, updated_at=now, version=1))
    session.add(CatalogueState(id=STATE_ID, version=1, best=source.best, headers=source.headers,
                               updated_at=now))
    return len(source.entries)


# --------------------------------------------------------------------------- writing YAML

_FIELD_ORDER = list(CatalogueEntry.model_fields)
_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, date):
        return value.isoformat()
    if _PLAIN.match(str(value)) and str(value) not in _YAML_WORDS:
        return str(value)  # an id, a kind, a theme: as data/aanbod writes them
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML string


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def entry_yaml(entry: CatalogueEntry) -> list[str]:
    """One entry as data/aanbod writes it (a list item, fields in the model's order)."""
    data = entry.model_dump(mode="json", exclude_defaults=True)
    data["verified"] = entry.verified
    data["last_checked"] = entry.last_checked
    lines: list[str] = []
    for name in _FIELD_ORDER:
        if name not in data:
            continue
        value = data[name]
        prefix = "  - " if not lines else "    "
        if name == "last_checked" and isinstance(value, str):
            value = date.fromisoformat(value)
        if name in ("summary", "referral") and isinstance(value, Mapping):
            lines.append(f"{prefix}{name}:")
            lines.extend(f"      {k}: {_scalar(v)}" for k, v in value.items())
        elif name == "contact" and isinstance(value, Mapping):
            lines.append(f"{prefix}{name}:")
            lines.extend(f"      {k}: {_flow(v)}" for k, v in value.items())
        else:
            lines.append(f"{prefix}{name}: {_flow(value)}")
    return lines


def directory_files(source: Snapshot) -> dict[str, str]:
    """The text of every file of a directory holding `source` (file name -> YAML)."""
    files: dict[str, list[str]] = {}
    for name, entry in source.entries:
        files.setdefault(name, []).append("\n".join(entry_yaml(entry)))
    out: dict[str, str] = {}
    for name, blocks in files.items():
        header = source.headers.get(name, "")
        out[name] = (f"{header}\n" if header else "") + "entries:\n" + "\n\n".join(blocks) + "\n"
    if source.best:
        header = source.headers.get(BEST_FILE, "")
        best_name = BEST_FILE if BEST_FILE not in files else "best_entries.yml"
        lines = [f"  {theme}: {_flow(ids)}" for theme, ids in source.best.items()]
        out[best_name] = (f"{header}\n" if header else "") + "best:\n" + "\n".join(lines) + "\n"
    return out


def write_directory(source: Snapshot, directory: Path) -> list[Path]:
    """Write `source` as YAML files into `directory` (made when missing); returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in directory_files(source).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def strays(directory: Path, names: Iterable[str]) -> list[str]:
    """*.yml files in `directory` that an export of `names` would not overwrite (they would be
    loaded next to it: duplicate ids)."""
    keep = set(names)
    if not directory.is_dir():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*.yml")
                  if str(p.relative_to(directory)) not in keep)
