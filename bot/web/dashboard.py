"""The dashboard for volunteers, professionals and coordinators: the queue, the conversation page
with the handover card, live updates over SSE, and the coordinators' standard texts and blocks.

Server-rendered (Jinja2) with a few lines of plain JS (static/dashboard.js). Every route needs a
login (bot.web.auth); every POST needs the CSRF token. A plain form POST is answered with a 303
redirect; the same POST sent by fetch (header ``X-Requested-With: fetch``) gets JSON. A refusal of
the desk (handoff.errors) is shown with a status code chosen here by the kind of refusal
(`refusal_status`) and its reason in Dutch (bot.labels, data/labels/nl.yml). No phone numbers
or chat ids appear anywhere here: a conversation is shown by a short ref ("#" + 6 characters).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot import catalogue_warning
from bot.labels import (
    AUTHOR_LABELS,
    CHANNEL_LABELS,
    KIND_LABELS,
    LANGUAGE_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    QUEUE_LABELS,
    RISK_LABELS,
    ROLE_LABELS,
    THEME_LABELS,
    error_text,
)
from bot.rules import PRIORITY, QueueName
from bot.storage.models import (
    Conversation,
    ConversationStatus,
    Shift,
    User,
    aware,
)
from bot.triage.types import Risk
from bot.web.auth import Coordinator, CoordinatorCsrf, CsrfPerson, CurrentPerson, Person
from handoff import events
from handoff.context import Outcome
from handoff.errors import Conflict, DeskError, NotAllowed, NotFound

logger = logging.getLogger(__name__)

URGENT_PRIORITY = PRIORITY[Risk.high]  # acute (0) and high (1)

#: How often the event stream sends a comment (and refreshes the person's heartbeat); at most a
#: quarter of PRESENCE_TIMEOUT_SECONDS, so a person whose tab is open never looks away.
PING_SECONDS = 15.0
#: The longest a reply can be (the desk checks it too).
MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 2000
MAX_BLOCK_DAYS = 365

#: A queue row's badge in words (acute has its own ⚠ ACUUT badge; an ordinary question none).
PRIORITY_BADGES = {1: "Dringend", 2: "Heeft het zwaar"}
#: What kind of danger, for the handover card's first line (taxonomy.md, "danger kind").
DANGER_WORDS = {
    "suicide": "de ouder schreef over zelfdoding",
    "violence_now": "de ouder schreef over geweld dat nu gebeurt",
    "child_in_danger": "een kind is nu in gevaar",
    "medical_child": "signalen van een medisch probleem bij een baby of kind",
    "medical_pregnancy": "signalen van een medisch probleem in de zwangerschap",
    "psychiatric": "signalen van ernstige psychische nood, zoals stemmen horen of dagen niet slapen",
    "homeless_now": "de ouder is nu met een kind op straat of in de kou",
}
MONTHS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")

#: Why a conversation waits (handoff reasons from bot.intents.dialogue), in Dutch.
QUEUE_REASONS = {
    "acute risk": "acuut risico",
    "parent's choice": "de ouder koos dit zelf",
    "no choice made": "de ouder koos niet; de bot koos deze wachtrij",
    "asked for a person": "de ouder vroeg om een mens",
    "risk high": "hoog risico",
}
#: The risk rules of data/risk/rules.yml, in Dutch (an unknown id is shown as it is).
RISK_RULES = {
    "suicide_words": "woorden over zelfdoding",
    "want_to_die": "wil niet meer leven",
    "suicide_plan": "plan om zichzelf iets aan te doen",
    "violence_now": "geweld op dit moment",
    "harm_to_child": "bang het kind iets aan te doen",
    "baby_not_breathing": "baby ademt niet goed",
    "pregnancy_bleeding": "bloedverlies in de zwangerschap",
    "no_fetal_movement": "voelt de baby niet bewegen",
    "preterm_labour": "te vroeg weeën",
    "preeclampsia_signs": "tekenen van zwangerschapsvergiftiging",
    "acute_other_languages": "acuut gevaar (andere taal)",
    "domestic_violence": "huiselijk geweld",
    "forced_marriage": "gedwongen huwelijk",
    "sexual_violence": "seksueel geweld",
    "child_abuse": "kindermishandeling",
    "addiction_in_pregnancy": "verslaving in de zwangerschap",
    "homeless_with_child": "dakloos met kind",
    "severe_depression": "ernstige somberheid",
    "distress": "veel spanning of verdriet",
}

#: Messages after a redirect, by key (never text from the query string itself).
NOTICES = {
    "niemand": "Er wacht nu niemand die jij kunt oppakken.",
    "teruggezet": "Het gesprek staat weer in de wachtrij, op zijn oude plek.",
    "doorgezet": "Het gesprek is doorgezet, met je notitie.",
    "afgesloten": "Het gesprek is afgesloten. Dank je wel.",
    "begonnen": "Je dienst is begonnen.",
    "gestopt": "Je dienst is gestopt.",
    "gestopt_terug": "Je dienst is gestopt. Je open gesprekken staan weer in de wachtrij.",
    "geblokkeerd": "De afzender is geblokkeerd. Het gesprek is gesloten.",
    "opgeheven": "De blokkade is opgeheven.",
    "tekst_toegevoegd": "De standaardtekst is toegevoegd.",
    "tekst_verwijderd": "De standaardtekst is verwijderd.",
    "verwijzing": ("De vraag om toestemming is verstuurd. Zegt de ouder 'ja', dan krijgt die "
                   "de verwijzing."),
    "gezien": "De melding is als gezien gemarkeerd.",
    "coordinator": "Het gesprek is bij de coördinator. Die krijgt er nu een melding van.",
    # Supervision (bot.web.supervision): on the conversation page after these actions.
    "overgenomen": "Je hebt het gesprek overgenomen. De ouder hoort dat jij er nu bent.",
    "hulp_gevraagd": "Je vraag om hulp is verstuurd naar wie nu meekijkt in dienst.",
    "hulp_niemand": ("Je vraag om hulp staat klaar, maar er is nu geen coördinator of "
                     "hulpverlener online. Wie online komt, ziet hem in de lijst."),
    "hulp_ingetrokken": "Je vraag om hulp is ingetrokken.",
}


#: The status code of each kind of refusal of the desk (handoff.errors); the first match counts.
REFUSAL_STATUS: tuple[tuple[type[DeskError], int], ...] = (
    (NotFound, 404), (NotAllowed, 403), (Conflict, 409), (DeskError, 400),
)


def refusal_status(error: DeskError) -> int:
    return next(status for kind, status in REFUSAL_STATUS if isinstance(error, kind))


def refusal_text(error: DeskError) -> str:
    """Why the desk refused, in Dutch (data/labels/nl.yml, "errors")."""
    return error_text(error.reason, **error.detail)


class FormProblem(Exception):
    """Input a person can fix: shown as a 400 with a Dutch message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_fetch(request: Request) -> bool:
    return request.headers.get("x-requested-with", "").lower() == "fetch"


