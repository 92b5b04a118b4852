"""Coordinators' pages of the learning loop and the catalogue view (stats.learning).

- GET  /dashboard/stats/corrections[?bekeken=ja]  corrections waiting for review (or reviewed ones)
- POST /dashboard/stats/corrections/{id}/accept|reject
- GET  /dashboard/stats/catalogue                 use of every catalogue entry in the last 90 days

Coordinators only; every POST carries the CSRF token. No parent text is logged.
"""

import logging
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from bot.accounts.sessions import Person
from bot.config import Settings
from bot.intents.catalogue import Catalogue
from bot.storage.models import AuditLog, utcnow
from bot.web.auth import Coordinator, CoordinatorCsrf
from bot.web.dashboard import install_template_helpers, is_fetch, render_page
from stats import learning

logger = logging.getLogger(__name__)

NOTICES = {
    "geaccepteerd": "De correctie is geaccepteerd. Ze gaat mee met de volgende export.",
    "afgewezen": "De correctie is afgewezen.",
}
MSG_NOT_FOUND = "Deze correctie bestaat niet (meer)."


class LearningServices(Protocol):
    """What these pages use of the app's services (bot.web.app.Services)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def factory(self) -> sessionmaker[Session]: ...
    @property
    def catalogue(self) -> Catalogue: ...


def _services(request: Request) -> LearningServices:
    services: LearningServices = request.app.state.services
    return services


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(_services(request).settings.timezone)


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    install_template_helpers(templates)

    def page(request: Request, person: Person, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        return render_page(templates, request, person, name, {"zone": _zone(request), **context},
                           NOTICES, status_code)

    @router.get("/dashboard/stats/corrections", response_class=HTMLResponse)
    def corrections_page(request: Request, person: Coordinator) -> Response:
        reviewed = request.query_params.get("bekeken") == "ja"
        with _services(request).factory() as session:
            items = learning.corrections(session, reviewed=reviewed)
            waiting = learning.waiting_count(session)
        return page(request, person, "dashboard/corrections.html",
                    {"items": items, "reviewed": reviewed, "waiting": waiting,
                     "limit": learning.PAGE_LIMIT})

    def review(request: Request, person: Person, correction_id: str, accepted: bool) -> Response:
        factory = _services(request).factory
        try:
            with factory() as session, session.begin():
                learning.review(session, correction_id, accepted=accepted, user_id=person.user_id,
                                now=utcnow())
                session.add(AuditLog(user_id=person.user_id, action="correction_reviewed",
                                     detail={"correction": correction_id, "accepted": accepted}))
        except learning.CorrectionNotFound:
            if is_fetch(request):
                return JSONResponse({"ok": False, "error": MSG_NOT_FOUND}, status_code=404,
                                    headers={"Cache-Control": "no-store"})
            return page(request, person, "dashboard/error.html",
                        {"status": 404, "message": MSG_NOT_FOUND,
                         "back": "/dashboard/stats/corrections"}, status_code=404)
        logger.info("correction %s reviewed by %s: %s", correction_id, person.user_id,
                    "accepted" if accepted else "rejected")
        notice = "geaccepteerd" if accepted else "afgewezen"
        back = f"/dashboard/stats/corrections?melding={notice}"
        if is_fetch(request):
            return JSONResponse({"ok": True, "redirect": back},
                                headers={"Cache-Control": "no-store"})
        return RedirectResponse(back, status_code=303)

    @router.post("/dashboard/stats/corrections/{correction_id}/accept")
    def accept(request: Request, person: CoordinatorCsrf, correction_id: str) -> Response:
        return review(request, person, correction_id, True)

    @router.post("/dashboard/stats/corrections/{correction_id}/reject")
    def reject(request: Request, person: CoordinatorCsrf, correction_id: str) -> Response:
        return review(request, person, correction_id, False)

    @router.get("/dashboard/stats/catalogue", response_class=HTMLResponse)
    def catalogue_page(request: Request, person: Coordinator) -> Response:
        services = _services(request)
        with services.factory() as session:
            rows = learning.catalogue_usage(session, services.catalogue)
        flagged = sum(1 for row in rows if row.flagged)
        return page(request, person, "dashboard/catalogue.html",
                    {"rows": rows, "flagged": flagged, "days": learning.CATALOGUE_DAYS,
                     "small": learning.suppress})

    return router
