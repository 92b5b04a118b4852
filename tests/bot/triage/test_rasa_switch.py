"""The app starts before Rasa (docker compose no longer waits for it): triage uses the embedded
model while the Rasa server refuses connections and switches to Rasa from its first answer, with
RASA_TOKEN sent as `?token=` and never written to a log. A real HTTP server on a real port."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from bot.config import NLUBackendName, Settings
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.triage.types import Theme

PAYLOAD = (Path(__file__).parents[2] / "payloads" / "rasa_parse_money.json").read_bytes()
TOKEN = secrets.token_urlsafe(32)


class _TokenRasa(BaseHTTPRequestHandler):
    """Answers /model/parse like Rasa 3.6 started with `--auth-token TOKEN`: 401 without it."""

    tokens_seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        token = parse_qs(parts.query).get("token", [None])[0]
        type(self).tokens_seen.append(token)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if parts.path != "/model/parse" or token != TOKEN:
            body = json.dumps({"status": "failure", "reason": "NotAuthenticated"}).encode()
            self.send_response(401)
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A Rasa stand-in that is started later, on a port chosen now (nothing listens until then)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.handler = type("Handler", (_TokenRasa,), {"tokens_seen": []})
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def later_rasa() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.stop()


def _triage(settings: Settings, model: EmbeddedModel, url: str, token: str | None) -> Triage:
    changed = settings.model_copy(update={
        "nlu_backend": NLUBackendName.rasa, "rasa_url": url, "rasa_timeout": 2.0,
        "rasa_token": SecretStr(token) if token else None})
    return Triage.from_settings(changed, model=model)


def test_embedded_while_rasa_refuses_then_rasa_from_its_first_answer(
        settings: Settings, embedded_model: EmbeddedModel, later_rasa: _Server,
        caplog: pytest.LogCaptureFixture) -> None:
    triage = _triage(settings, embedded_model, later_rasa.url, TOKEN)
    with caplog.at_level(logging.DEBUG):
        while_down = [triage.run("ik kan de huur niet betalen") for _ in range(3)]
        assert [r.backend for r in while_down] == ["embedded"] * 3
        assert while_down[0].theme is Theme.money  # the parent is answered meanwhile
        assert later_rasa.handler.tokens_seen == []  # nothing listened: refused
        later_rasa.start()
        after = triage.run("ik kan de huur niet betalen")
        again = triage.run("ik kan de huur niet betalen")
    assert after.backend == again.backend == "rasa"
    assert (after.theme, after.confidence) == (Theme.money, 0.9412)  # Rasa's own answer
    assert later_rasa.handler.tokens_seen == [TOKEN, TOKEN]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("falls back" in m for m in messages) == 1
    assert sum("answers again" in m for m in messages) == 1
    # httpx logs every request URL at INFO: the token is replaced, the request still shows.
    assert any("/model/parse" in m and "token=<hidden>" in m for m in messages)
    assert TOKEN not in caplog.text and "huur" not in caplog.text


def test_a_wrong_token_is_refused_by_rasa_and_triage_falls_back(
        settings: Settings, embedded_model: EmbeddedModel, later_rasa: _Server) -> None:
    later_rasa.start()
    wrong = _triage(settings, embedded_model, later_rasa.url, secrets.token_urlsafe(32))
    assert wrong.run("mijn baby slaapt zo slecht").backend == "embedded"
    without = _triage(settings, embedded_model, later_rasa.url, None)
    assert without.run("mijn baby slaapt zo slecht").backend == "embedded"
    assert later_rasa.handler.tokens_seen[-1] is None  # no token sent when none is set
    right = _triage(settings, embedded_model, later_rasa.url, TOKEN)
    assert right.run("ik kan de huur niet betalen").backend == "rasa"
