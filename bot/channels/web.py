"""The web chat: anonymous, no login, one conversation per browser (an opaque token cookie).

GET /chat serves the page; the page posts messages to POST /chat/api/messages and polls
GET /chat/api/messages for new ones, so replies appear without reloading.

The cookie is a session cookie (gone when the browser closes) unless the parent ticks "onthoud dit
gesprek op dit apparaat" (POST /chat/api/remember): then it lasts RETENTION_DAYS. "Snel weg"
(POST /chat/api/exit from the page, POST /chat/exit without JavaScript) clears the cookie and
gives the conversation a new random pseudonym, so nothing links this browser to it any more; the
conversation itself stays, for the person who helps (it is not deleted: "stop en wis" does that).

Tokens are made by the server only: random, signed with SECRET_KEY (HMAC). A token the server did
not sign (made up, or from before a key change) is refused with 401; the page then asks
POST /chat/api/session for a new one (a new, empty chat) and sends its message again.

Limits (Redis, fixed windows; off while Redis is away): messages per minute per chat
(WEB_CHAT_MESSAGES_PER_MINUTE) and per address (WEB_CHAT_ADDRESS_MESSAGES_PER_MINUTE), and new
chats per address per 10 minutes (WEB_CHAT_NEW_CHATS_PER_ADDRESS). Over a limit: 429 with
Retry-After; nothing is stored and the page keeps the message and sends it again after the wait.
The address is the client's, or the one a trusted proxy gives (FORWARDED_ALLOW_IPS).
A message's client_id counts per chat: another browser re-using it is not a duplicate.
"""


import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Cookie, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.channels.base import MAX_STORED_CHARS, InboundMessage
from bot.storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    User,
    aware,
    utcnow,
)
from bot.storage.redis import hit

logger = logging.getLogger(__name__)

CLOSED_VISIBLE = timedelta(hours=1)

