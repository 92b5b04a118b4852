"""Supervision on the dashboard ("Meekijken"): the live list, a conversation opened read-only,
a note to the person who has it, "Neem over"; and for that person "Vraag hulp" and the notes on
their own conversation page.

Who may do what is the desk's rule (handoff.supervision): coordinators and professionals on
shift supervise; a volunteer is refused (403) on every supervision route. The routes only say
the desk's refusals in Dutch (bot.web.dashboard.refusal_text) with their status code. Every POST
needs the CSRF token; a form POST is answered with a 303, the same POST by fetch with JSON.
"""

import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bot.web.auth import CsrfPerson, CurrentPerson, Person
from bot.web.dashboard import (
    MAX_NOTE_CHARS,
    FormProblem,
    _local,
    is_fetch,
    refusal_status,
    refusal_text,
    render_fragment,
    render_page,
)
from handoff.errors import Conflict, DeskError
from handoff.supervision import HolderView, Supervision, may_supervise

logger = logging.getLogger(__name__)

#: Messages after a redirect to a supervision page, by key.
NOTICES = {
    "notitie": "Je notitie is verstuurd. Alleen wie het gesprek heeft, ziet hem; de ouder niet.",
}
#: How often the open "Meekijken" page refreshes its list when nothing happens (minutes move on).
LIST_REFRESH_SECONDS = 30


