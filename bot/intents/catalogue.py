"""The help catalogue ("aanbod"): load data/aanbod/*.yml, pick services per theme, render answers.

The data files are written by coordinators, so every problem in them is reported as one
`CatalogueError` that names the file, the entry and the field. The picker applies the rules of the
fact sheet (region filter, Amsterdam entries standing in for national ones, never the children's
line, never the emergency number in a normal answer, production shows verified entries only). The
renderer shows only contact facts that are stored in the entries themselves.
"""

from __future__ import annotations

import enum
import logging
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from bot.errors import CatalogueError, DataError
from bot.triage.types import THEMES, Language, Theme

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CATALOGUE_DIR = REPO_ROOT / "data" / "aanbod"
DEFAULT_MESSAGES_DIR = REPO_ROOT / "data" / "messages"

#: Regions that are not a place: "national" is shown everywhere, "unknown" nowhere.
NATIONAL = "national"
UNKNOWN_REGION = "unknown"

# Sane Dutch numbers as the sheet writes them: 112/113, the municipal 14 0xx numbers
# ("14 020"), and 0-prefixed numbers with one hyphen after the area or service code.
_PHONE_RE = re.compile(r"^(?:1\d{2}|14 ?0\d{2}|0\d{2,3}-\d{4,7}|0\d{9})$")
# A bare host name with an optional path, no scheme: "oktamsterdam.nl", "113.nl".
_WEBSITE_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?:/[^\s]*)?$")
_SLUG = r"^[a-z][a-z0-9_]*$"
# Labels for parents never appear in what a parent reads (mission: never label).
_FORBIDDEN_IN_PARENT_TEXT = ("kwetsba", "vulnerab")

_TOP_LEVEL_KEYS = ("entries", "best")


# --------------------------------------------------------------------------- enums


class Kind(str, enum.Enum):
    """What sort of service an entry is."""

    helpline = "helpline"
    municipal_service = "municipal_service"
    health_care = "health_care"
    programme = "programme"
    volunteer_peer = "volunteer_peer"
    information = "information"


class Access(str, enum.Enum):
    """How a parent gets in: on their own, or through someone who refers them."""

    self_referral = "self_referral"
    via_professional = "via_professional"
    via_gp_midwife = "via_gp_midwife"
    drop_in = "drop_in"
    unknown = "unknown"

    @property
    def needs_referral(self) -> bool:
        """True when the bot must say who can refer, instead of only giving a contact."""
        return self in (Access.via_professional, Access.via_gp_midwife, Access.unknown)


class Phase(str, enum.Enum):
    """Phase of the first 1000 days an entry is meant for."""

    pre_pregnancy = "pre-pregnancy"
    pregnancy = "pregnancy"
    birth = "birth"
    zero_to_two = "0-2"
    all = "all"


# --------------------------------------------------------------------------- validators


