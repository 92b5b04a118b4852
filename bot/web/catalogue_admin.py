"""Coordinators keep the catalogue (the "aanbod") in the dashboard (bot.catalogue_service).

- GET  /dashboard/catalogue                      every entry with its flags
- GET  /dashboard/catalogue/new                  the form for a new entry
- POST /dashboard/catalogue/new                  add it
- GET  /dashboard/catalogue/{entry_id}           the edit form and the entry's history
- POST /dashboard/catalogue/{entry_id}           save it
- POST /dashboard/catalogue/{entry_id}/check     mark it checked (who, when)
- POST /dashboard/catalogue/{entry_id}/publish   publish (published=ja) or take it offline

Coordinators only; every POST carries the CSRF token (form field `csrf_token`). A refused form
comes back with everything the person typed and a Dutch message at each field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from bot import labels
from bot.accounts.sessions import Person
from bot.catalogue_service import CHECK_VALID_DAYS, CatalogueRefused, CatalogueService, validate
from bot.config import Settings
from bot.intents.catalogue import Access, Kind, Phase
from bot.web.auth import Coordinator, CoordinatorCsrf
from bot.web.dashboard import install_template_helpers, render_page

logger = logging.getLogger(__name__)

_LABELS = labels.load()
KIND_NAMES: dict[str, str] = _LABELS["catalogue_kinds"]
ACCESS_NAMES: dict[str, str] = _LABELS["catalogue_access"]
PHASE_NAMES: dict[str, str] = _LABELS["catalogue_phases"]
FLAG_NAMES: dict[str, str] = _LABELS["catalogue_flags"]
ACTION_NAMES: dict[str, str] = _LABELS["catalogue_actions"]
PROBLEMS: dict[str, str] = _LABELS["catalogue_problems"]
REFUSALS: dict[str, str] = _LABELS["catalogue_refusals"]

NOTICES = {
    "toegevoegd": "De dienst is toegevoegd.",
    "opgeslagen": "De wijziging is opgeslagen. De bot gebruikt haar vanaf het volgende bericht.",
    "ongewijzigd": "Er was niets veranderd.",
    "gecontroleerd": "De dienst is gemarkeerd als gecontroleerd.",
    "gepubliceerd": "De dienst is gepubliceerd.",
    "offline": "De dienst is offline gehaald. De bot noemt hem niet meer.",
}

#: Text pairs of the form (Dutch and English), by their path in the entry.
PAIRS = ("summary", "referral", "contact.hours", "contact.how")
#: Plain text fields of the form.
TEXT_FIELDS = ("id", "name", "kind", "access", "region", "replaces", "source", "note",
               "contact.phone", "contact.free_phone", "contact.website")
#: Yes/no fields of the form (a checkbox sends "ja").
FLAGS = ("contact.free", "for_children_only", "emergency_only")
#: Where a problem of a whole part is shown: the form field it belongs with.
_SHOWN_AT = {"summary": "summary.nl", "referral": "referral.nl", "contact": "contact.phone",
             "contact.hours": "contact.hours.nl", "contact.how": "contact.how.nl",
             "entry": "name", "verified": "access", "last_checked": "access"}
#: Every field the form shows a message at; a problem anywhere else is listed above the form.
SHOWN = frozenset({*TEXT_FIELDS, *FLAGS, "themes", "phases",
                   *(f"{pair}.{language}" for pair in PAIRS for language in ("nl", "en"))})
_SPLIT = re.compile(r"[\s,;]+")


class CatalogueServices(Protocol):
    """What these pages use of the app's services (bot.web.app.Services)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def catalogue_service(self) -> CatalogueService | None: ...


def _service(request: Request) -> CatalogueService:
    services: CatalogueServices = request.app.state.services
    service = services.catalogue_service
    if service is None:  # the composition root always makes one
        raise RuntimeError("the catalogue service is not set up")
    return service


def _zone(request: Request) -> ZoneInfo:
    services: CatalogueServices = request.app.state.services
    return ZoneInfo(services.settings.timezone)


# --------------------------------------------------------------------------- form <-> entry


