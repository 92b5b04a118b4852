"""The catalogue coordinators keep in the dashboard (issue 15): one live `Catalogue` per process,
built from SQL, and every change to it.

- `start`: seeds empty tables from data/aanbod (the reviewed source for a new install), then
  loads. Several processes starting at once: one seeds, the others find it done.
- `refresh`: called by the pipeline before every turn. It reads the catalogue's version from
  Redis (one GET; SQL when the key is missing or Redis is down) and reloads from SQL only when
  it is newer than the one this process holds, so a coordinator's change is in the bot's very
  next answer in every process. The live object is shared (pipeline, desk, dashboard):
  `Catalogue.adopt` swaps its contents in place.
- changes (`add`, `edit`, `check`, `set_published`, `apply_import`): validated by the same model
  as the YAML, written with an AuditLog row holding the old and new values and a new version,
  in one transaction; then announced in Redis.
- what production offers stays decided in one place: `bot.intents.catalogue` offers only
  published entries, and only checked (`verified`) ones unless CATALOGUE_INCLUDE_UNVERIFIED.

Refusals are `CatalogueRefused` with a reason key and, for invalid input, a problem key per field
(the web layer says them in Dutch, data/labels/nl.yml). No parent data passes through here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import OudertelefoonError
from bot.intents.catalogue import (
    NATIONAL,
    UNKNOWN_REGION,
    Catalogue,
    CatalogueEntry,
    load_catalogue,
)
from bot.storage import catalogue as store
from bot.storage.models import AuditLog, CatalogueRecord, User, utcnow
from bot.storage.redis import key as redis_key

logger = logging.getLogger(__name__)

#: An entry whose last check is older than this is flagged in the dashboard.
CHECK_VALID_DAYS = 365
#: The version key in Redis lives this long; when it is gone, SQL is asked (and it is set again).
VERSION_TTL_SECONDS = 60

_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

#: Audit actions of the catalogue.
ADDED, CHANGED, CHECKED, PUBLISHED, UNPUBLISHED, IMPORTED = (
    "catalogue_entry_added", "catalogue_entry_changed", "catalogue_entry_checked",
    "catalogue_entry_published", "catalogue_entry_unpublished", "catalogue_entry_imported")
ACTIONS = (ADDED, CHANGED, CHECKED, PUBLISHED, UNPUBLISHED, IMPORTED)


class CatalogueRefused(OudertelefoonError):
    """A change the catalogue cannot take. `reason`: invalid, not_found, stale, id_taken,
    cannot_check. `problems`: for invalid input, field path ("contact.phone") -> problem key."""

    def __init__(self, reason: str, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = dict(problems or {})


# --------------------------------------------------------------------------- validation

# The model's own rules (bot.intents.catalogue) as problem keys, by field and message start.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("contact", "needs a phone", "contact_empty"),
    ("", "only allowed next to 'phone'", "needs_phone"),
    ("referral", "required when access", "referral_needed"),
    ("referral", "required when there is no contact", "referral_no_contact"),
    ("emergency_only", "", "emergency_helpline"),
    ("replaces", "an entry cannot replace itself", "replaces_self"),
    ("replaces", "only a local entry", "replaces_local"),
    ("themes", "a theme is listed twice", "twice"),
    ("verified", "", "verified_unknown"),
)
_VALUE_ERRORS = (
    ("is not a phone number", "phone"),
    ("is not a bare website", "website"),
    ("must not contain a label", "label_word"),
    ("is not a taxonomy theme", "choice"),
)
_TYPES = {
    "missing": "required", "string_too_short": "required", "too_short": "too_few",
    "enum": "choice", "string_pattern_mismatch": "slug", "bool_parsing": "choice",
    "bool_type": "choice", "extra_forbidden": "unknown_field", "string_type": "required",
    "model_type": "required", "dict_type": "required",
}


def problems_of(error: ValidationError) -> dict[str, str]:
    """Every problem pydantic found, as field path -> problem key (the first per field)."""
    found: dict[str, str] = {}
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        # A list item's problem belongs to the list ("themes.2" -> "themes").
        loc = [part for part in loc if not part.isdigit()]
        problem = (item.get("ctx") or {}).get("error")
        path = ".".join(loc)
        key = "invalid"
        if problem is not None and hasattr(problem, "field") and hasattr(problem, "message"):
            inner = str(problem.field)
            path = ".".join([*loc, inner]) if inner else path
            for field_name, start, rule_key in _RULES:
                name_ok = not field_name or field_name in (inner, loc[-1] if loc else "")
                if name_ok and str(problem.message).startswith(start):
                    key = rule_key
                    break
        elif item["type"] == "value_error":
            message = str(item["msg"])
            key = next((k for words, k in _VALUE_ERRORS if words in message), "invalid")
        else:
            key = _TYPES.get(item["type"], "invalid")
        found.setdefault(path or "entry", key)
    return found


def validate(raw: Mapping[str, Any], *, verified: bool = False, last_checked: Any = None,
             published: bool = True) -> CatalogueEntry:
    """The entry the model makes of `raw` (the YAML's shape); CatalogueRefused("invalid") with
    every field's problem otherwise."""
    data = {k: v for k, v in raw.items() if k not in store.COLUMN_FIELDS}
    data.update(verified=verified, last_checked=last_checked, published=published)
    try:
        return CatalogueEntry.model_validate(data)
    except ValidationError as error:
        raise CatalogueRefused("invalid", problems_of(error)) from None


def _references(entry: CatalogueEntry, others: Mapping[str, CatalogueEntry]) -> dict[str, str]:
    """The rules across entries (as load_catalogue checks them between files)."""
    for target in entry.replaces:
        if target not in others:
            return {"replaces": "replaces_unknown"}
        if others[target].region != NATIONAL:
            return {"replaces": "replaces_not_national"}
    return {}


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class AdminRow:
    """One entry in the coordinators' list, with its flags (keys: unchecked, check_expired,
    unpublished, broken)."""

    id: str
    name: str
    kind: str
    region: str
    published: bool
    checked_at: datetime | None
    checked_by: str | None
    updated_at: datetime | None
    updated_by: str | None
    version: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class Stored:
    """One entry for the edit form: its fields (the YAML's shape) and its columns."""

    id: str
    data: dict[str, Any]
    published: bool
    checked_at: datetime | None
    checked_by: str | None
    version: int


@dataclass(frozen=True)
class Change:
    at: datetime | None
    user: str | None
    action: str
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass
class ImportPlan:
    """What `catalogue import` would do: entries added, changed (with their changed fields) and
    in the database but not in the directory (left as they are), and whether the best lists
    change."""

    source: store.Snapshot
    added: list[CatalogueEntry] = field(default_factory=list)
    changed: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    best_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.best_changed)

    def lines(self) -> list[str]:
        """The diff, one line per change, for the command line."""
        out = [f"+ {e.id} ({e.name})" for e in self.added]
        for entry_id, old, new in self.changed:
            out.append(f"~ {entry_id}")
            out.extend(f"    {name}: {old.get(name)!r} -> {new.get(name)!r}" for name in new)
        out.extend(f"= {entry_id}: not in the directory, left as it is" for entry_id in self.missing)
        if self.best_changed:
            out.append("~ best: the best entries per theme change")
        return out