class _FieldProblem(ValueError):
    """A rule broken inside a model validator, with the field it is about ("" for the model).

    Model-level validators have no location of their own; this carries one so the error
    message can still name the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _check_theme(value: Any) -> Any:
    if not isinstance(value, str) or value not in THEMES:
        raise ValueError(f"{value!r} is not a taxonomy theme")
    return value


def _check_phone(value: str) -> str:
    if not _PHONE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a phone number like '0800-2000', '088-0767000' or '14 020'"
        )
    return value


def _check_website(value: str) -> str:
    if not _WEBSITE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a bare website like 'geldfit.nl' (no https://, lowercase)"
        )
    return value


def _check_parent_text(value: str) -> str:
    lowered = value.lower()
    for word in _FORBIDDEN_IN_PARENT_TEXT:
        if word in lowered:
            raise ValueError(f"parent-facing text must not contain a label like '{word}...'")
    return value


NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ParentText = Annotated[NonEmptyStr, AfterValidator(_check_parent_text)]
ThemeId = Annotated[Theme, BeforeValidator(_check_theme)]
PhoneNumber = Annotated[str, AfterValidator(_check_phone)]
Website = Annotated[str, AfterValidator(_check_website)]
Slug = Annotated[str, StringConstraints(pattern=_SLUG)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- models


class Texts(_Model):
    """One parent-facing text in Dutch (B1, je-form) and simple English."""

    nl: ParentText
    en: ParentText

    def get(self, language: Language) -> str:
        """The English text for `Language.en`, the Dutch text for every other language."""
        return self.en if language is Language.en else self.nl


class Contact(_Model):
    """How to reach a service. Only facts from the fact sheet (sections 3 and 7)."""

    phone: PhoneNumber | None = None
    free_phone: PhoneNumber | None = None  # a second, free number next to `phone` (113)
    website: Website | None = None
    hours: Texts | None = None  # only when the sheet says 24/7
    free: bool = False  # only when the sheet says free; about `phone`
    how: Texts | None = None

    @model_validator(mode="after")
    def _has_something(self) -> Contact:
        if self.phone is None and self.website is None and self.how is None:
            raise _FieldProblem(
                "", "needs a phone, website or how; leave 'contact' out when none is known"
            )
        if self.free_phone is not None and self.phone is None:
            raise _FieldProblem("free_phone", "only allowed next to 'phone'")
        if self.free and self.phone is None:
            raise _FieldProblem("free", "only allowed next to 'phone'")
        if self.hours is not None and self.phone is None:
            raise _FieldProblem("hours", "only allowed next to 'phone'")
        return self


class CatalogueEntry(_Model):
    """One service, line or programme a parent can be pointed to."""

    id: Slug
    name: NonEmptyStr
    kind: Kind
    themes: Annotated[tuple[ThemeId, ...], Field(min_length=1)]
    phases: Annotated[tuple[Phase, ...], Field(min_length=1)]
    access: Access
    region: Slug
    replaces: tuple[Slug, ...] = ()
    summary: Texts
    referral: Texts | None = None
    contact: Contact | None = None
    for_children_only: bool = False
    emergency_only: bool = False
    source: NonEmptyStr
    verified: bool = False
    last_checked: date | None = None
    # False: a coordinator took it offline (the dashboard, issue 15); never offered to a parent.
    published: bool = True
    note: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> CatalogueEntry:
        if len(set(self.themes)) != len(self.themes):
            raise _FieldProblem("themes", "a theme is listed twice")
        if self.access.needs_referral and self.referral is None:
            raise _FieldProblem(
                "referral",
                f"required when access is '{self.access.value}': say who can refer or where to ask",
            )
        if self.contact is None and self.referral is None:
            raise _FieldProblem(
                "referral", "required when there is no contact: name the role that can help"
            )
        if self.emergency_only and self.kind is not Kind.helpline:
            raise _FieldProblem("emergency_only", "only a helpline can be emergency-only")
        if self.id in self.replaces:
            raise _FieldProblem("replaces", "an entry cannot replace itself")
        if self.replaces and self.region in (NATIONAL, UNKNOWN_REGION):
            raise _FieldProblem("replaces", "only a local entry can stand in for a national one")
        if self.verified and self.last_checked is None:
            raise _FieldProblem("last_checked", "required when verified is true")
        if self.verified and UNKNOWN_REGION in (self.access.value, self.region):
            raise _FieldProblem(
                "verified", "an entry with unknown access or region cannot be verified"
            )
        return self

    @property
    def needs_referral(self) -> bool:
        """True when the parent cannot simply contact the service themselves."""
        return self.access.needs_referral


# --------------------------------------------------------------------------- catalogue


class Catalogue:
    """All catalogue entries (in file order) and the best entries per theme."""

    def __init__(
        self, entries: Mapping[str, CatalogueEntry], best: Mapping[Theme, tuple[str, ...]]
    ) -> None:
        self._entries: Mapping[str, CatalogueEntry] = MappingProxyType(dict(entries))
        self._best: Mapping[Theme, tuple[str, ...]] = MappingProxyType(dict(best))

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CatalogueEntry]:
        return iter(self._entries.values())

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    @property
    def entries(self) -> Mapping[str, CatalogueEntry]:
        """Entries by id, in the order they were loaded."""
        return self._entries

    @property
    def best(self) -> Mapping[Theme, tuple[str, ...]]:
        """The sheet's best entries per theme, in order (data/aanbod/best.yml)."""
        return self._best

    def get(self, entry_id: str) -> CatalogueEntry:
        """The entry with this id; KeyError when there is none."""
        return self._entries[entry_id]

    def adopt(self, other: Catalogue) -> None:
        """Take over `other`'s entries and best lists: every holder of this object (the pipeline,
        the desk, the dashboard) sees the newer catalogue at once (bot.catalogue_service)."""
        self._entries, self._best = other._entries, other._best

    def pick(
        self,
        theme: Theme,
        *,
        region: str = "amsterdam",
        limit: int = 3,
        include_unverified: bool = True,
        phases: frozenset[Phase] | None = None,
    ) -> list[CatalogueEntry]:
        """Up to `limit` entries for a theme, best first.

        `phases`: the life phases the message names (see `phases_for`); an entry is shown only if
        it is meant for one of them or for all. None: the message names no phase, no filter.

        Order: the theme's best entries (best.yml), then other entries with the theme: local
        before national, then those a parent can contact directly before those that need a
        referral. Shown are national
        entries and entries of the parent's own region; a local entry that `replaces` a national
        one hides it. Never the children's line, never an emergency-only number (risk handling
        gives that one), never an unpublished entry, and with `include_unverified=False` only
        verified entries.
        """
        theme = Theme(theme)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if theme is Theme.none:
            return []
        region = region.strip().lower()
        visible = [e for e in self._entries.values() if _offerable(e, region, include_unverified)
                   and (phases is None or Phase.all in e.phases or phases.intersection(e.phases))]
        replaced = {target for entry in visible for target in entry.replaces}
        shown = {e.id: e for e in visible if e.id not in replaced}

        ordered = [shown[i] for i in self._best.get(theme, ()) if i in shown]
        chosen = {e.id for e in ordered}
        rest = [e for e in shown.values() if theme in e.themes and e.id not in chosen]
        # Local before national; what a parent can contact directly before a referral.
        rest.sort(key=lambda e: (e.region != region, e.needs_referral, not _directly_reachable(e)))
        picked = (ordered + rest)[:limit]
        logger.debug(
            "catalogue pick theme=%s region=%s -> %s", theme.value, region, [e.id for e in picked]
        )
        return picked