def short_ref(conversation_id: str) -> str:
    return conversation_id[:6]


def _desk(request: Request) -> Any:
    return request.app.state.services.desk


def _zone(context: Any) -> ZoneInfo:
    request = context.get("request")
    try:
        return ZoneInfo(request.app.state.services.settings.timezone)
    except AttributeError:  # a template rendered outside a request (no services): Amsterdam time
        return ZoneInfo("Europe/Amsterdam")


@jinja2.pass_context
def _clock(context: Any, moment: datetime | None) -> str:
    """"14:05" today, else "3 mrt 14:05" (local time)."""
    moment = aware(moment)
    if moment is None:
        return ""
    zone = _zone(context)
    local = moment.astimezone(zone)
    today = datetime.now(zone).date()
    if local.date() == today:
        return f"{local:%H:%M}"
    day = f"{local.day} {MONTHS[local.month - 1]}"
    if local.year != today.year:
        day += f" {local.year}"
    return f"{day} {local:%H:%M}"


def _minutes(value: int | None) -> str:
    """Waiting time for people: "net binnen", "7 min", "1 u 05 min"."""
    if value is None:
        return "–"
    if value < 1:
        return "net binnen"
    if value < 60:
        return f"{value} min"
    return f"{value // 60} u {value % 60:02d} min"


def _label(mapping: dict[Any, str], value: Any) -> str:
    if value is None:
        return "–"
    if value in mapping:
        return mapping[value]
    raw = getattr(value, "value", value)
    for key, text in mapping.items():
        if getattr(key, "value", key) == raw:
            return text
    return str(raw)


