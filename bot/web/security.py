"""What every response carries for safety, which proxies are believed, and a small rate limiter.

- Security headers on every HTTP response: a Content-Security-Policy that allows only this site's
  own scripts, styles, images and connections (no inline code: the pages load /static files), no
  framing (frame-ancestors 'none' and X-Frame-Options DENY), Referrer-Policy no-referrer,
  X-Content-Type-Options nosniff, and Strict-Transport-Security when the request came over https.
- Proxies: X-Forwarded-For and X-Forwarded-Proto are believed only from FORWARDED_ALLOW_IPS
  (uvicorn's ProxyHeadersMiddleware, the same variable and default as uvicorn: 127.0.0.1). From
  anyone else they are ignored, so a client cannot choose its own address for the rate limiters
  or pretend to be on https.
- Cookies: over https (directly, or from a trusted proxy that says so) every cookie is marked
  Secure, whatever PUBLIC_BASE_URL says.
- `hit`: a fixed-window counter in Redis for the web chat's limits.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bot.config import Settings

# The rate counter lives with Redis (storage); the web chat adapter still imports it from here.
from bot.storage.redis import hit as hit  # noqa: PLC0414

logger = logging.getLogger(__name__)

HSTS = "max-age=31536000"


def content_security_policy(settings: Settings) -> str:
    """Only our own files. The no-JavaScript "Snel weg" form is redirected to QUICK_EXIT_URL, and
    browsers check form-action on that redirect too, so its origin is allowed as a form target."""
    form_action = ["'self'"]
    exit_url = urlsplit(settings.quick_exit_url)
    if exit_url.scheme in ("http", "https") and exit_url.netloc:
        form_action.append(f"{exit_url.scheme}://{exit_url.netloc}")
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action " + " ".join(form_action),
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """Pure ASGI (streams such as the dashboard's live events pass through untouched)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(settings).encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((n, v) for n, v in self.headers if n not in present)
                if https:
                    if b"strict-transport-security" not in present:
                        headers.append((b"strict-transport-security", HSTS.encode()))
                    headers = [(n, _secure(v) if n.lower() == b"set-cookie" else v)
                               for n, v in headers]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secure(cookie: bytes) -> bytes:
    attributes = [part.strip().lower() for part in cookie.split(b";")[1:]]
    return cookie if b"secure" in attributes else cookie + b"; Secure"


def trusted_proxies(settings: Settings) -> list[str]:
    return [item.strip() for item in settings.forwarded_allow_ips.split(",") if item.strip()]


def install(app: FastAPI, settings: Settings) -> None:
    """The headers, and outside them the proxy handling (so they see the client's scheme)."""
    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies(settings))