#: Up to this age a baby is in the "birth" phase (kraamtijd: kraamzorg ends about 8 days after
#: birth, the midwife's aftercare about two weeks).
BIRTH_PHASE_DAYS = 14
#: The "0-2" phase: the first 1000 days end around a child's second birthday.
BABY_PHASE_DAYS = 2 * 365


def phases_for(child_age_days: float | None, pregnancy_week: int | None) -> frozenset[Phase] | None:
    """The life phases a message names ("4 mnd", "30 weken zwanger", "peuter van 2"), or None when
    it names none. A child older than two names no phase of its own: only entries for all."""
    if child_age_days is None and pregnancy_week is None:
        return None
    phases: set[Phase] = set()
    if pregnancy_week is not None:
        phases.add(Phase.pregnancy)
    if child_age_days is not None:
        if child_age_days <= BIRTH_PHASE_DAYS:
            phases.add(Phase.birth)
        if child_age_days <= BABY_PHASE_DAYS:
            phases.add(Phase.zero_to_two)
    return frozenset(phases)


def _directly_reachable(entry: CatalogueEntry) -> bool:
    contact = entry.contact
    return contact is not None and (contact.phone is not None or contact.website is not None)


def _offerable(entry: CatalogueEntry, region: str, include_unverified: bool) -> bool:
    if entry.for_children_only or entry.emergency_only or not entry.published:
        return False
    if not (entry.verified or include_unverified):
        return False
    return entry.region == NATIONAL or (entry.region == region and region != UNKNOWN_REGION)


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found the key {key!r} twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _display(path: Path) -> str:
    """The path relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, error: type[DataError]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{_display(path)}: cannot read the file: {exc}") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: a safe load
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{_display(path)}: invalid YAML{where}: {problem}") from exc


def _entry_label(raw: Any, index: int) -> str:
    entry_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(entry_id, str) and entry_id:
        return f"entry '{entry_id}' (index {index})"
    return f"entry at index {index}"


def _describe(exc: ValidationError) -> str:
    """One readable line for the first problem pydantic found (and how many more there are)."""
    errors = exc.errors()
    err = errors[0]
    loc = [str(part) for part in err["loc"]]
    ctx = err.get("ctx") or {}
    problem = ctx.get("error")
    if isinstance(problem, _FieldProblem):
        if problem.field:
            loc.append(problem.field)
        message = problem.message
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "extra_forbidden":
        message = "is not a known field"
    else:
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] != "value_error" and isinstance(err.get("input"), (str, int, float, bool)):
            message = f"{message} (got {err['input']!r})"
    field = ".".join(loc) if loc else "(entry)"
    more = f" (and {len(errors) - 1} more problem(s) in this entry)" if len(errors) > 1 else ""
    return f"field '{field}': {message}{more}"


def _entries_of(path: Path, data: Any) -> tuple[list[Any], Any]:
    """The raw `entries` list and raw `best` mapping of one parsed file."""
    where = _display(path)
    if not isinstance(data, dict):
        raise CatalogueError(f"{where}: expected a mapping with an 'entries:' list at the top")
    unknown = [key for key in data if key not in _TOP_LEVEL_KEYS]
    if unknown:
        raise CatalogueError(
            f"{where}: unknown top-level key {unknown[0]!r} (expected 'entries' or 'best')"
        )
    if not data:
        raise CatalogueError(f"{where}: the file is empty (expected an 'entries:' list)")
    entries = data.get("entries", [])
    if not isinstance(entries, list):
        raise CatalogueError(f"{where}: field 'entries': expected a list of entries")
    return entries, data.get("best")


def _parse_best(
    path: Path, raw: Any, best: dict[Theme, tuple[str, ...]], origin: dict[Theme, Path]
) -> None:
    where = _display(path)
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: field 'best': expected a mapping of theme -> entry ids")
    for key, ids in raw.items():
        if not isinstance(key, str) or key not in THEMES:
            raise CatalogueError(f"{where}: field 'best.{key}': {key!r} is not a taxonomy theme")
        theme = Theme(key)
        if theme in origin:
            first = _display(origin[theme])
            raise CatalogueError(f"{where}: field 'best.{key}': already given in {first}")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise CatalogueError(f"{where}: field 'best.{key}': expected a non-empty list of ids")
        if len(set(ids)) != len(ids):
            raise CatalogueError(f"{where}: field 'best.{key}': an entry is listed twice")
        best[theme] = tuple(ids)
        origin[theme] = path


def load_catalogue(directory: Path = DEFAULT_CATALOGUE_DIR) -> Catalogue:
    """Load and validate every *.yml file under `directory` into one Catalogue.

    Files hold an `entries:` list and/or a `best:` mapping (theme -> ordered entry ids). Any
    problem raises CatalogueError with one message naming the file, the entry and the field.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogueError(f"{_display(directory)}: catalogue directory not found")
    files = sorted(directory.rglob("*.yml"))
    if not files:
        raise CatalogueError(f"{_display(directory)}: no *.yml catalogue files")

    entries: dict[str, CatalogueEntry] = {}
    origin: dict[str, tuple[Path, int]] = {}
    best: dict[Theme, tuple[str, ...]] = {}
    best_origin: dict[Theme, Path] = {}
    for path in files:
        raw_entries, raw_best = _entries_of(path, _read_yaml(path, CatalogueError))
        for index, raw in enumerate(raw_entries):
            label = _entry_label(raw, index)
            if not isinstance(raw, dict):
                raise CatalogueError(f"{_display(path)}: {label}: expected a mapping of fields")
            try:
                entry = CatalogueEntry.model_validate(raw)
            except ValidationError as exc:
                raise CatalogueError(f"{_display(path)}: {label}: {_describe(exc)}") from None
            if entry.id in entries:
                first_path, first_index = origin[entry.id]
                raise CatalogueError(
                    f"{_display(path)}: {label}: field 'id': duplicate id {entry.id!r}, "
                    f"first defined in {_display(first_path)} (index {first_index})"
                )
            entries[entry.id] = entry
            origin[entry.id] = (path, index)
        if raw_best is not None:
            _parse_best(path, raw_best, best, best_origin)

    if not entries:
        raise CatalogueError(f"{_display(directory)}: no catalogue entries found")
    _check_references(entries, origin, best, best_origin)
    logger.info("loaded %d catalogue entries from %d files", len(entries), len(files))
    return Catalogue(entries, best)