def queue_reason(reason: str | None) -> str:
    """A queue reason for people: "theme housing" -> "thema: wonen"."""
    if not reason:
        return ""
    if reason in QUEUE_REASONS:
        return QUEUE_REASONS[reason]
    if reason.startswith("theme "):
        return "thema: " + _label(THEME_LABELS, reason[len("theme "):])
    if reason.startswith("risk "):
        return "risico: " + _label(RISK_LABELS, reason[len("risk "):])
    return reason


def risk_reason(reason: str) -> str:
    """A triage risk reason for people: "rule:distress" -> "signaal: veel spanning of verdriet".
    Empty for what a volunteer cannot act on: the model's own score, an unknown kind of reason."""
    kind, _, rest = reason.partition(":")
    negated = rest.endswith(" (negated)")
    rest = rest.removesuffix(" (negated)")
    if negated:
        return ""  # a sign that is absent is no reason
    if kind == "rule":
        return "de ouder schreef over: " + RISK_RULES.get(rest, rest.replace("_", " "))
    if kind == "idiom":
        return "een uitdrukking, niet letterlijk bedoeld: " + rest
    return ""


def urgency_headline(urgency: Any) -> str:
    """The card's first line for an acute or high conversation, in words a volunteer knows:
    "Spoed: de ouder schreef over zelfdoding", "Let op: signalen van een medisch probleem bij
    een baby of kind". From the triage's risk, danger kind and theme (handoff.card.Urgency)."""
    if urgency is None:
        return ""
    acute = getattr(urgency.risk, "value", urgency.risk) == "acute"
    lead = "Spoed: " if acute else "Let op: "
    danger = getattr(urgency.danger, "value", urgency.danger)
    if danger in DANGER_WORDS:
        return lead + DANGER_WORDS[danger]
    theme = _label(THEME_LABELS, urgency.theme) if urgency.theme else None
    if acute:
        return lead + "de ouder schreef iets dat op gevaar nu wijst" + (f" (over {theme})" if theme else "")
    return lead + ("ernstige zorgen over " + theme if theme else "ernstige zorgen")


def install_template_helpers(templates: Jinja2Templates) -> None:
    """Filters and globals the dashboard templates use (base.html works without them too)."""
    env = templates.env
    env.filters["clock"] = _clock
    env.filters["minutes"] = _minutes
    env.filters["theme"] = lambda v: _label(THEME_LABELS, v)
    env.filters["risk"] = lambda v: _label(RISK_LABELS, v)
    env.filters["role"] = lambda v: _label(ROLE_LABELS, v)
    env.filters["outcome"] = lambda v: _label(OUTCOME_LABELS, v)
    env.filters["queue"] = lambda v: _label(QUEUE_LABELS, v)
    env.filters["kind"] = lambda v: _label(KIND_LABELS, v)
    env.filters["channel"] = lambda v: _label(CHANNEL_LABELS, v)
    env.filters["language"] = lambda v: _label(LANGUAGE_LABELS, v)
    env.filters["priority"] = lambda v: _label(PRIORITY_LABELS, v)
    env.filters["author"] = lambda v: _label(AUTHOR_LABELS, v)
    env.filters["queue_reason"] = queue_reason
    env.filters["risk_reason"] = risk_reason
    env.filters["urgency"] = urgency_headline
    env.filters["badge"] = lambda v: PRIORITY_BADGES.get(v, "")
    env.globals["dashboard_shift"] = _open_shift
    env.globals["catalogue_warning"] = _catalogue_warning


def _catalogue_warning(request: Request) -> str | None:
    """The banner for coordinators when the bot may offer only checked entries and none is."""
    try:
        services = request.app.state.services
        return catalogue_warning.banner(services.settings, services.catalogue)
    except Exception as error:  # noqa: BLE001 - the banner never breaks a page
        logger.warning("dashboard: catalogue state unavailable: %s", type(error).__name__)
        return None


def _open_shift(request: Request, person: Person) -> Shift | None:
    """The person's open shift, for the top bar of pages that do not pass one."""
    try:
        factory = request.app.state.services.factory
        with factory() as session:
            shift: Shift | None = session.scalar(
                select(Shift).where(Shift.user_id == person.user_id, Shift.ended_at.is_(None))
                .order_by(Shift.started_at.desc()).limit(1)
            )
            return shift
    except Exception as error:  # noqa: BLE001 - the top bar never breaks a page
        logger.warning("dashboard: shift state unavailable: %s", type(error).__name__)
        return None


