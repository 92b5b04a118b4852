"""Dashboard login over HTTP: the session cookie, the login form, roles and CSRF as FastAPI
dependencies, and the coordinators' user admin pages.

The accounts themselves (password hashing, users, sessions, the login limiter) are
`bot.accounts`; this module only puts them behind cookies and forms.

- The cookie holds the session's random token (see bot.accounts.sessions); its max-age slides
  with the session's expiry.
- CSRF: every POST of a logged-in person carries the session's own token (form field
  `csrf_token` or header `X-CSRF-Token`). The login form, before there is a session, uses a
  signed double-submit cookie.
- Nothing here logs a password, a token, a username that failed, or an address.
"""

import hmac
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.accounts.sessions import (
    LOGIN_WINDOW_SECONDS,
    MAX_USERNAME_CHARS,
    TOKEN_SHAPE,
    LoginFailed,
    LoginRateLimited,
)

# Re-exported for the routes beside this one (dashboard, app) that take them from here.
from bot.accounts.sessions import Auth as Auth  # noqa: PLC0414
from bot.accounts.sessions import Person as Person  # noqa: PLC0414
from bot.accounts.users import (
    MIN_PASSWORD_CHARS,
    ROLE_NAMES,
    UserError,
    add_user,
    audit,
    generate_password,
    normalize_phone,
    parse_languages,
    phone_hint,
    set_active,
    set_phone,
)
from bot.config import Settings
from bot.storage import db
from bot.storage.crypto import AddressVault
from bot.storage.models import Role, User, aware

logger = logging.getLogger(__name__)

COOKIE = "ot_session"
LOGIN_CSRF_COOKIE = "ot_login_csrf"
MSG_FORM_EXPIRED = "Het formulier was verlopen. Probeer het nog een keer."
MSG_FORBIDDEN = "Deze pagina is er niet voor jouw rol."
MSG_CSRF = ("Dit formulier is verlopen of niet vanaf het dashboard verstuurd. "
            "Laad de pagina opnieuw en probeer het nog een keer.")
MSG_LOGGED_OUT = "Je bent niet (meer) ingelogd."


# FastAPI plumbing -----------------------------------------------------------------------------


class NotLoggedIn(Exception):
    """No valid session: answered with a redirect to /login (pages) or 401 (everything else)."""


class Forbidden(Exception):
    """403 with a Dutch page (or JSON for scripts)."""

    def __init__(self, person: Person | None, message: str) -> None:
        super().__init__(message)
        self.person = person
        self.message = message


def get_auth(request: Request) -> Auth:
    auth: Auth = request.app.state.services.auth
    return auth


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _wants_page(request: Request) -> bool:
    """An ordinary browser navigation (not a script's fetch, not an event stream)."""
    if request.headers.get("x-requested-with", "").lower() == "fetch":
        return False
    accept = request.headers.get("accept", "")
    return "text/event-stream" not in accept and "application/json" not in accept


def current_person(request: Request) -> Person:
    """The logged-in person, or NotLoggedIn (see `install`)."""
    found = get_auth(request).resolve(request.cookies.get(COOKIE))
    if found is None:
        raise NotLoggedIn()
    person, slid = found
    if slid:  # the session's expiry moved on: move the cookie's with it (see _SlidingCookie)
        request.state.ot_session_refresh = request.cookies.get(COOKIE)
    return person


CurrentPerson = Annotated[Person, Depends(current_person)]


async def csrf_protect(request: Request, person: CurrentPerson) -> Person:
    """For a POST (any unsafe method): the form field `csrf_token` or the header `X-CSRF-Token`
    must be this session's token; else 403."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return person
    sent: object = request.headers.get("x-csrf-token")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode("utf-8"), person.csrf_token.encode("utf-8")):
        logger.warning("csrf check failed for user %s on %s", person.user_id, request.url.path)
        raise Forbidden(person, MSG_CSRF)
    return person


CsrfPerson = Annotated[Person, Depends(csrf_protect)]


def require_role(*roles: Role, csrf: bool = False) -> Callable[..., Person]:
    """A dependency: the logged-in person when their role is one of `roles`, else 403.
    With csrf=True the CSRF token is checked too (for POST routes)."""
    allowed = frozenset(roles)

    if csrf:
        def checked_csrf(person: CsrfPerson) -> Person:
            if person.role not in allowed:
                raise Forbidden(person, MSG_FORBIDDEN)
            return person
        return checked_csrf

    def checked(person: CurrentPerson) -> Person:
        if person.role not in allowed:
            raise Forbidden(person, MSG_FORBIDDEN)
        return person
    return checked


Coordinator = Annotated[Person, Depends(require_role(Role.coordinator))]
CoordinatorCsrf = Annotated[Person, Depends(require_role(Role.coordinator, csrf=True))]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: `target` only when it is a local dashboard path."""
    default = "/dashboard"
    if not target or len(target) > 2000 or "\\" in target:
        return default
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    if not (parts.path == "/dashboard" or parts.path.startswith("/dashboard/")):
        return default
    if "/../" in parts.path + "/" or "/./" in parts.path + "/":
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


