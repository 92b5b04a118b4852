"""The learning loop and the catalogue view.

- Corrections (the themes a volunteer set at closing, where the bot's differed) are reviewed by a
  coordinator: accepted or rejected (`review`). The parent's words are shown and exported masked
  (bot.privacy.mask is applied again here, so a correction stored before a masking rule existed
  is masked by today's rules too).
- `export_corrections` writes the accepted corrections as Rasa 3 NLU YAML under data/nlu/ (a new
  file for a person to review and commit). Nothing is added to the schema to mark what was
  exported: each file starts with `# exported <iso time>`, and the next export takes only
  corrections reviewed after the newest such time.
- `catalogue_usage`: per catalogue entry, how often it was given and referred to (from the
  anonymous ContactFact rows, counted in SQL), its source and last check, and what is wrong with it.

Nothing here logs a parent's words or a count of a small group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from bot.intents.catalogue import Catalogue, CatalogueEntry
from bot.privacy import mask
from bot.storage.models import ContactFact, Correction, User, aware, utcnow
from bot.triage.types import ALL_INTENTS

#: Counts below this are shown as "<5" (the statistics page uses the same rule).
SMALL = 5
#: The catalogue view looks back this far.
CATALOGUE_DAYS = 90
#: How many corrections one page lists at most (newest first).
PAGE_LIMIT = 200

EXPORT_GLOB = "corrections_*.yml"
_EXPORTED = re.compile(r"^#\s*exported\s+(\S+)\s*$", re.MULTILINE)


class CorrectionNotFound(LookupError):
    """No correction with this id."""


def suppress(value: int | None) -> str | int:
    """A count for display: below SMALL (but not 0) it is "<5"."""
    count = int(value or 0)
    return f"<{SMALL}" if 0 < count < SMALL else count


# Review ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorrectionItem:
    """One correction as the review page shows it."""

    id: str
    created_at: datetime
    predicted: list[str]
    corrected: list[str]
    texts: list[str]  # masked
    accepted: bool | None
    reviewed_at: datetime | None
    reviewed_by: str | None  # the reviewer's display name


def corrections(session: Session, *, reviewed: bool,
                limit: int = PAGE_LIMIT) -> list[CorrectionItem]:
    """Corrections waiting for review (reviewed=False, oldest first) or reviewed ones (newest
    review first)."""
    query = select(Correction, User.display_name).outerjoin(User, User.id == Correction.reviewed_by)
    if reviewed:
        query = query.where(Correction.accepted.is_not(None)).order_by(
            Correction.reviewed_at.desc(), Correction.id)
    else:
        query = query.where(Correction.accepted.is_(None)).order_by(
            Correction.created_at, Correction.id)
    items = []
    for row, reviewer in session.execute(query.limit(limit)).all():
        items.append(CorrectionItem(
            id=row.id, created_at=aware(row.created_at) or utcnow(),
            predicted=[str(t) for t in row.predicted or []],
            corrected=[str(t) for t in row.corrected or []],
            texts=[mask(str(t)) for t in row.texts_masked or [] if t],
            accepted=row.accepted, reviewed_at=aware(row.reviewed_at), reviewed_by=reviewer))
    return items


def waiting_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Correction)
                              .where(Correction.accepted.is_(None))) or 0)


def review(session: Session, correction_id: str, *, accepted: bool, user_id: str | None,
           now: datetime | None = None) -> Correction:
    """Accept or reject a correction (a later review replaces an earlier one)."""
    correction = session.get(Correction, correction_id)
    if correction is None:
        raise CorrectionNotFound(correction_id)
    correction.accepted = accepted
    correction.reviewed_at = now or utcnow()
    correction.reviewed_by = user_id
    return correction


# Export ------------------------------------------------------------------------------------------

def training_theme(predicted: Sequence[str], corrected: Sequence[str]) -> str | None:
    """The intent a correction teaches: the first corrected theme the bot did not predict, else the
    first corrected theme; None when there is no usable theme."""
    usable = [t for t in corrected if t in ALL_INTENTS]
    for theme in usable:
        if theme not in predicted:
            return theme
    return usable[0] if usable else None


def last_export(nlu_dir: Path) -> datetime | None:
    """The newest `# exported <time>` of the corrections files in `nlu_dir` (None: none yet)."""
    newest: datetime | None = None
    for path in sorted(nlu_dir.glob(EXPORT_GLOB)):
        try:
            head = path.read_text(encoding="utf-8")[:500]
        except OSError:
            continue
        found = _EXPORTED.search(head)
        if not found:
            continue
        try:
            moment = datetime.fromisoformat(found.group(1))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if newest is None or moment > newest:
            newest = moment
    return newest


def accepted_since(session: Session, since: datetime | None, until: datetime) -> list[Correction]:
    """Accepted corrections reviewed after `since` (all when None) and up to `until`."""
    query = select(Correction).where(Correction.accepted.is_(True),
                                     Correction.reviewed_at.is_not(None),
                                     Correction.reviewed_at <= until)
    if since is not None:
        query = query.where(Correction.reviewed_at > since)
    return list(session.scalars(query.order_by(Correction.reviewed_at, Correction.id)))


def _example_line(text: str) -> str | None:
    """One example: masked, on one line, without characters that would break the block."""
    line = " ".join(mask(text).split())
    line = line.lstrip("-# ").strip()
    return line[:500] or None


def render_yaml(items: Sequence[Correction], exported_at: datetime) -> tuple[str, int]:
    """Rasa 3 NLU YAML of `items`, one intent block per theme; and the number of examples."""
    blocks: dict[str, list[str]] = {}
    for correction in items:
        theme = training_theme(list(correction.predicted or []), list(correction.corrected or []))
        if theme is None:
            continue
        for text in correction.texts_masked or []:
            line = _example_line(str(text)) if text else None
            if line and line not in blocks.setdefault(theme, []):
                blocks[theme].append(line)
    lines = [f"# exported {exported_at.astimezone(UTC).isoformat(timespec='seconds')}",
             "# Accepted corrections from the coordinators' review",
             "# (oudertelefoon nlu export-corrections).",
             "# The parents' words are masked. Review before committing.",
             'version: "3.1"', "nlu:"]
    count = 0
    for theme in sorted(blocks):
        examples = blocks[theme]
        if not examples:
            continue
        lines.append(f"- intent: {theme}")
        lines.append("  examples: |")
        lines.extend(f"    - {example}" for example in examples)
        count += len(examples)
    return "\n".join(lines) + "\n", count


def default_path(nlu_dir: Path, now: datetime) -> Path:
    """data/nlu/corrections_<YYYYMMDD>.yml; a second export on one day gets _2, _3, ..."""
    stem = f"corrections_{now.astimezone(UTC):%Y%m%d}"
    path = nlu_dir / f"{stem}.yml"
    number = 2
    while path.exists():
        path = nlu_dir / f"{stem}_{number}.yml"
        number += 1
    return path


@dataclass(frozen=True)
class ExportResult:
    path: Path | None  # None: nothing to export, no file written
    corrections: int
    examples: int
    since: datetime | None


def export_corrections(session: Session, nlu_dir: Path, *, out: Path | None = None,
                       now: datetime | None = None) -> ExportResult:
    """Write the accepted corrections not exported yet. No file when there are none (an empty
    intent list would not load as training data)."""
    now = now or utcnow()
    since = last_export(nlu_dir)
    items = accepted_since(session, since, now)
    text, examples = render_yaml(items, now)
    if examples == 0:
        return ExportResult(None, len(items), 0, since)
    path = out or default_path(nlu_dir, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return ExportResult(path, len(items), examples, since)


# The catalogue view ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueRow:
    id: str
    name: str
    source: str
    verified: bool
    last_checked: date | None
    has_contact: bool
    given: int
    referred: int
    problems: list[str] = field(default_factory=list)  # Dutch, for the flag

    @property
    def flagged(self) -> bool:
        return bool(self.problems)


def has_contact(entry: CatalogueEntry) -> bool:
    contact = entry.contact
    return contact is not None and any(
        getattr(contact, name, None) is not None for name in ("phone", "free_phone", "website"))


def _given_counts(session: Session, start: datetime) -> dict[str, int]:
    """How many contacts were given each catalogue id (catalogue_given is a JSON list): the list
    is unnested in SQL, per dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        items = (func.json_array_elements_text(ContactFact.catalogue_given)
                 .table_valued("value").alias("given"))
        condition = func.json_typeof(ContactFact.catalogue_given) == "array"
    else:  # SQLite (json_each)
        items = func.json_each(ContactFact.catalogue_given).table_valued("value").alias("given")
        condition = func.json_type(ContactFact.catalogue_given) == "array"
    query = (select(items.c.value, func.count(func.distinct(ContactFact.id)))
             .select_from(ContactFact).join(items, true())
             .where(ContactFact.hour >= start, ContactFact.catalogue_given.is_not(None), condition)
             .group_by(items.c.value))
    return {str(key): int(count) for key, count in session.execute(query).all()}


def _referred_counts(session: Session, start: datetime) -> dict[str, int]:
    query = (select(ContactFact.referred_to, func.count())
             .where(ContactFact.hour >= start, ContactFact.referred_to.is_not(None))
             .group_by(ContactFact.referred_to))
    return {str(key): int(count) for key, count in session.execute(query).all()}


def catalogue_usage(session: Session, catalogue: Catalogue, *, now: datetime | None = None,
                    days: int = CATALOGUE_DAYS) -> list[CatalogueRow]:
    """Every catalogue entry (in catalogue order) with its use in the last `days` days."""
    start = (now or utcnow()) - timedelta(days=days)
    given = _given_counts(session, start)
    referred = _referred_counts(session, start)
    rows = []
    for entry in catalogue:
        problems = []
        if not entry.verified:
            problems.append("niet gecontroleerd")
        contact = has_contact(entry)
        if not contact:
            problems.append("geen telefoonnummer of website")
        rows.append(CatalogueRow(
            id=entry.id, name=entry.name, source=entry.source, verified=entry.verified,
            last_checked=entry.last_checked, has_contact=contact, given=given.get(entry.id, 0),
            referred=referred.get(entry.id, 0), problems=problems))
    return rows