def _holder_name(request: Request, conversation_id: str) -> str | None:
    """The display name of whoever has claimed a conversation, if anyone."""
    with request.app.state.services.factory() as session:
        name: str | None = session.scalar(
            select(User.display_name).join(Conversation, Conversation.claimed_by == User.id)
            .where(Conversation.id == conversation_id,
                   Conversation.status == ConversationStatus.claimed)
        )
        return name


def visible_to(event: events.Event, person: Person) -> bool:
    """Whether a live event concerns this person: about them, about a queue they may take, or
    about an acute or high conversation (everyone on shift sees those, in every queue; the page
    itself knows whether this person is on shift). A personal event (events.PERSONAL: help
    requests, notes, takeovers) only to the person it names."""
    if event.type in events.PERSONAL:
        return event.user_id is not None and event.user_id == person.user_id
    if event.user_id is not None and event.user_id == person.user_id:
        return True
    if event.queue is None:
        return True
    if event.priority is not None and event.priority <= URGENT_PRIORITY:
        return True
    try:
        queue = QueueName(event.queue)
    except ValueError:
        return False
    return person.may_take(queue)


def render_page(templates: Jinja2Templates, request: Request, person: Person, name: str,
                context: dict[str, Any], notices: Mapping[str, str], status_code: int = 200) -> HTMLResponse:
    """A dashboard page: the person, their CSRF token and the notice named by `?melding=` (from
    the route module's own `notices`), never cached."""
    notice = notices.get(request.query_params.get("melding", ""))
    full = {"person": person, "csrf_token": person.csrf_token, "notice": notice, **context}
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def render_fragment(templates: Jinja2Templates, request: Request, name: str,
                    context: dict[str, Any]) -> HTMLResponse:
    """A piece of a page the dashboard's script fetches, never cached."""
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


