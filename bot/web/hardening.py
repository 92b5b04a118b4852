"""Bad input gets a clear error and loses nothing; no error answer or log line repeats it
(issue 12). Installed on the app by bot.web.app.create_app.

- A JSON body with a lone surrogate ("\\ud83d", half an emoji from a broken client; JSON allows
  the escape, Python and pydantic do not take the character) has it replaced by U+FFFD before
  the route sees it, the way bot.channels.base.clean_text does for every channel: the message
  is kept and answered, not refused.
- Request-validation errors (not JSON, a NaN where a string belongs, a field too long) are
  answered 422 with where and what went wrong, without pydantic's `input` (the parent's words;
  also a lone surrogate or NaN in it made FastAPI's own answer crash with a 500 that logged it).
  A body that is not UTF-8 gets FastAPI's 400.
- InvalidInput (a provider id the column cannot hold, raised by InboundMessage) is a 400.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.base import InvalidInput, clean_text

logger = logging.getLogger(__name__)

# Bodies up to this size are checked for lone surrogates; bigger ones pass as they are (the
# routes have their own limits).
MAX_CHECKED_BYTES = 2_000_000
# "\ud800".."\udfff" as a JSON escape, or encoded as UTF-8 bytes (which json accepts).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value) if _has_surrogate(value) else value
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def clean_json_body(body: bytes) -> bytes:
    """The body with every lone surrogate in its strings replaced by U+FFFD; unchanged when it
    has none, or is not JSON (then the route's own parsing answers 400/422)."""
    if not (_SURROGATE_ESCAPE.search(body) or _SURROGATE_BYTES.search(body)):
        return body
    try:
        data = json.loads(body.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return body
    try:
        return json.dumps(_clean(data), ensure_ascii=True).encode("ascii")
    except (ValueError, RecursionError):
        return body


def _wants_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI reads a body without a content type as JSON


class JSONTextMiddleware:
    """Pure ASGI: reads a JSON request body (up to MAX_CHECKED_BYTES), cleans lone surrogates,
    and hands the route the (possibly cleaned) body; anything else passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") \
                or not _wants_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        pending: list[Message] = []
        while more and size <= MAX_CHECKED_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)  # a disconnect: handed on after what was read
                more = False
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if not more and not pending:
            cleaned = clean_json_body(body)
            if cleaned is not body:
                body = cleaned
                scope = dict(scope)
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
                scope["headers"].append((b"content-length", str(len(body)).encode("ascii")))
        first: list[Message] = [{"type": "http.request", "body": body, "more_body": more},
                                *pending]

        async def replay() -> Message:
            if first:
                return first.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _problem(error: dict[str, Any]) -> dict[str, Any]:
    loc = [part if isinstance(part, int) else clean_text(str(part))[:100]
           for part in error.get("loc", ())]
    return {"loc": loc, "type": str(error.get("type", "")),
            "msg": clean_text(str(error.get("msg", "")))[:300]}


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 with where and what (never the input); a body that is not JSON says so."""
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    detail = [_problem(e) for e in errors]
    logger.info("request to %s refused: %s", request.url.path,
                ", ".join(sorted({d["type"] for d in detail})) or "invalid")
    return JSONResponse({"detail": detail}, status_code=422)


async def invalid_input(request: Request, error: Exception) -> JSONResponse:
    logger.info("request to %s refused: %s", request.url.path, error)
    return JSONResponse({"detail": str(error)}, status_code=400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_middleware(JSONTextMiddleware)