def form_values(form: FormData) -> dict[str, Any]:
    """What the person typed, as the template shows it again (nothing is lost on a refusal)."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        values[name] = str(form.get(name) or "").strip()
    for pair in PAIRS:
        for language in ("nl", "en"):
            values[f"{pair}.{language}"] = str(form.get(f"{pair}.{language}") or "").strip()
    for name in FLAGS:
        values[name] = form.get(name) == "ja"
    values["themes"] = [str(v) for v in form.getlist("themes")]
    values["phases"] = [str(v) for v in form.getlist("phases")]
    values["published"] = form.get("published") == "ja"
    values["checked_now"] = form.get("checked_now") == "ja"
    values["version"] = str(form.get("version") or "")
    return values


def stored_values(data: Mapping[str, Any], *, published: bool) -> dict[str, Any]:
    """An entry's stored fields as form values."""
    contact = data.get("contact") or {}
    values: dict[str, Any] = {
        "id": data.get("id", ""), "name": data.get("name", ""), "kind": data.get("kind", ""),
        "access": data.get("access", ""), "region": data.get("region", ""),
        "replaces": ", ".join(data.get("replaces") or []), "source": data.get("source", ""),
        "note": data.get("note") or "", "contact.phone": contact.get("phone") or "",
        "contact.free_phone": contact.get("free_phone") or "",
        "contact.website": contact.get("website") or "", "contact.free": bool(contact.get("free")),
        "for_children_only": bool(data.get("for_children_only")),
        "emergency_only": bool(data.get("emergency_only")),
        "themes": list(data.get("themes") or []), "phases": list(data.get("phases") or []),
        "published": published, "checked_now": False,
    }
    for pair in PAIRS:
        part: Any = data
        for step in pair.split("."):
            part = (part or {}).get(step) if isinstance(part, Mapping) else None
        for language in ("nl", "en"):
            values[f"{pair}.{language}"] = (part or {}).get(language, "") if isinstance(part, Mapping) else ""
    return values


def _pair(values: Mapping[str, Any], name: str) -> dict[str, str] | None:
    nl, en = values[f"{name}.nl"], values[f"{name}.en"]
    return {"nl": nl, "en": en} if nl or en else None