COOKIE = "ot_chat"
KEEP_COOKIE = "ot_chat_keep"  # "1": the parent ticked "onthoud dit gesprek op dit apparaat"
# "<32 random characters>.<32 characters of HMAC-SHA256 over them, keyed by SECRET_KEY>"
_TOKEN = re.compile(r"^([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{32})$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
NEW_CHAT_WINDOW_SECONDS = 600
MINUTE = 60
# What the API says when it refuses a token (the page asks for a new one).
NO_SESSION = "no valid chat session: POST /chat/api/session for a new one"


def _signature(secret: bytes, nonce: str) -> str:
    key = hmac.new(secret, b"web-chat-token", hashlib.sha256).digest()
    digest = hmac.new(key, nonce.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:32]


def new_token(secret: bytes) -> str:
    """A chat token, made and signed by the server."""
    nonce = secrets.token_urlsafe(24)  # 32 characters
    return f"{nonce}.{_signature(secret, nonce)}"


def valid_token(secret: bytes, token: str | None) -> bool:
    """Signed by this server (with this SECRET_KEY)."""
    match = _TOKEN.match(token or "")
    if match is None:
        return False
    return hmac.compare_digest(match.group(2), _signature(secret, match.group(1)))


def limit_key(prefix: str, *parts: str) -> str:
    """A Redis key of the web chat's limits, under REDIS_KEY_PREFIX (like every key)."""
    return ":".join((prefix, "webchat", *parts))


def _keyed(secret: bytes, purpose: str, value: str) -> str:
    """What Redis and SQL keep of a token or an address: a keyed hash, never the value."""
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _client_address(request: Request) -> str:
    # After the proxy middleware: the client's own address, or the one a trusted proxy gave.
    return request.client.host if request.client else "unknown"


def _secure(request: Request, services: Any) -> bool:
    return services.settings.secure_cookies or request.url.scheme == "https"


class ChatMessageIn(BaseModel):
    text: str = Field(max_length=MAX_STORED_CHARS * 5)
    client_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class RememberIn(BaseModel):
    remember: bool


def build_router(templates: Jinja2Templates, get_services: Any) -> APIRouter:
    router = APIRouter()
    ServicesDep = Annotated[Any, Depends(get_services)]

    def token_of(services: Any, ot_chat: str | None) -> str:
        if not valid_token(services.settings.secret, ot_chat):
            raise HTTPException(status_code=401, detail=NO_SESSION)
        return ot_chat or ""

    def set_token(request: Request, response: Response, services: Any, token: str, *,
                  remember: bool) -> None:
        """The chat cookie: a session cookie, or RETENTION_DAYS long when the parent asked."""
        secure = _secure(request, services)
        max_age = services.settings.retention_days * 86400 if remember else None
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure,
                            max_age=max_age)
        if remember:
            response.set_cookie(KEEP_COOKIE, "1", httponly=True, samesite="strict", secure=secure,
                                max_age=max_age)
        else:
            response.delete_cookie(KEEP_COOKIE, httponly=True, samesite="strict", secure=secure)

    def from_this_site(request: Request) -> None:
        """Snel weg only from our own page: another site cannot make a browser forget its chat."""
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise HTTPException(status_code=403, detail="Snel weg works only from the chat page")

    def forget(request: Request, response: Response, services: Any) -> None:
        """Snel weg: this browser no longer leads to its conversation."""
        secure = _secure(request, services)
        for name in (COOKIE, KEEP_COOKIE):
            response.delete_cookie(name, httponly=True, samesite="strict", secure=secure)
        response.headers["Cache-Control"] = "no-store"

    @router.get("/chat", response_class=HTMLResponse)
    def chat_page(request: Request, services: ServicesDep,
                  ot_chat: Annotated[str | None, Cookie()] = None,
                  ot_chat_keep: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
        """The web chat page."""
        valid = valid_token(services.settings.secret, ot_chat)
        remember = valid and ot_chat_keep == "1"
        page = templates.TemplateResponse(request, "chat.html", {
            "retention_days": services.settings.retention_days,
            "remember": remember,
            "quick_exit_url": services.settings.quick_exit_url,
        })
        # Not kept in the browser's cache: after "Snel weg" nothing of the page comes back.
        page.headers["Cache-Control"] = "no-store"
        if not valid:
            set_token(request, page, services, new_token(services.settings.secret), remember=False)
        elif not remember:
            # Unticked (or a cookie from before the box existed): a session cookie again.
            set_token(request, page, services, ot_chat or "", remember=False)
        return page

    @router.post("/chat/api/session")
    def new_session(request: Request, response: Response, services: ServicesDep,
                    ot_chat: Annotated[str | None, Cookie()] = None) -> dict[str, bool]:
        """A token for a page whose token was refused: the same one while it is valid, else a
        new one (a new, empty chat). Only from our own page."""
        from_this_site(request)
        response.headers["Cache-Control"] = "no-store"
        if valid_token(services.settings.secret, ot_chat):
            return {"new": False}
        set_token(request, response, services, new_token(services.settings.secret),
                  remember=False)
        return {"new": True}

    @router.post("/chat/api/remember")
    def remember_chat(request: Request, body: RememberIn, response: Response,
                      services: ServicesDep,
                      ot_chat: Annotated[str | None, Cookie()] = None) -> dict[str, bool]:
        """The box "onthoud dit gesprek op dit apparaat": a lasting cookie, or a session one."""
        set_token(request, response, services, token_of(services, ot_chat),
                  remember=body.remember)
        return {"remember": body.remember}

    @router.post("/chat/api/exit", status_code=204)
    async def exit_chat(request: Request, services: ServicesDep,
                        ot_chat: Annotated[str | None, Cookie()] = None) -> Response:
        """Snel weg, from the page (which has already moved on to the neutral site)."""
        from_this_site(request)
        if ot_chat is not None and valid_token(services.settings.secret, ot_chat):
            await run_in_threadpool(_unlink, services, ot_chat)
        response = Response(status_code=204)
        forget(request, response, services)
        return response

    @router.post("/chat/exit", include_in_schema=False)
    async def exit_chat_form(request: Request, services: ServicesDep,
                             ot_chat: Annotated[str | None, Cookie()] = None) -> RedirectResponse:
        """Snel weg without JavaScript: the same, then on to the neutral site."""
        from_this_site(request)
        if ot_chat is not None and valid_token(services.settings.secret, ot_chat):
            await run_in_threadpool(_unlink, services, ot_chat)
        response = RedirectResponse(services.settings.quick_exit_url, status_code=303)
        forget(request, response, services)
        return response

    @router.post("/chat/api/messages", status_code=202, response_model=None)
    async def post_message(request: Request, body: ChatMessageIn, response: Response,
                           services: ServicesDep,
                           ot_chat: Annotated[str | None, Cookie()] = None,
                           ) -> dict[str, Any] | JSONResponse:
        """A parent's message from the web chat."""
        token = token_of(services, ot_chat)
        pseudonym = services.vault.pseudonym("web", token)
        wait = await run_in_threadpool(_over_limit, services, token, pseudonym,
                                       _client_address(request))
        if wait is not None:
            return JSONResponse({"detail": "too many messages: send it again after the wait",
                                 "retry_after": wait}, status_code=429,
                                headers={"Retry-After": str(wait), "Cache-Control": "no-store"})
        inbound = InboundMessage(
            channel=Channel.web,
            pseudonym=pseudonym,
            address_encrypted=services.vault.encrypt(token),
            # Per sender: the page's id of this message, within this chat only.
            provider_message_id="w:" + _keyed(services.settings.secret, "web-message",
                                              f"{token}|{body.client_id}"),
            text=body.text,
            received_at=utcnow(),
        )
        received = await run_in_threadpool(services.pipeline.process, inbound)
        answer: dict[str, Any] = {"accepted": True, "duplicate": received.duplicate}
        if received.conversation_id and not received.duplicate:
            gone = await run_in_threadpool(_deleted_reply, services.factory, received)
            if gone is not None:
                # Deleted by this message ("stop en wis", or "ja" to the question): the page can
                # no longer read the reply from the conversation, so it comes back here.
                answer.update(deleted=True, notice=gone)
                # Nothing left to remember.
                set_token(request, response, services, token, remember=False)
        return answer

    @router.get("/chat/api/messages")
    async def get_messages(services: ServicesDep, after: int = 0,
                           ot_chat: Annotated[str | None, Cookie()] = None) -> dict[str, Any]:
        """Messages of this browser's open conversation, after position `after`."""
        token = token_of(services, ot_chat)
        pseudonym = services.vault.pseudonym("web", token)
        return await run_in_threadpool(_messages, services.factory, pseudonym, after)

    return router


def _over_limit(services: Any, token: str, pseudonym: str, address: str) -> int | None:
    """Seconds to wait when this message is over a limit, else None (and it counts)."""
    settings, client = services.settings, services.redis
    secret, prefix = settings.secret, settings.redis_prefix
    chat = _keyed(secret, "web-chat", token)
    place = _keyed(secret, "web-address", address)
    for key, limit, window in (
        (limit_key(prefix, "msg", "chat", chat), settings.web_chat_per_chat, MINUTE),
        (limit_key(prefix, "msg", "addr", place), settings.web_chat_per_address, MINUTE),
    ):
        wait = hit(client, key, limit, window)
        if wait is not None:
            logger.info("web chat: message over the per-%s limit", key.split(":")[-2])
            return wait
    if settings.web_chat_new_per_address <= 0:
        return None
    # A chat's first message counts as a new chat for its address (the flood: many tokens).
    known = limit_key(prefix, "known", chat)
    try:
        if client.exists(known):
            return None
    except redis.RedisError:
        return None  # the limiter is away; the message goes through
    if _has_conversation(services.factory, pseudonym):
        _remember(client, known, settings)
        return None
    wait = hit(client, limit_key(prefix, "new", place), settings.web_chat_new_per_address,
               NEW_CHAT_WINDOW_SECONDS)
    if wait is not None:
        logger.info("web chat: new chat over the per-address limit")
        return wait
    _remember(client, known, settings)
    return None


def _remember(client: Any, key: str, settings: Any) -> None:
    try:
        client.set(key, 1, ex=settings.retention_days * 86400)
    except redis.RedisError:
        pass


def _has_conversation(factory: Any, pseudonym: str) -> bool:
    with factory() as session:
        return session.scalar(select(Conversation.id).where(
            Conversation.channel == Channel.web, Conversation.pseudonym == pseudonym).limit(1)
        ) is not None


def _unlink(services: Any, token: str) -> None:
    """The web conversations of this token get a new random pseudonym and address, which no
    browser holds: an old copy of the cookie no longer leads to them. Nothing else changes."""
    pseudonym = services.vault.pseudonym("web", token)
    with services.factory() as session, session.begin():
        conversations = session.scalars(select(Conversation).where(
            Conversation.channel == Channel.web, Conversation.pseudonym == pseudonym)).all()
        if not conversations:
            return
        nobody = secrets.token_urlsafe(32)
        for conversation in conversations:
            conversation.pseudonym = services.vault.pseudonym("web", nobody)
            conversation.address_encrypted = services.vault.encrypt(nobody)


def _deleted_reply(factory: Any, received: Any) -> list[str] | None:
    """The texts sent in reply to a message that deleted its conversation; None if it still
    exists."""
    with factory() as session:
        if session.get(Conversation, received.conversation_id) is not None:
            return None
        return list(session.scalars(
            select(Outbox.text).where(Outbox.reply_to == received.message_id).order_by(Outbox.seq)
        ).all())


def _messages(factory: Any, pseudonym: str, after: int) -> dict[str, Any]:
    """The parent's current conversation; one that a person closed stays readable for an hour, so
    the parent sees the last words (a new message starts a new conversation)."""
    with factory() as session:
        conversation = session.scalar(
            select(Conversation)
            .where(Conversation.channel == Channel.web, Conversation.pseudonym == pseudonym)
            .order_by(Conversation.created_at.desc())
            .limit(1)
        )
        closed = conversation is not None and conversation.status is ConversationStatus.closed
        if closed and utcnow() - (aware(conversation.closed_at) or utcnow()) > CLOSED_VISIBLE:
            conversation = None
        if conversation is None:
            return {"messages": [], "next": 0, "closed": False}
        rows = session.scalars(
            select(Message).where(Message.conversation_id == conversation.id)
            .order_by(Message.created_at, Message.direction)
        ).all()
        names = dict(session.execute(
            select(User.id, User.display_name).where(User.id.in_({m.user_id for m in rows if m.user_id}))
        ).all())
    items = []
    for i, m in enumerate(rows):
        item = {"n": i + 1, "from": m.author.value, "text": m.text or "", "at": m.created_at.isoformat()}
        if m.author is Author.person and m.user_id in names:
            item["name"] = names[m.user_id]  # the name the person chose for the dashboard
        items.append(item)
    # "c" tells the page that this is another conversation than the one it shows (opaque).
    marker = hashlib.sha256(conversation.id.encode()).hexdigest()[:12]
    return {"messages": items[after:], "next": len(items), "closed": closed, "c": marker}