def build_router(templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    install_template_helpers(templates)

    # Rendering ---------------------------------------------------------------------------

    def page(request: Request, person: Person, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        return render_page(templates, request, person, name, context, NOTICES, status_code)

    def fragment(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
        return render_fragment(templates, request, name, context)

    def refusal(request: Request, person: Person, status: int, message: str) -> Response:
        if is_fetch(request):
            return JSONResponse({"ok": False, "error": message}, status_code=status,
                                headers={"Cache-Control": "no-store"})
        back = request.headers.get("referer", "")
        return page(request, person, "dashboard/error.html",
                    {"status": status, "message": message, "back": _local(back)},
                    status_code=status)

    def done(request: Request, url: str, **extra: Any) -> Response:
        if is_fetch(request):
            return JSONResponse({"ok": True, "redirect": url, **extra},
                                headers={"Cache-Control": "no-store"})
        return RedirectResponse(url, status_code=303)

    def act(request: Request, person: Person, action: Callable[[], Any],
            then: Callable[[Any], str]) -> Response:
        try:
            result = action()
        except DeskError as error:
            status = refusal_status(error)
            logger.info("dashboard: refused (%s): %s", status, error.reason)
            return refusal(request, person, status, refusal_text(error))
        except FormProblem as problem:
            return refusal(request, person, 400, problem.message)
        return done(request, then(result))

    def conversation_url(conversation_id: str, notice: str | None = None) -> str:
        url = f"/dashboard/conversations/{quote(conversation_id, safe='')}"
        return f"{url}?melding={notice}" if notice else url

    # The queue -----------------------------------------------------------------------------

    @router.get("/dashboard", response_class=HTMLResponse)
    def queue_page(request: Request, person: CurrentPerson) -> Response:
        """The queue: waiting conversations, my conversations, the shift and "volgende oppakken"."""
        try:
            snapshot = _desk(request).snapshot(person)
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        return page(request, person, "dashboard/queue.html",
                    {"snapshot": snapshot, "shift": snapshot.shift})

    def polled(request: Request, person: Person) -> None:
        """A page that polls (its event stream is down) is there too: the same heartbeat."""
        try:
            _desk(request).heartbeat(person)
        except Exception as error:  # noqa: BLE001 - the fragment matters more than the heartbeat
            logger.warning("dashboard: heartbeat failed: %s", type(error).__name__)

    @router.get("/dashboard/queue", response_class=HTMLResponse)
    def queue_fragment(request: Request, person: CurrentPerson) -> Response:
        """The lists of the queue page, for the live refresh (and the poll when live fails)."""
        polled(request, person)
        try:
            snapshot = _desk(request).snapshot(person)
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        return fragment(request, "dashboard/_queue_lists.html", {
            "person": person, "csrf_token": person.csrf_token, "snapshot": snapshot,
        })

    @router.post("/dashboard/claim-next")
    def claim_next(request: Request, person: CsrfPerson) -> Response:
        """Claim the most urgent conversation this person may take."""
        def then(found: str | None) -> str:
            return conversation_url(found) if found else "/dashboard?melding=niemand"

        return act(request, person, lambda: _desk(request).claim_next(person), then)

    @router.post("/dashboard/shift")
    def shift(request: Request, person: CsrfPerson,
              action: Annotated[str, Form()] = "", queue: Annotated[str, Form()] = "") -> Response:
        """Start ("Ik begin") or stop ("Ik stop") a shift."""
        desk = _desk(request)

        def run() -> str:
            if action == "start":
                chosen = None
                if queue:
                    try:
                        chosen = QueueName(queue)
                    except ValueError:
                        raise FormProblem("Kies een bestaande wachtrij.") from None
                desk.start_shift(person, chosen)
                return "begonnen"
            if action == "stop":
                returned = desk.stop_shift(person.user_id)
                return "gestopt_terug" if returned else "gestopt"
            raise FormProblem("Kies 'Ik begin' of 'Ik stop'.")

        return act(request, person, run, lambda notice: f"/dashboard?melding={notice}")

    # Live events ---------------------------------------------------------------------------

    @router.get("/dashboard/events")
    async def event_stream(request: Request, person: CurrentPerson) -> StreamingResponse:
        """Server-sent events: what happens in the queues this person may take (no text, no
        addresses), and a ping every 15 seconds that also keeps the person's shift alive."""
        services = request.app.state.services
        desk = services.desk
        interval = float(getattr(request.app.state, "sse_ping_seconds", PING_SECONDS))
        interval = min(interval, services.settings.presence_timeout_seconds / 4)
        prefix = getattr(desk, "prefix", "ot")
        return StreamingResponse(
            _stream(services.redis, desk, person, interval, prefix),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # A conversation ------------------------------------------------------------------------

    @router.get("/dashboard/conversations/{conversation_id}", response_class=HTMLResponse)
    def conversation_page(request: Request, person: CurrentPerson,
                          conversation_id: str) -> Response:
        """The handover card, the transcript and (for whoever has it) the reply box. The first
        opening of a claim sends the parent the warm handover (the desk's `open`)."""
        desk = _desk(request)
        try:
            card = desk.open(conversation_id, person)
        except Conflict as error:
            # Someone else has it (the desk let this person see that much): say who.
            holder = _holder_name(request, conversation_id)
            message = f"Dit gesprek is opgepakt door {holder}." if holder else refusal_text(error)
            return refusal(request, person, refusal_status(error), message)
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        catalogue = request.app.state.services.catalogue
        first = [*card.suggested, *card.given]
        seen: set[str] = set()
        entries = []
        for entry in [*first, *catalogue]:
            if entry.id not in seen:
                seen.add(entry.id)
                entries.append(entry)
        last = card.messages[-1].n if card.messages else 0
        return page(request, person, "dashboard/conversation.html", {
            "card": card, "entries": entries, "after": last,
            "other_queue": QueueName.volunteer if card.queue is QueueName.professional
            else QueueName.professional,
            "outcomes": [(Outcome(value), label) for value, label in OUTCOME_LABELS.items()],
            "themes": list(THEME_LABELS.items()),
        })

    @router.get("/dashboard/conversations/{conversation_id}/messages", response_class=HTMLResponse)
    def conversation_messages(request: Request, person: CurrentPerson, conversation_id: str,
                              after: int = 0) -> Response:
        """Transcript items after position `after`, as a fragment (for the live update)."""
        polled(request, person)
        try:
            items = _desk(request).messages_after(conversation_id, person, max(0, after))
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        response = fragment(request, "dashboard/_messages.html", {"messages": items})
        response.headers["X-Next"] = str(items[-1].n if items else max(0, after))
        return response

    @router.post("/dashboard/conversations/{conversation_id}/claim")
    def claim(request: Request, person: CsrfPerson, conversation_id: str) -> Response:
        return act(request, person, lambda: _desk(request).claim(conversation_id, person),
                   lambda _: conversation_url(conversation_id))

    @router.post("/dashboard/conversations/{conversation_id}/reply")
    def reply(request: Request, person: CsrfPerson, conversation_id: str,
              text: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            body = text.strip()
            if not body:
                raise FormProblem("Schrijf eerst een bericht.")
            if len(body) > MAX_REPLY_CHARS:
                raise FormProblem(f"Je bericht is te lang (meer dan {MAX_REPLY_CHARS} tekens). "
                                  "Maak het korter of verstuur het in delen.")
            _desk(request).reply(conversation_id, person, body)

        return act(request, person, run, lambda _: conversation_url(conversation_id))

    @router.post("/dashboard/conversations/{conversation_id}/release")
    def release(request: Request, person: CsrfPerson, conversation_id: str) -> Response:
        return act(request, person, lambda: _desk(request).release(conversation_id, person),
                   lambda _: "/dashboard?melding=teruggezet")

    @router.post("/dashboard/conversations/{conversation_id}/transfer")
    def transfer(request: Request, person: CsrfPerson, conversation_id: str,
                 note: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            body = note.strip()
            if not body:
                raise FormProblem("Schrijf een korte notitie voor wie het overneemt.")
            if len(body) > MAX_NOTE_CHARS:
                raise FormProblem(f"De notitie is te lang (meer dan {MAX_NOTE_CHARS} tekens).")
            _desk(request).transfer(conversation_id, person, body)

        return act(request, person, run, lambda _: "/dashboard?melding=doorgezet")

    @router.post("/dashboard/conversations/{conversation_id}/close")
    def close(request: Request, person: CsrfPerson, conversation_id: str,
              outcome: Annotated[str, Form()] = "",
              referred_to: Annotated[str, Form()] = "",
              themes: Annotated[list[str] | None, Form()] = None,
              closing_note: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            try:
                chosen = Outcome(outcome)
            except ValueError:
                raise FormProblem("Kies hoe het gesprek is afgelopen.") from None
            corrected = [t for t in (themes or []) if t]
            unknown = [t for t in corrected if t not in THEME_LABELS]
            if unknown:
                raise FormProblem("Kies thema's uit de lijst.")
            if chosen is Outcome.referred_service and not referred_to:
                raise FormProblem("Kies naar welke dienst je hebt doorverwezen.")
            if len(closing_note) > MAX_NOTE_CHARS:
                raise FormProblem(f"De notitie is te lang (meer dan {MAX_NOTE_CHARS} tekens).")
            _desk(request).close(
                conversation_id, person, chosen,
                referred_to=(referred_to or None) if chosen is Outcome.referred_service else None,
                corrected_themes=corrected, closing_note=closing_note.strip(),
            )

        return act(request, person, run, lambda _: "/dashboard?melding=afgesloten")

    @router.post("/dashboard/conversations/{conversation_id}/referral")
    def referral(request: Request, person: CsrfPerson, conversation_id: str,
                 entry_id: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            if not entry_id:
                raise FormProblem("Kies een dienst uit het aanbod.")
            _desk(request).ask_referral(conversation_id, person, entry_id)

        return act(request, person, run, lambda _: conversation_url(conversation_id, "verwijzing"))

    @router.post("/dashboard/conversations/{conversation_id}/acknowledge")
    def acknowledge(request: Request, person: CsrfPerson, conversation_id: str) -> Response:
        return act(request, person,
                   lambda: _desk(request).acknowledge_alert(conversation_id, person),
                   lambda _: conversation_url(conversation_id, "gezien"))

    @router.post("/dashboard/conversations/{conversation_id}/coordinator")
    def hand_to_coordinator(request: Request, person: CsrfPerson, conversation_id: str,
                            coordinator: Annotated[str, Form()] = "") -> Response:
        """Acute, waiting for a professional while none is present: to the coordinator on duty."""
        def run() -> None:
            if not coordinator:
                raise FormProblem("Kies een coördinator.")
            _desk(request).hand_to_coordinator(conversation_id, person, coordinator)

        return act(request, person, run, lambda _: "/dashboard?melding=coordinator")

    @router.post("/dashboard/conversations/{conversation_id}/block")
    def block(request: Request, person: CoordinatorCsrf, conversation_id: str,
              reason: Annotated[str, Form()] = "", days: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            body = reason.strip()
            if not body:
                raise FormProblem("Schrijf waarom je deze afzender blokkeert.")
            try:
                count = int(days)
            except ValueError:
                raise FormProblem("Vul het aantal dagen in als getal.") from None
            if not 1 <= count <= MAX_BLOCK_DAYS:
                raise FormProblem(f"Kies tussen 1 en {MAX_BLOCK_DAYS} dagen.")
            _desk(request).block(conversation_id, person, body[:MAX_NOTE_CHARS], count)

        return act(request, person, run, lambda _: "/dashboard?melding=geblokkeerd")

    # Coordinators: standard texts and blocks ---------------------------------------------------

    @router.get("/dashboard/texts", response_class=HTMLResponse)
    def texts_page(request: Request, person: Coordinator) -> Response:
        return page(request, person, "dashboard/texts.html",
                    {"texts": _desk(request).standard_texts()})

    @router.post("/dashboard/texts")
    def add_text(request: Request, person: CoordinatorCsrf,
                 title: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "") -> Response:
        def run() -> None:
            if not title.strip() or not body.strip():
                raise FormProblem("Vul een titel en een tekst in.")
            if len(title.strip()) > 80:
                raise FormProblem("De titel mag hoogstens 80 tekens zijn.")
            if len(body.strip()) > MAX_REPLY_CHARS:
                raise FormProblem(f"De tekst mag hoogstens {MAX_REPLY_CHARS} tekens zijn.")
            _desk(request).add_standard_text(person, title.strip(), body.strip())

        return act(request, person, run, lambda _: "/dashboard/texts?melding=tekst_toegevoegd")

    @router.post("/dashboard/texts/{text_id}/remove")
    def remove_text(request: Request, person: CoordinatorCsrf, text_id: str) -> Response:
        return act(request, person,
                   lambda: _desk(request).remove_standard_text(person, text_id),
                   lambda _: "/dashboard/texts?melding=tekst_verwijderd")

    @router.get("/dashboard/blocks", response_class=HTMLResponse)
    def blocks_page(request: Request, person: Coordinator) -> Response:
        try:
            blocks = _desk(request).blocks(person)
        except DeskError as error:
            return refusal(request, person, refusal_status(error), refusal_text(error))
        return page(request, person, "dashboard/blocks.html", {"blocks": blocks})

    @router.post("/dashboard/blocks/{block_id}/lift")
    def lift_block(request: Request, person: CoordinatorCsrf, block_id: str) -> Response:
        return act(request, person, lambda: _desk(request).lift_block(block_id, person),
                   lambda _: "/dashboard/blocks?melding=opgeheven")

    return router


def _local(url: str) -> str | None:
    """A Referer that points into the dashboard, as a path; anything else is dropped."""
    parts = urlsplit(url)
    if parts.path.startswith("/dashboard") and "//" not in parts.path:
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return None


async def _stream(client: Any, desk: Any, person: Person, interval: float,
                  prefix: str) -> AsyncIterator[str]:
    """The event stream of one dashboard tab. Ends when the client goes (the task is cancelled)."""
    inbox: asyncio.Queue[events.Event] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        async for event in events.subscribe(client, prefix=prefix):
            if visible_to(event, person):
                # A tab that does not read drops events; it refreshes on its own anyway.
                with contextlib.suppress(asyncio.QueueFull):
                    inbox.put_nowait(event)

    async def heartbeat() -> None:
        try:
            await run_in_threadpool(desk.heartbeat, person)
        except DeskError:
            pass
        # The stream goes on; the idle check is a safety net only.
        except Exception as error:  # noqa: BLE001 - a failed heartbeat never ends the stream
            logger.warning("dashboard: heartbeat failed: %s", type(error).__name__)

    task = asyncio.create_task(pump())
    try:
        yield "retry: 3000\n: verbonden\n\n"
        await heartbeat()
        while True:
            if task.done():  # subscribe() keeps reconnecting; ending means something is wrong
                logger.warning("dashboard: event subscription ended")
                return
            try:
                event = await asyncio.wait_for(inbox.get(), timeout=interval)
            except TimeoutError:
                yield ": ping\n\n"
                await heartbeat()
                continue
            yield f"data: {event.to_json()}\n\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