def entry_raw(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The entry in the YAML's shape, and problems found before the model sees it."""
    problems: dict[str, str] = {}
    raw: dict[str, Any] = {
        "id": values["id"], "name": values["name"], "kind": values["kind"] or None,
        "themes": values["themes"], "phases": values["phases"],
        "access": values["access"] or None, "region": values["region"].lower(),
        "replaces": [v for v in _SPLIT.split(values["replaces"].lower()) if v],
        "source": values["source"], "for_children_only": values["for_children_only"],
        "emergency_only": values["emergency_only"],
    }
    if values["note"]:
        raw["note"] = values["note"]
    for name in ("summary", "referral"):
        pair = _pair(values, name)
        if pair is not None:
            raw[name] = pair
    website = values["contact.website"]
    if website.lower().startswith("http://"):
        problems["contact.website"] = "https_only"
    elif website.lower().startswith("https://"):
        website = website[len("https://"):].rstrip("/")
    contact: dict[str, Any] = {
        "phone": values["contact.phone"] or None,
        "free_phone": values["contact.free_phone"] or None,
        "website": website or None,
        "hours": _pair(values, "contact.hours"),
        "how": _pair(values, "contact.how"),
    }
    contact = {k: v for k, v in contact.items() if v is not None}
    if values["contact.free"]:
        contact["free"] = True
    if contact:
        raw["contact"] = contact
    return raw, problems


def all_problems(raw: Mapping[str, Any], problems: dict[str, str]) -> dict[str, str]:
    """The form's own problems and, with them, every one the model finds (all at once)."""
    if problems:
        try:
            validate(raw)
        except CatalogueRefused as error:
            return {**error.problems, **problems}
    return problems


def field_errors(problems: Mapping[str, str]) -> dict[str, str]:
    """Problem keys by field path -> Dutch messages by form field."""
    out: dict[str, str] = {}
    for path, key in problems.items():
        out.setdefault(_SHOWN_AT.get(path, path), PROBLEMS.get(key, PROBLEMS["invalid"]))
    return out


# --------------------------------------------------------------------------- routes


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    install_template_helpers(templates)

    def page(request: Request, person: Person, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        full = {"zone": _zone(request), "kinds": KIND_NAMES, "access_names": ACCESS_NAMES,
                "phase_names": PHASE_NAMES, "flag_names": FLAG_NAMES,
                "action_names": ACTION_NAMES, "kind_values": [k.value for k in Kind],
                "access_values": [a.value for a in Access],
                "phase_values": [p.value for p in Phase], "valid_days": CHECK_VALID_DAYS,
                "themes_list": list(labels.THEME_LABELS.items()),
                **context}
        return render_page(templates, request, person, name, full, NOTICES, status_code)

    def refused(request: Request, person: Person, error: CatalogueRefused) -> HTMLResponse:
        status = 404 if error.reason == "not_found" else 409
        return page(request, person, "dashboard/error.html",
                    {"status": status, "message": REFUSALS.get(error.reason, REFUSALS["invalid"]),
                     "back": "/dashboard/catalogue"}, status_code=status)

    def form_page(request: Request, person: Person, *, values: dict[str, Any], new: bool,
                  errors: dict[str, str] | None = None, message: str | None = None,
                  status_code: int = 200, entry_id: str | None = None) -> HTMLResponse:
        service = _service(request)
        stored = service.stored(entry_id) if entry_id else None
        history = service.history(entry_id) if entry_id else []
        errors = errors or {}
        return page(request, person, "dashboard/catalogue_entry.html", {
            "values": values, "new": new, "errors": errors, "message": message,
            "unplaced": [text for name, text in errors.items() if name not in SHOWN],
            "stored": stored, "history": history}, status_code=status_code)

    @router.get("/dashboard/catalogue", response_class=HTMLResponse)
    def catalogue_list(request: Request, person: Coordinator) -> Response:
        """Every entry with its flags."""
        rows = _service(request).rows()
        flagged = sum(1 for row in rows if row.flags)
        return page(request, person, "dashboard/catalogue_admin.html",
                    {"rows": rows, "flagged": flagged})

    @router.get("/dashboard/catalogue/new", response_class=HTMLResponse)
    def new_form(request: Request, person: Coordinator) -> Response:
        """The form for a new entry."""
        values = stored_values({"region": "amsterdam"}, published=True)
        return form_page(request, person, values=values, new=True)

    @router.post("/dashboard/catalogue/new", response_class=HTMLResponse)
    async def add(request: Request, person: CoordinatorCsrf) -> Response:
        """Add an entry (validated, audited)."""
        values = form_values(await request.form())
        raw, problems = entry_raw(values)
        if raw["id"] == "new":  # the address of this form
            problems["id"] = "id_taken"
        problems = all_problems(raw, problems)
        if not problems:
            try:
                entry = _service(request).add(person.user_id, raw, published=values["published"],
                                              checked=values["checked_now"])
            except CatalogueRefused as error:
                problems = error.problems
            else:
                return RedirectResponse(f"/dashboard/catalogue/{entry.id}?melding=toegevoegd",
                                        status_code=303)
        return form_page(request, person, values=values, new=True,
                         errors=field_errors(problems), message=REFUSALS["invalid"],
                         status_code=400)

    @router.get("/dashboard/catalogue/{entry_id}", response_class=HTMLResponse)
    def edit_form(request: Request, person: Coordinator, entry_id: str) -> Response:
        """The edit form and the entry's history."""
        try:
            stored = _service(request).stored(entry_id)
        except CatalogueRefused as error:
            return refused(request, person, error)
        values = stored_values(stored.data, published=stored.published)
        values["version"] = str(stored.version)
        return form_page(request, person, values=values, new=False, entry_id=entry_id)

    @router.post("/dashboard/catalogue/{entry_id}", response_class=HTMLResponse)
    async def save(request: Request, person: CoordinatorCsrf, entry_id: str) -> Response:
        """Save the edit form (a change of its facts ends its check, unless checked now)."""
        service = _service(request)
        values = form_values(await request.form())
        values["id"] = entry_id
        raw, problems = entry_raw(values)
        problems = all_problems(raw, problems)
        try:
            stored = service.stored(entry_id)
        except CatalogueRefused as error:
            return refused(request, person, error)
        values["published"] = stored.published
        message = REFUSALS["invalid"]
        if not problems:
            try:
                version = int(values["version"] or "0")
                before = stored.version
                service.edit(person.user_id, entry_id, raw, version=version,
                             checked=values["checked_now"])
            except ValueError:
                problems, message = {}, REFUSALS["stale"]
            except CatalogueRefused as error:
                if error.reason == "not_found":
                    return refused(request, person, error)
                problems = error.problems
                message = REFUSALS.get(error.reason, REFUSALS["invalid"])
                if error.reason == "stale":  # saving again overwrites, knowingly
                    values["version"] = str(service.stored(entry_id).version)
            else:
                changed = service.stored(entry_id).version != before
                notice = "opgeslagen" if changed else "ongewijzigd"
                return RedirectResponse(f"/dashboard/catalogue/{entry_id}?melding={notice}",
                                        status_code=303)
        return form_page(request, person, values=values, new=False, entry_id=entry_id,
                         errors=field_errors(problems), message=message,
                         status_code=409 if message == REFUSALS["stale"] else 400)

    @router.post("/dashboard/catalogue/{entry_id}/check")
    def check(request: Request, person: CoordinatorCsrf, entry_id: str) -> Response:
        """Mark the entry checked now, by this person."""
        try:
            _service(request).check(person.user_id, entry_id)
        except CatalogueRefused as error:
            return refused(request, person, error)
        return RedirectResponse(f"/dashboard/catalogue/{entry_id}?melding=gecontroleerd",
                                status_code=303)

    @router.post("/dashboard/catalogue/{entry_id}/publish")
    async def publish(request: Request, person: CoordinatorCsrf, entry_id: str) -> Response:
        """Publish the entry (published=ja) or take it offline (anything else)."""
        published = (await request.form()).get("published") == "ja"
        try:
            _service(request).set_published(person.user_id, entry_id, published)
        except CatalogueRefused as error:
            return refused(request, person, error)
        notice = "gepubliceerd" if published else "offline"
        return RedirectResponse(f"/dashboard/catalogue/{entry_id}?melding={notice}",
                                status_code=303)

    return router
