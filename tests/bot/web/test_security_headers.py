"""Security headers on every response, no inline code in any page, API docs off in production,
and X-Forwarded-* believed only from a trusted proxy (for the Secure cookie flag and HSTS)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.config import Environment, Settings
from bot.triage.engine import Triage
from bot.web.app import WEB_DIR, Services, build_services, create_app
from tests.channels.conftest import run_async

PAGES = ["/chat", "/login", "/static/chat.js", "/static/dashboard.css", "/health", "/nowhere"]


@pytest.fixture
def services(settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(settings, triage=triage)
    yield built
    run_async(built.close)


@contextmanager
def app_client(settings: Settings, services: Services, *, peer: str = "testclient",
               base_url: str = "http://testserver", **changes: Any) -> Iterator[TestClient]:
    changed = settings.model_copy(update=changes)
    with TestClient(create_app(changed, services), base_url=base_url,
                    client=(peer, 40000), follow_redirects=False) as client:
        yield client


def csp_of(response: Any) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
            for part in (p.strip() for p in policy.split(";"))}


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_headers(settings: Settings, services: Services,
                                            path: str) -> None:
    with app_client(settings, services) as client:
        response = client.get(path)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = csp_of(response)
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # plain http


def test_the_quick_exit_site_may_receive_the_no_javascript_form(
        settings: Settings, services: Services) -> None:
    with app_client(settings, services, quick_exit_url="https://nos.nl/weer") as client:
        assert csp_of(client.get("/chat"))["form-action"] == "'self' https://nos.nl"
    with app_client(settings, services, quick_exit_url="/weer") as client:
        assert csp_of(client.get("/chat"))["form-action"] == "'self'"


def test_no_page_holds_inline_code() -> None:
    """What the policy forbids is not in any template: no inline script or style, no style
    attribute, no on...= handler, no javascript: link."""
    for template in sorted((WEB_DIR / "templates").rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        name = template.name
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), name
        assert "<style" not in text, name
        assert not re.search(r"\sstyle\s*=", text), name
        assert not re.search(r"\son[a-z]+\s*=", text), name
        assert "javascript:" not in text, name


def test_hsts_and_secure_cookies_over_https(settings: Settings, services: Services) -> None:
    with app_client(settings, services, base_url="https://testserver") as client:
        for path in ("/chat", "/login"):
            response = client.get(path)
            assert response.headers["strict-transport-security"].startswith("max-age=")
            cookies = response.headers.get_list("set-cookie")
            assert cookies and all(re.search(r";\s*secure\b", c, re.IGNORECASE) for c in cookies), cookies


def test_https_from_a_trusted_proxy_counts(settings: Settings, services: Services) -> None:
    """Behind a TLS proxy: PUBLIC_BASE_URL may say http, the cookies are Secure anyway."""
    with app_client(settings, services, peer="10.1.2.3", forwarded_allow_ips="10.1.2.0/24",
                    public_base_url="http://127.0.0.1:8000") as client:
        for path in ("/chat", "/login"):
            response = client.get(path, headers={"X-Forwarded-Proto": "https",
                                                 "X-Forwarded-For": "203.0.113.9"})
            assert "strict-transport-security" in response.headers
            cookies = response.headers.get_list("set-cookie")
            assert cookies and all(re.search(r";\s*secure\b", c, re.IGNORECASE) for c in cookies)


def test_forwarded_headers_from_anyone_else_are_ignored(settings: Settings,
                                                        services: Services) -> None:
    with app_client(settings, services, peer="198.51.100.4") as client:
        response = client.get("/chat", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in response.headers
        cookies = response.headers.get_list("set-cookie")
        assert cookies and not any(re.search(r";\s*secure\b", c, re.IGNORECASE) for c in cookies)


def test_api_docs_only_outside_production(settings: Settings, services: Services) -> None:
    with app_client(settings, services) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 200
    with app_client(settings, services, env=Environment.production) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404
        assert client.get("/chat").status_code == 200