# Templates for the error pages: the app's own, once build_router has seen it.
_templates: dict[str, Jinja2Templates] = {}
_ERROR_PAGE = """{% extends "dashboard/base.html" %}
{% block title %}{{ heading }}{% endblock %}
{% block main %}
<section class="notice-page" aria-labelledby="error-heading">
  <h1 id="error-heading">{{ heading }}</h1>
  <p role="alert">{{ message }}</p>
  <p><a href="{{ link }}">{{ link_text }}</a></p>
</section>
{% endblock %}"""


def _templates_of() -> Jinja2Templates:
    if "app" not in _templates:
        _templates["app"] = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
    return _templates["app"]


def _error_page(request: Request, person: Person | None, status: int, heading: str, message: str,
                link: str, link_text: str) -> Response:
    templates = _templates_of()
    try:
        html = templates.env.from_string(_ERROR_PAGE).render(
            request=request, person=person, csrf_token=person.csrf_token if person else "",
            heading=heading, message=message, link=link, link_text=link_text)
    except Exception as error:  # noqa: BLE001 - an error page must not fail: plain text then
        logger.warning("error page template failed: %s", type(error).__name__)
        return Response(message, status_code=status, media_type="text/plain; charset=utf-8")
    return HTMLResponse(html, status_code=status)


def _not_logged_in(request: Request, exc: Exception) -> Response:
    if request.method in ("GET", "HEAD") and _wants_page(request):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303)
    if "text/html" in request.headers.get("accept", "") and _wants_page(request):
        return _error_page(request, None, 401, "Niet ingelogd", MSG_LOGGED_OUT, "/login",
                           "Naar de inlogpagina")
    return JSONResponse({"detail": MSG_LOGGED_OUT}, status_code=401)


def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    if _wants_page(request):
        return _error_page(request, exc.person, 403, "Geen toegang", exc.message, "/dashboard",
                           "Terug naar de wachtrij")
    return JSONResponse({"detail": exc.message}, status_code=403)


class _SlidingCookie:
    """Re-sends the session cookie with a fresh max-age when the session's expiry slid, so the
    browser keeps it as long as the server does. Plain ASGI: works for streamed responses too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            token = state.get("ot_session_refresh")
            if message["type"] == "http.response.start" and token:
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"set-cookie" and v.startswith(COOKIE.encode() + b"=")
                           for k, v in headers):
                    services = scope["app"].state.services
                    cookie = _cookie_header(services.settings, token)
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _cookie_header(settings: Settings, token: str) -> str:
    response = Response()
    _set_session_cookie(response, settings, token)
    return response.headers["set-cookie"]


def _set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=settings.session_hours * 3600, path="/",
                        httponly=True, samesite="strict", secure=settings.secure_cookies)


def install(app: FastAPI) -> None:
    """Register the answers to NotLoggedIn (redirect or 401) and Forbidden (403), and the
    middleware that keeps the session cookie's max-age sliding."""
    app.add_exception_handler(NotLoggedIn, _not_logged_in)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_middleware(_SlidingCookie)