def _supervision(request: Request) -> Supervision:
    supervision: Supervision = request.app.state.services.desk.supervision
    return supervision


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    templates.env.globals["holder_supervision"] = _holder_view
    templates.env.globals["may_supervise"] = lambda person: may_supervise(person.role)
    templates.env.globals["supervision_help_waiting"] = _help_waiting

    def page(request: Request, person: Person, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        return render_page(templates, request, person, name, context, NOTICES, status_code)

    def fragment(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
        return render_fragment(templates, request, name, context)

    def refusal(request: Request, person: Person, error: DeskError | FormProblem) -> Response:
        if isinstance(error, FormProblem):
            status, message = 400, error.message
        else:
            status, message = refusal_status(error), refusal_text(error)
        if is_fetch(request):
            return JSONResponse({"ok": False, "error": message}, status_code=status,
                                headers={"Cache-Control": "no-store"})
        return page(request, person, "dashboard/error.html",
                    {"status": status, "message": message,
                     "back": _local(request.headers.get("referer", ""))}, status_code=status)

    def act(request: Request, person: Person, action: Callable[[], Any],
            then: Callable[[Any], str]) -> Response:
        try:
            result = action()
        except (DeskError, FormProblem) as error:
            return refusal(request, person, error)
        url = then(result)
        if is_fetch(request):
            return JSONResponse({"ok": True, "redirect": url}, headers={"Cache-Control": "no-store"})
        return RedirectResponse(url, status_code=303)

    def heartbeat(request: Request, person: Person) -> None:
        """A page that polls is there too (as the queue's fragment does)."""
        try:
            request.app.state.services.desk.heartbeat(person)
        except Exception as error:  # noqa: BLE001 - the fragment matters more than the heartbeat
            logger.warning("supervision: heartbeat failed: %s", type(error).__name__)

    # The live list -----------------------------------------------------------------------

    @router.get("/dashboard/supervision", response_class=HTMLResponse)
    def live_page(request: Request, person: CurrentPerson) -> Response:
        """Meekijken: every live conversation, who has it, since when, its risk and silence."""
        try:
            items = _supervision(request).live(person)
        except DeskError as error:
            return refusal(request, person, error)
        return page(request, person, "dashboard/supervision.html",
                    {"items": items, "refresh_seconds": LIST_REFRESH_SECONDS})

    @router.get("/dashboard/supervision/live", response_class=HTMLResponse)
    def live_fragment(request: Request, person: CurrentPerson) -> Response:
        """The live list alone, for the page's live refresh."""
        try:
            items = _supervision(request).live(person)
        except DeskError as error:
            return refusal(request, person, error)
        heartbeat(request, person)
        return fragment(request, "dashboard/_supervision_list.html", {"items": items, "person": person})

    # One conversation, read-only ---------------------------------------------------------------

    @router.get("/dashboard/supervision/{conversation_id}", response_class=HTMLResponse)
    def watch_page(request: Request, person: CurrentPerson, conversation_id: str) -> Response:
        """A live conversation read-only (audited each time), the note box and "Neem over"."""
        try:
            view = _supervision(request).watch(conversation_id, person)
        except DeskError as error:
            return refusal(request, person, error)
        last = view.messages[-1].n if view.messages else 0
        return page(request, person, "dashboard/supervision_watch.html", {"view": view, "after": last})

    @router.get("/dashboard/supervision/{conversation_id}/messages", response_class=HTMLResponse)
    def watch_messages(request: Request, person: CurrentPerson, conversation_id: str,
                       after: int = 0) -> Response:
        """Transcript items after `after`, for the read-only view's live update."""
        try:
            items = _supervision(request).messages_after(conversation_id, person, max(0, after))
        except DeskError as error:
            return refusal(request, person, error)
        heartbeat(request, person)
        response = fragment(request, "dashboard/_messages.html", {"messages": items})
        response.headers["X-Next"] = str(items[-1].n if items else max(0, after))
        return response

    @router.post("/dashboard/supervision/{conversation_id}/note")
    def note(request: Request, person: CsrfPerson, conversation_id: str,
             text: Annotated[str, Form()] = "") -> Response:
        """A note only the person who has the conversation sees."""
        def run() -> None:
            body = text.strip()
            if not body:
                raise FormProblem("Schrijf eerst een notitie.")
            if len(body) > MAX_NOTE_CHARS:
                raise FormProblem(f"De notitie is te lang (meer dan {MAX_NOTE_CHARS} tekens).")
            _supervision(request).note(conversation_id, person, body)

        return act(request, person, run, lambda _: watch_url(conversation_id, "notitie"))

    @router.post("/dashboard/supervision/{conversation_id}/takeover")
    def take_over(request: Request, person: CsrfPerson, conversation_id: str,
                  holder: Annotated[str, Form()] = "") -> Response:
        """Neem over: the conversation becomes this supervisor's (if `holder` still has it)."""
        return act(request, person, lambda: _supervision(request).take_over(conversation_id, person, holder),
                   lambda _: conversation_url(conversation_id, "overgenomen"))

    # The person who has the conversation -------------------------------------------------------

    @router.post("/dashboard/conversations/{conversation_id}/help")
    def help_request(request: Request, person: CsrfPerson, conversation_id: str,
                     action: Annotated[str, Form()] = "request") -> Response:
        """Vraag hulp (action=request) or withdraw it (action=withdraw)."""
        supervision = _supervision(request)

        def run() -> str:
            if action == "withdraw":
                supervision.withdraw_help(conversation_id, person)
                return "hulp_ingetrokken"
            if action == "request":
                return "hulp_gevraagd" if supervision.request_help(conversation_id, person) else "hulp_niemand"
            raise FormProblem("Kies 'Vraag hulp' of 'Hulpvraag intrekken'.")

        return act(request, person, run, lambda notice: conversation_url(conversation_id, notice))

    @router.get("/dashboard/conversations/{conversation_id}/notes", response_class=HTMLResponse)
    def holder_notes(request: Request, person: CurrentPerson, conversation_id: str) -> Response:
        """The holder's supervision box (help request, notes), for its live update."""
        view = _supervision(request).for_holder(conversation_id, person)
        if view is None:
            return refusal(request, person, Conflict("not_yours"))
        return fragment(request, "dashboard/_supervision_holder.html",
                        {"supervision": view, "csrf_token": person.csrf_token, "person": person})

    return router


def watch_url(conversation_id: str, notice: str | None = None) -> str:
    url = f"/dashboard/supervision/{quote(conversation_id, safe='')}"
    return f"{url}?melding={notice}" if notice else url


def conversation_url(conversation_id: str, notice: str | None = None) -> str:
    url = f"/dashboard/conversations/{quote(conversation_id, safe='')}"
    return f"{url}?melding={notice}" if notice else url


def _holder_view(request: Request, person: Person, conversation_id: str) -> HolderView | None:
    """For conversation.html: the help request and notes of the person who has it (else None)."""
    return _supervision(request).for_holder(conversation_id, person)


def _help_waiting(request: Request, person: Person) -> int:
    """For base.html: how many conversations ask a supervisor on shift for help (else 0)."""
    try:
        return _supervision(request).help_waiting(person)
    except Exception as error:  # noqa: BLE001 - the top of a page never breaks the page
        logger.warning("supervision: help requests unavailable: %s", type(error).__name__)
        return 0