def _columns(record: CatalogueRecord) -> dict[str, Any]:
    return {"published": record.published,
            "checked_at": record.checked_at.isoformat() if record.checked_at else None,
            "checked_by": record.checked_by}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = [n for n in dict.fromkeys([*old, *new]) if old.get(n) != new.get(n)]
    return {n: old.get(n) for n in names}, {n: new.get(n) for n in names}


# --------------------------------------------------------------------------- the service


class CatalogueService:
    """The live catalogue of one process and the coordinators' changes to it."""

    def __init__(self, factory: sessionmaker[Session], redis_client: redis.Redis | None,
                 *, prefix: str, directory: Path) -> None:
        self.factory = factory
        self.redis = redis_client
        self.directory = Path(directory)
        self.version_key = redis_key(prefix, "catalogue", "version")
        self.catalogue = Catalogue({}, {})
        self.loaded = 0
        self._lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------

    def start(self) -> Catalogue:
        """Seed empty tables from the directory (once, whoever comes first), then load."""
        self.seed_if_empty()
        version = self.reload()
        if version:
            # Known in Redis from the start, so the first turns ask Redis only (not SQL).
            self._announce(version, only_if_missing=True)
        return self.catalogue

    def seed_if_empty(self) -> int:
        """Entries seeded from data/aanbod when the tables are empty; 0 when they were not."""
        with self.factory() as session:
            if store.version(session) is not None:
                return 0
        source = store.read_directory(self.directory)
        try:
            with self.factory() as session, session.begin():
                if store.version(session) is not None or not store.is_empty(session):
                    return 0
                count = store.seed(session, source)
        except IntegrityError:
            return 0  # another process seeded at the same moment
        logger.info("catalogue seeded from %s: %d entries", self.directory.name, count)
        return count

    def reload(self) -> int:
        """Load the catalogue from SQL into the live object; returns its version."""
        with self._lock, self.factory() as session:
            loaded = store.load(session)
            if loaded is None:
                self.catalogue.adopt(load_catalogue(self.directory))
                self.loaded = 0
                return 0
            catalogue, version = loaded
            self.catalogue.adopt(catalogue)
            self.loaded = version
        logger.info("catalogue loaded: %d entries, version %d", len(catalogue), version)
        return version

    def refresh(self) -> bool:
        """Reload when another process (or this one) changed the catalogue since it was loaded.
        Cheap enough for every turn (one Redis GET); never raises: a failure keeps the loaded
        catalogue and is logged."""
        try:
            seen = self._seen_version()
            if seen is not None and seen <= self.loaded:
                return False
            with self.factory() as session:
                current = store.version(session)
            if current is None:
                return False
            if seen is None:
                self._announce(current, only_if_missing=True)
            if current > self.loaded:
                self.reload()
                return True
        except Exception as error:  # noqa: BLE001 - the turn goes on with the loaded catalogue
            logger.error("catalogue refresh failed (%s); keeping version %d",
                         type(error).__name__, self.loaded)
        return False

    def _seen_version(self) -> int | None:
        if self.redis is None:
            return None
        try:
            value = self.redis.get(self.version_key)
        except redis.RedisError:
            return None
        return int(value) if value is not None else None

    def _announce(self, version: int, *, only_if_missing: bool = False) -> None:
        if self.redis is None:
            return
        try:
            if only_if_missing:
                self.redis.set(self.version_key, version, nx=True, ex=VERSION_TTL_SECONDS)
            else:
                self.redis.eval(_SET_MAX, 1, self.version_key, version, VERSION_TTL_SECONDS)
        except redis.RedisError as error:
            # Other processes read SQL while the key is missing, or when it expires.
            logger.warning("catalogue version not announced in Redis (%s)", type(error).__name__)

    def _changed(self, version: int) -> None:
        """After a commit: tell every process, and reload here at once."""
        self._announce(version)
        self.reload()

    # -- reading for the dashboard -------------------------------------------------------

    def rows(self, now: datetime | None = None) -> list[AdminRow]:
        now = now or utcnow()
        with self.factory() as session:
            names = {row[0]: row[1] for row in session.execute(select(User.id, User.display_name))}
            out = []
            for record in store.records(session):
                checked = record.checked_at
                if checked is not None and checked.tzinfo is None:
                    checked = checked.replace(tzinfo=now.tzinfo)
                flags = []
                if checked is None:
                    flags.append("unchecked")
                elif now - checked > timedelta(days=CHECK_VALID_DAYS):
                    flags.append("check_expired")
                if not record.published:
                    flags.append("unpublished")
                try:
                    store.to_entry(record)
                except ValidationError:
                    flags.append("broken")
                data = record.data or {}
                out.append(AdminRow(
                    id=record.id, name=str(data.get("name", record.id)),
                    kind=str(data.get("kind", "")), region=str(data.get("region", "")),
                    published=record.published, checked_at=checked,
                    checked_by=names.get(record.checked_by) if record.checked_by else None,
                    updated_at=record.updated_at,
                    updated_by=names.get(record.updated_by) if record.updated_by else None,
                    version=record.version, flags=tuple(flags)))
        return out

    def stored(self, entry_id: str) -> Stored:
        with self.factory() as session:
            record = session.get(CatalogueRecord, entry_id)
            if record is None:
                raise CatalogueRefused("not_found")
            checked_by = session.get(User, record.checked_by) if record.checked_by else None
            return Stored(id=record.id, data=dict(record.data), published=record.published,
                          checked_at=record.checked_at,
                          checked_by=checked_by.display_name if checked_by else None,
                          version=record.version)

    def history(self, entry_id: str, limit: int = 50) -> list[Change]:
        """The audited changes of one entry, newest first."""
        with self.factory() as session:
            names = {row[0]: row[1] for row in session.execute(select(User.id, User.display_name))}
            rows = session.scalars(
                select(AuditLog).where(AuditLog.action.in_(ACTIONS))
                .order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(2000))
            out = []
            for row in rows:
                detail = row.detail or {}
                if detail.get("entry") != entry_id:
                    continue
                out.append(Change(at=row.at, user=names.get(row.user_id) if row.user_id else None,
                                  action=row.action, old=dict(detail.get("old") or {}),
                                  new=dict(detail.get("new") or {})))
                if len(out) >= limit:
                    break
        return out

    # -- changes --------------------------------------------------------------------------

    def _others(self, session: Session, but: str | None) -> dict[str, CatalogueEntry]:
        others = {}
        for record in store.records(session):
            if record.id == but:
                continue
            try:
                others[record.id] = store.to_entry(record)
            except ValidationError:
                continue
        return others

    def add(self, actor: str | None, raw: Mapping[str, Any], *, published: bool = True,
            checked: bool = False) -> CatalogueEntry:
        """A new entry (validated, audited); `checked`: the person checked its facts now."""
        now = utcnow()
        entry = validate(raw, verified=checked, last_checked=now.date() if checked else None,
                         published=published)
        with self.factory() as session, session.begin():
            if session.get(CatalogueRecord, entry.id) is not None:
                raise CatalogueRefused("invalid", {"id": "id_taken"})
            problems = _references(entry, self._others(session, entry.id))
            if problems:
                raise CatalogueRefused("invalid", problems)
            name = store.file_for(entry)
            last = max((r.position for r in store.records(session) if r.file == name), default=0)
            record = CatalogueRecord(
                id=entry.id, data=store.entry_data(entry), file=name, position=last + 1,
                published=published, checked_at=now if checked else None,
                checked_by=actor if checked else None, created_at=now, updated_at=now,
                updated_by=actor, version=1)
            session.add(record)
            session.add(AuditLog(user_id=actor, action=ADDED, at=now, detail={
                "entry": entry.id, "old": {}, "new": {**record.data, **_columns(record)}}))
            version = store.bump(session, now)
        logger.info("catalogue entry %s added by %s", entry.id, actor)
        self._changed(version)
        return entry

    def edit(self, actor: str | None, entry_id: str, raw: Mapping[str, Any], *,
             version: int, checked: bool = False) -> CatalogueEntry:
        """Save the edit form. A change of its facts ends the entry's check, unless the person
        says they checked them now (`checked`). `version`: the one the form was made from."""
        now = utcnow()
        raw = {**raw, "id": entry_id}
        with self.factory() as session, session.begin():
            record = session.get(CatalogueRecord, entry_id, with_for_update=True)
            if record is None:
                raise CatalogueRefused("not_found")
            if record.version != version:
                raise CatalogueRefused("stale")
            entry = validate(raw, verified=checked, last_checked=now.date() if checked else None,
                             published=record.published)
            problems = _references(entry, self._others(session, entry_id))
            if problems:
                raise CatalogueRefused("invalid", problems)
            data = store.entry_data(entry)
            old = {**record.data, **_columns(record)}
            if data != record.data:
                record.data = data
                if not checked:
                    record.checked_at, record.checked_by = None, None
            if checked:
                record.checked_at, record.checked_by = now, actor
            before, after = _diff(old, {**record.data, **_columns(record)})
            if not after:
                return entry  # nothing changed: nothing to audit or announce
            record.updated_at, record.updated_by = now, actor
            record.version += 1
            session.add(AuditLog(user_id=actor, action=CHANGED, at=now, detail={
                "entry": entry_id, "old": before, "new": after}))
            new_version = store.bump(session, now)
        logger.info("catalogue entry %s changed by %s", entry_id, actor)
        self._changed(new_version)
        return entry

    def check(self, actor: str | None, entry_id: str) -> None:
        """Mark the entry's facts checked now, by `actor`."""
        now = utcnow()
        with self.factory() as session, session.begin():
            record = session.get(CatalogueRecord, entry_id, with_for_update=True)
            if record is None:
                raise CatalogueRefused("not_found")
            data = record.data or {}
            if UNKNOWN_REGION in (data.get("access"), data.get("region")):
                raise CatalogueRefused("cannot_check")
            old = _columns(record)
            record.checked_at, record.checked_by = now, actor
            record.updated_at, record.updated_by = now, actor
            record.version += 1
            try:
                store.to_entry(record)
            except ValidationError:
                raise CatalogueRefused("cannot_check") from None
            session.add(AuditLog(user_id=actor, action=CHECKED, at=now, detail={
                "entry": entry_id, "old": {"checked_at": old["checked_at"], "checked_by": old["checked_by"]},
                "new": {"checked_at": now.isoformat(), "checked_by": actor}}))
            version = store.bump(session, now)
        logger.info("catalogue entry %s checked by %s", entry_id, actor)
        self._changed(version)

    def set_published(self, actor: str | None, entry_id: str, published: bool) -> None:
        now = utcnow()
        with self.factory() as session, session.begin():
            record = session.get(CatalogueRecord, entry_id, with_for_update=True)
            if record is None:
                raise CatalogueRefused("not_found")
            if record.published is published:
                return
            record.published = published
            record.updated_at, record.updated_by = now, actor
            record.version += 1
            session.add(AuditLog(user_id=actor, action=PUBLISHED if published else UNPUBLISHED,
                                 at=now, detail={"entry": entry_id, "old": {"published": not published},
                                                 "new": {"published": published}}))
            version = store.bump(session, now)
        logger.info("catalogue entry %s %s by %s", entry_id,
                    "published" if published else "unpublished", actor)
        self._changed(version)

    # -- export and import ---------------------------------------------------------------

    def export(self, directory: Path) -> list[Path]:
        """Write the database's catalogue as data/aanbod YAML into `directory`, then load it
        back with the bot's loader (a file it cannot load is never left unnoticed)."""
        with self.factory() as session:
            source = store.snapshot(session)
        stray = store.strays(directory, store.directory_files(source))
        if stray:
            raise CatalogueRefused("stray_files", {name: "stray" for name in stray})
        written = store.write_directory(source, directory)
        load_catalogue(directory)
        return written

    def plan_import(self, directory: Path) -> ImportPlan:
        """The diff between a reviewed directory and the database (nothing is changed)."""
        source = store.read_directory(directory)
        plan = ImportPlan(source)
        with self.factory() as session:
            current = store.snapshot(session)
        have = {entry.id: entry for _, entry in current.entries}
        for _, entry in source.entries:
            if entry.id not in have:
                plan.added.append(entry)
                continue
            old = have[entry.id].model_dump(mode="json")
            new = entry.model_dump(mode="json")
            before, after = _diff(old, new)
            if after:
                plan.changed.append((entry.id, before, after))
        incoming = {entry.id for _, entry in source.entries}
        plan.missing = [entry_id for entry_id in have if entry_id not in incoming]
        # A directory without best lists leaves the database's as they are.
        plan.best_changed = bool(source.best) and dict(current.best) != dict(source.best)
        return plan

    def apply_import(self, plan: ImportPlan, actor: str | None = None) -> int:
        """Apply a plan in one transaction, each entry audited with its old and new values;
        returns the number of entries added or changed."""
        if plan.empty:
            return 0
        now = utcnow()
        files = plan.source.by_id()
        with self.factory() as session, session.begin():
            for entry_id, (name, entry) in files.items():
                record = session.get(CatalogueRecord, entry_id, with_for_update=True)
                checked_at = store.check_moment(entry.last_checked) if entry.verified else None
                if record is None:
                    last = max((r.position for r in store.records(session) if r.file == name),
                               default=0)
                    record = CatalogueRecord(id=entry_id, data=store.entry_data(entry), file=name,
                                             position=last + 1, published=entry.published,
                                             checked_at=checked_at, created_at=now,
                                             updated_at=now, updated_by=actor, version=1)
                    session.add(record)
                    session.flush()
                    session.add(AuditLog(user_id=actor, action=IMPORTED, at=now, detail={
                        "entry": entry_id, "old": {}, "new": {**record.data, **_columns(record)}}))
                    continue
                old = {**record.data, **_columns(record)}
                keep_check = (entry.verified and record.checked_at is not None
                              and store.checked_on(record.checked_at) == entry.last_checked)
                record.data = store.entry_data(entry)
                record.published = entry.published
                if not keep_check:
                    record.checked_at, record.checked_by = checked_at, None
                record.file = name
                before, after = _diff(old, {**record.data, **_columns(record)})
                if after:
                    record.updated_at, record.updated_by = now, actor
                    record.version += 1
                    session.add(AuditLog(user_id=actor, action=IMPORTED, at=now, detail={
                        "entry": entry_id, "old": before, "new": after}))
            current = store.state(session, lock=True)
            if current is not None and plan.best_changed:
                session.add(AuditLog(user_id=actor, action=IMPORTED, at=now, detail={
                    "entry": "best", "old": dict(current.best), "new": plan.source.best}))
                current.best = plan.source.best
            if current is not None:
                current.headers = {**current.headers, **plan.source.headers}
            version = store.bump(session, now)
        self._changed(version)
        return len(plan.added) + len(plan.changed)