def _check_references(
    entries: Mapping[str, CatalogueEntry],
    origin: Mapping[str, tuple[Path, int]],
    best: Mapping[Theme, tuple[str, ...]],
    best_origin: Mapping[Theme, Path],
) -> None:
    """Cross-file rules: `replaces` names national entries, `best` names offerable entries."""
    for entry in entries.values():
        path, index = origin[entry.id]
        for position, target in enumerate(entry.replaces):
            where = (
                f"{_display(path)}: entry '{entry.id}' (index {index}): "
                f"field 'replaces.{position}'"
            )
            if target not in entries:
                raise CatalogueError(f"{where}: {target!r} is not a catalogue entry")
            if entries[target].region != NATIONAL:
                raise CatalogueError(f"{where}: {target!r} is not a national entry")
    for theme, ids in best.items():
        for position, entry_id in enumerate(ids):
            where = f"{_display(best_origin[theme])}: field 'best.{theme.value}.{position}'"
            if entry_id not in entries:
                raise CatalogueError(f"{where}: {entry_id!r} is not a catalogue entry")
            if entries[entry_id].for_children_only:
                raise CatalogueError(f"{where}: {entry_id!r} is for children only")


# --------------------------------------------------------------------------- rendering

#: Keys of the `catalogue:` section in data/messages/<lang>.yml and the placeholders each may use.
MESSAGE_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "intro": frozenset(),
        "none_found": frozenset(),
        "outro": frozenset(),
        "phone": frozenset({"phone"}),
        "phone_and_free": frozenset({"phone", "free_phone"}),
        "free": frozenset(),
        "with_details": frozenset({"line", "details"}),
        "website": frozenset({"website"}),
        "how": frozenset({"how"}),
        "referral": frozenset({"referral"}),
    }
)


