"""The `rasa` backend over real HTTP: a local stand-in server for the fallback paths, and the
real Rasa 3.6 server (RASA_TEST_URL, started by scripts/rasa-server in CI) for the real thing."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.config import NLUBackendName, Settings
from bot.triage.embedded import EmbeddedModel
from bot.triage.engine import Triage
from bot.triage.types import Risk, Route, Theme

PAYLOAD = (Path(__file__).parents[2] / "payloads" / "rasa_parse_money.json").read_bytes()


class _Rasa(BaseHTTPRequestHandler):
    mode = "ok"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        assert self.path == "/model/parse" and "text" in body
        if self.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        reply = PAYLOAD if self.mode == "ok" else b"<html>not json</html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rasa_stand_in() -> Iterator[tuple[str, type[_Rasa]]]:
    handler = type("Handler", (_Rasa,), {"mode": "ok"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rasa_triage(settings: Settings, model: EmbeddedModel, url: str, timeout: float = 2.0) -> Triage:
    rasa_settings = settings.model_copy(
        update={"nlu_backend": NLUBackendName.rasa, "rasa_url": url, "rasa_timeout": timeout}
    )
    return Triage.from_settings(rasa_settings, model=model)


def test_rasa_answer_is_used(settings: Settings, embedded_model: EmbeddedModel,
                             rasa_stand_in: tuple[str, type[_Rasa]]) -> None:
    url, _ = rasa_stand_in
    result = _rasa_triage(settings, embedded_model, url).run("ik kan de huur niet betalen")
    assert result.backend == "rasa"
    assert (result.theme, result.confidence) == (Theme.money, 0.9412)


def test_server_down_falls_back_and_logs_once(
    settings: Settings, embedded_model: EmbeddedModel, caplog: pytest.LogCaptureFixture
) -> None:
    triage = _rasa_triage(settings, embedded_model, f"http://127.0.0.1:{_free_port()}")
    with caplog.at_level(logging.WARNING, logger="bot.triage.rasa"):
        first = triage.run("ik kan de huur niet betalen")
        second = triage.run("ik wil niet meer wakker worden")
    assert first.backend == second.backend == "embedded"
    assert first.theme is Theme.money
    # Risk still works when Rasa is down.
    assert second.risk is Risk.acute and second.route is Route.emergency
    warnings = [r for r in caplog.records if "falls back" in r.getMessage()]
    assert len(warnings) == 1
    assert "huur" not in caplog.text and "wakker" not in caplog.text  # no parent text in logs


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_bad_answers_fall_back(settings: Settings, embedded_model: EmbeddedModel,
                               rasa_stand_in: tuple[str, type[_Rasa]], mode: str) -> None:
    url, handler = rasa_stand_in
    handler.mode = mode
    result = _rasa_triage(settings, embedded_model, url).run("mijn baby slaapt zo slecht")
    assert result.backend == "embedded"
    assert result.theme is Theme.baby_care


def test_slow_server_times_out_and_falls_back(settings: Settings, embedded_model: EmbeddedModel) -> None:
    # A socket that accepts connections but never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = _rasa_triage(settings, embedded_model, url, timeout=0.3).run("hoi")
        assert result.backend == "embedded" and result.intent == "greet"
    finally:
        listener.close()


RASA_TEST_URL = os.environ.get("RASA_TEST_URL")


@pytest.mark.rasa  # deselected, with the reason in the summary, without RASA_TEST_URL
def test_real_rasa_server(settings: Settings, embedded_model: EmbeddedModel) -> None:
    triage = _rasa_triage(settings, embedded_model, str(RASA_TEST_URL), timeout=10)
    result = triage.run("ik kan de huur deze maand niet betalen en de deurwaarder komt")
    assert result.backend == "rasa"
    assert result.theme in {Theme.money, Theme.housing}
    assert result.intent_ranking and result.intent_ranking[0][0] == result.intent
    acute = triage.run("ik wil niet meer wakker worden")
    assert acute.backend == "rasa" and acute.risk is Risk.acute