def build_router(templates: Jinja2Templates) -> APIRouter:
    """/login, /logout and the coordinators' user admin under /dashboard/users."""
    _templates["app"] = templates
    router = APIRouter()

    def login_page(request: Request, auth: Auth, *, status: int = 200, error: str | None = None,
                   username: str = "", next_path: str = "") -> Response:
        nonce = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not nonce or not TOKEN_SHAPE.match(nonce):
            nonce = secrets.token_urlsafe(32)
        page = templates.TemplateResponse(request, "login.html", {
            "person": None, "csrf_token": auth.login_form_token(nonce), "error": error,
            "username": username, "next": next_path,
        }, status_code=status, headers={"Cache-Control": "no-store"})
        page.set_cookie(LOGIN_CSRF_COOKIE, nonce, max_age=3600, path="/login", httponly=True,
                        samesite="strict", secure=auth.settings.secure_cookies)
        return page

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        """The login page."""
        auth = get_auth(request)
        if auth.person(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(request, auth, next_path=safe_next(next) if next else "")

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, username: Annotated[str, Form()] = "",
              password: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
              next: Annotated[str, Form()] = "") -> Response:
        """Log in; on success a session cookie and a redirect to the dashboard."""
        auth = get_auth(request)
        shown_next = safe_next(next) if next else ""
        if not auth.login_form_ok(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
            return login_page(request, auth, status=403, error=MSG_FORM_EXPIRED,
                              username=username[:MAX_USERNAME_CHARS], next_path=shown_next)
        try:
            person, token = auth.login(username, password, _client_ip(request))
        except LoginRateLimited as error:
            page = login_page(request, auth, status=429, error=str(error),
                              username=username[:MAX_USERNAME_CHARS], next_path=shown_next)
            page.headers["Retry-After"] = str(LOGIN_WINDOW_SECONDS)
            return page
        except LoginFailed as error:
            return login_page(request, auth, status=401, error=str(error),
                              username=username[:MAX_USERNAME_CHARS], next_path=shown_next)
        old = request.cookies.get(COOKIE)
        if old:
            auth.logout(old)  # a new login never continues an old session
        response = RedirectResponse(safe_next(next), status_code=303)
        _set_session_cookie(response, auth.settings, token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", httponly=True, samesite="strict",
                               secure=auth.settings.secure_cookies)
        logger.debug("session opened for user %s", person.user_id)
        return response

    @router.post("/logout")
    def logout(request: Request, person: CsrfPerson) -> Response:
        """Log out: the session ends and the cookie goes, and so does the person's shift (their
        claimed conversations go back to the queue): nobody is "in dienst" after leaving."""
        auth = get_auth(request)
        auth.logout(request.cookies.get(COOKIE, ""))
        desk = getattr(request.app.state.services, "desk", None)
        if desk is not None:
            returned = desk.stop_shift(person.user_id, reason="logout")
            if returned:
                logger.info("logout of user %s: %s claimed conversation(s) back to the queue",
                            person.user_id, returned)
        request.state.ot_session_refresh = None
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=auth.settings.secure_cookies)
        return response

    # user admin (coordinators) ----------------------------------------------------------------

    def users_page(request: Request, person: Person, *, status: int = 200,
                   error: str | None = None, notice: str | None = None,
                   created: dict[str, str] | None = None,
                   form: dict[str, str] | None = None) -> Response:
        auth = get_auth(request)
        with auth.factory() as session:
            users = list(session.scalars(select(User).order_by(User.active.desc(), User.role,
                                                               User.username)))
        zone = ZoneInfo(auth.settings.timezone)
        last_login = {user.id: moment.astimezone(zone) for user in users
                      if (moment := aware(user.last_login_at)) is not None}
        vault = AddressVault(auth.settings.secret)
        phones = {user.id: hint for user in users if (hint := phone_hint(user, vault)) is not None}
        return templates.TemplateResponse(request, "dashboard/users.html", {
            "person": person, "csrf_token": person.csrf_token, "users": users,
            "last_login": last_login, "phones": phones,
            "roles": [(role.value, ROLE_NAMES[role]) for role in Role],
            "role_names": {role.value: name for role, name in ROLE_NAMES.items()},
            "error": error, "notice": notice, "created": created, "form": form or {},
            "min_password": MIN_PASSWORD_CHARS,
        }, status_code=status, headers={"Cache-Control": "no-store"})

    @router.get("/dashboard/users", response_class=HTMLResponse)
    def users(request: Request, person: Coordinator) -> Response:
        """Coordinators: the list of users, and the form to add one."""
        notice = None
        done = request.query_params.get("gedaan")
        if done == "gedeactiveerd":
            notice = "De gebruiker is gedeactiveerd; hun sessies zijn beëindigd."
        elif done == "geactiveerd":
            notice = "De gebruiker kan weer inloggen."
        elif done == "telefoon":
            notice = "Het telefoonnummer voor gesprekken is opgeslagen."
        elif done == "telefoon-gewist":
            notice = "Het telefoonnummer voor gesprekken is gewist."
        return users_page(request, person, notice=notice)

    @router.post("/dashboard/users", response_class=HTMLResponse)
    def users_add(request: Request, person: CoordinatorCsrf,
                  username: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
                  role: Annotated[str, Form()] = "", languages: Annotated[str, Form()] = "nl",
                  password: Annotated[str, Form()] = "",
                  phone: Annotated[str, Form()] = "") -> Response:
        """Coordinators: add a user (an empty password: one is generated and shown once)."""
        auth = get_auth(request)
        form = {"username": username[:MAX_USERNAME_CHARS], "display_name": display_name[:64],
                "role": role, "languages": languages[:100]}  # the phone is never shown back
        generated = not password
        secret = generate_password() if generated else password
        try:
            try:
                chosen = Role(role)
            except ValueError:
                raise UserError("Kies een rol.") from None
            number = normalize_phone(phone[:64]) if phone.strip() else None
            with db.transaction(auth.factory) as session:
                user = add_user(session, username=username, display_name=display_name,
                                role=chosen, password=secret, languages=parse_languages(languages))
                audit(session, "user_added", person.user_id, user=user.id, role=chosen.value)
                if number is not None:
                    set_phone(session, user.id, number, AddressVault(auth.settings.secret))
                    audit(session, "user_phone_set", person.user_id, user=user.id)
        except UserError as error:
            return users_page(request, person, status=400, error=str(error), form=form)
        created = {"username": user.username, "display_name": user.display_name,
                   "role": ROLE_NAMES[user.role]}
        if generated:
            created["password"] = secret
        return users_page(request, person, created=created)

    @router.post("/dashboard/users/{user_id}/deactivate")
    def users_deactivate(request: Request, user_id: str, person: CoordinatorCsrf) -> Response:
        """Coordinators: deactivate a user; their sessions end, their shift and claims too."""
        auth = get_auth(request)
        if user_id == person.user_id:
            return users_page(request, person, status=400,
                              error="Je kunt jezelf niet deactiveren.")
        try:
            with db.transaction(auth.factory) as session:
                set_active(session, user_id, False)
                audit(session, "user_deactivated", person.user_id, user=user_id)
        except UserError as error:
            return users_page(request, person, status=404, error=str(error))
        auth.end_sessions(user_id)
        desk = getattr(request.app.state.services, "desk", None)
        if desk is not None:
            returned = desk.stop_shift(user_id, reason="deactivated")
            logger.info("deactivated user %s: %s claimed conversation(s) back to the queue",
                        user_id, returned)
        return RedirectResponse("/dashboard/users?gedaan=gedeactiveerd", status_code=303)

    @router.post("/dashboard/users/{user_id}/phone")
    def users_phone(request: Request, user_id: str, person: CoordinatorCsrf,
                    phone: Annotated[str, Form()] = "",
                    clear: Annotated[str, Form()] = "") -> Response:
        """Coordinators: set or clear a person's own number for calls (the telephone line dials
        it; stored encrypted, shown only by its last two digits)."""
        auth = get_auth(request)
        number = None if clear else phone[:64]
        try:
            if number is not None and not number.strip():
                raise UserError("Vul een telefoonnummer in, of kies Wissen.")
            with db.transaction(auth.factory) as session:
                set_phone(session, user_id, number, AddressVault(auth.settings.secret))
                audit(session, "user_phone_cleared" if number is None else "user_phone_set",
                      person.user_id, user=user_id)
        except UserError as error:
            return users_page(request, person, status=400, error=str(error))
        done = "telefoon-gewist" if number is None else "telefoon"
        return RedirectResponse(f"/dashboard/users?gedaan={done}", status_code=303)

    @router.post("/dashboard/users/{user_id}/activate")
    def users_activate(request: Request, user_id: str, person: CoordinatorCsrf) -> Response:
        """Coordinators: let a deactivated user log in again."""
        auth = get_auth(request)
        try:
            with db.transaction(auth.factory) as session:
                set_active(session, user_id, True)
                audit(session, "user_activated", person.user_id, user=user_id)
        except UserError as error:
            return users_page(request, person, status=404, error=str(error))
        return RedirectResponse("/dashboard/users?gedaan=geactiveerd", status_code=303)

    return router