def load_messages(language: Language, directory: Path = DEFAULT_MESSAGES_DIR) -> Mapping[str, str]:
    """The fixed catalogue phrases for a language (English for `en`, Dutch otherwise).

    Raises DataError naming the file and key when the section is missing or malformed.
    """
    code = "en" if language is Language.en else "nl"
    path = Path(directory) / f"{code}.yml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise DataError(f"{_display(path)}: cannot read the messages file: {exc}") from exc
    return _load_messages_file(path, stamp)


@lru_cache(maxsize=8)
def _load_messages_file(path: Path, mtime_ns: int) -> Mapping[str, str]:
    where = _display(path)
    data = _read_yaml(path, DataError)
    section = data.get("catalogue") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise DataError(f"{where}: key 'catalogue': expected a mapping of phrases")
    messages: dict[str, str] = {}
    for key, allowed in MESSAGE_KEYS.items():
        value = section.get(key)
        if not isinstance(value, str):
            raise DataError(f"{where}: key 'catalogue.{key}': expected a text")
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise DataError(f"{where}: key 'catalogue.{key}': bad placeholder: {exc}") from exc
        if not used <= allowed:
            unknown = min(used - allowed)
            raise DataError(f"{where}: key 'catalogue.{key}': unknown placeholder {{{unknown}}}")
        messages[key] = value
    return MappingProxyType(messages)


def render_answer(
    entries: Sequence[CatalogueEntry],
    language: Language,
    *,
    messages_dir: Path = DEFAULT_MESSAGES_DIR,
) -> str:
    """A short parent-facing answer: per entry its name, what it offers and how to reach it.

    English for `Language.en`, Dutch for every other language. For entries that need a referral
    the text says who can refer. Only contact facts stored in the entries are shown.
    """
    language = Language.en if language is Language.en else Language.nl
    messages = load_messages(language, messages_dir)
    if not entries:
        return messages["none_found"]
    body = [_render_entry(entry, language, messages) for entry in entries]
    blocks = [messages["intro"], *body, messages["outro"]]
    return "\n\n".join(blocks)


def _render_entry(entry: CatalogueEntry, language: Language, messages: Mapping[str, str]) -> str:
    lines = [entry.name, entry.summary.get(language)]
    contact = entry.contact
    if contact is not None:
        if contact.phone is not None:
            if contact.free_phone is not None:
                line = messages["phone_and_free"].format(
                    phone=contact.phone, free_phone=contact.free_phone
                )
            else:
                line = messages["phone"].format(phone=contact.phone)
            details = ([messages["free"]] if contact.free else []) + (
                [contact.hours.get(language)] if contact.hours is not None else []
            )
            if details:
                line = messages["with_details"].format(line=line, details=", ".join(details))
            lines.append(line)
        if contact.website is not None:
            lines.append(messages["website"].format(website=contact.website))
    if entry.referral is not None and (entry.needs_referral or not _directly_reachable(entry)):
        lines.append(messages["referral"].format(referral=entry.referral.get(language)))
    if contact is not None and contact.how is not None:
        lines.append(messages["how"].format(how=contact.how.get(language)))
    return "\n".join(lines)


def render_entry(
    entry: CatalogueEntry,
    language: Language,
    *,
    messages_dir: Path = DEFAULT_MESSAGES_DIR,
) -> str:
    """One entry as a parent reads it (name, what it offers, how to reach it): the quick insert a
    volunteer can put in a reply. Only the contact facts stored in the entry."""
    language = Language.en if language is Language.en else Language.nl
    return _render_entry(entry, language, load_messages(language, messages_dir))
