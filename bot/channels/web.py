"""The web chat: anonymous, no login, one conversation per browser (an opaque token cookie).

GET /chat serves the page; the page posts messages to POST /chat/api/messages and polls
GET /chat/api/messages for new ones, so replies appear without reloading.
"""


import hashlib
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bot.channels.base import MAX_STORED_CHARS, InboundMessage
from datetime import timedelta

from bot.storage.models import (
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    User,
    aware,
    utcnow,
)

CLOSED_VISIBLE = timedelta(hours=1)

COOKIE = "ot_chat"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class ChatMessageIn(BaseModel):
    text: str = Field(max_length=MAX_STORED_CHARS * 5)
    client_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def build_router(templates: Jinja2Templates, get_services: Any) -> APIRouter:
    router = APIRouter()
    ServicesDep = Annotated[Any, Depends(get_services)]

    def token_of(ot_chat: str | None) -> str:
        if not ot_chat or not _TOKEN.match(ot_chat):
            raise HTTPException(status_code=401, detail="no chat session: open /chat first")
        return ot_chat

    @router.get("/chat", response_class=HTMLResponse)
    def chat_page(request: Request, services: ServicesDep,
                  ot_chat: Annotated[str | None, Cookie()] = None) -> HTMLResponse:
        """The web chat page."""
        page = templates.TemplateResponse(request, "chat.html", {
            "retention_days": services.settings.retention_days,
        })
        if not ot_chat or not _TOKEN.match(ot_chat):
            secure = services.settings.public_base_url.startswith("https://")
            page.set_cookie(COOKIE, secrets.token_urlsafe(32), httponly=True, samesite="strict",
                            secure=secure, max_age=services.settings.retention_days * 86400)
        return page

    @router.post("/chat/api/messages", status_code=202)
    async def post_message(body: ChatMessageIn, services: ServicesDep,
                           ot_chat: Annotated[str | None, Cookie()] = None) -> dict[str, Any]:
        """A parent's message from the web chat."""
        token = token_of(ot_chat)
        inbound = InboundMessage(
            channel=Channel.web,
            pseudonym=services.vault.pseudonym("web", token),
            address_encrypted=services.vault.encrypt(token),
            provider_message_id=body.client_id,
            text=body.text,
            received_at=utcnow(),
        )
        received = await run_in_threadpool(services.pipeline.process, inbound)
        return {"accepted": True, "duplicate": received.duplicate}

    @router.get("/chat/api/messages")
    async def get_messages(services: ServicesDep, after: int = 0,
                           ot_chat: Annotated[str | None, Cookie()] = None) -> dict[str, Any]:
        """Messages of this browser's open conversation, after position `after`."""
        token = token_of(ot_chat)
        pseudonym = services.vault.pseudonym("web", token)
        return await run_in_threadpool(_messages, services.factory, pseudonym, after)

    return router


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
        if closed and utcnow() - (aware(conversation.closed_at) or utcnow()) > CLOSED_VISIBLE:  # type: ignore[union-attr]
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
