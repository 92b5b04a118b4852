"""The `rasa` NLU backend: a Rasa 3.6 server's `POST /model/parse`, over HTTP.

Nothing else in the project knows Rasa exists. When the server is down, slow or answers
nonsense, triage falls back to the embedded backend and says so once in the log (and once more
when Rasa is back), so a parent never waits on a broken server. Every message asks Rasa first, so
a server that is still training when the app starts (docker compose starts both at once) is used
from its first answer on, without a restart.

A server started with `--auth-token` (RASA_TOKEN) wants the token as `?token=` on every request:
Rasa 3.6 reads it from the query string only. httpx logs each request's URL at INFO, so its log
records have the token replaced before any handler sees them.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Protocol

import httpx

from bot.errors import TriageBackendError

logger = logging.getLogger(__name__)


class NLUBackend(Protocol):
    """Anything that answers in Rasa's `/model/parse` shape."""

    name: str

    def parse(self, text: str) -> dict[str, Any]: ...


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TriageBackendError("Rasa answered with something other than a JSON object")
    intent = body.get("intent")
    if not isinstance(intent, dict) or not isinstance(intent.get("name"), str):
        raise TriageBackendError("Rasa's answer has no intent name (is a model loaded?)")
    try:
        float(intent.get("confidence", 0.0))
    except (TypeError, ValueError):
        raise TriageBackendError("Rasa's answer has a non-numeric confidence") from None
    ranking = body.get("intent_ranking")
    if not isinstance(ranking, list):
        body["intent_ranking"] = [intent]
    body.setdefault("entities", [])
    return body


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']*")


class _HideToken(logging.Filter):
    """Replaces the value of a `token=` query parameter in httpx's request log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN_IN_QUERY.sub(r"\1<hidden>", message), ()
        return True


def _protect_logs() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _HideToken) for f in httpx_logger.filters):
        httpx_logger.addFilter(_HideToken())


class RasaBackend:
    """HTTP client for a Rasa server, with a bounded timeout and the server's auth token."""

    name = "rasa"

    def __init__(self, url: str, timeout: float, client: httpx.Client | None = None,
                 token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._params = {"token": token} if token else {}
        if token:
            _protect_logs()
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False)

    def parse(self, text: str) -> dict[str, Any]:
        try:
            response = self._client.post(f"{self.url}/model/parse", json={"text": text},
                                         params=self._params)
            response.raise_for_status()
            return _validate(response.json())
        except httpx.HTTPError as error:
            raise TriageBackendError(f"Rasa server at {self.url}: {type(error).__name__}") from None
        except ValueError:
            raise TriageBackendError(f"Rasa server at {self.url}: answer is not JSON") from None

    def close(self) -> None:
        self._client.close()


class FallbackBackend:
    """Try `primary`; on any backend error use `fallback`. Logs the switch once each way."""

    def __init__(self, primary: NLUBackend, fallback: NLUBackend) -> None:
        self.primary = primary
        self.fallback = fallback
        self._down = False
        self._lock = threading.Lock()
        self.name = primary.name

    def parse_with_name(self, text: str) -> tuple[dict[str, Any], str]:
        try:
            result = self.primary.parse(text)
        except TriageBackendError as error:
            with self._lock:
                if not self._down:
                    self._down = True
                    logger.warning("%s; triage falls back to the %s backend", error, self.fallback.name)
            return self.fallback.parse(text), self.fallback.name
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    logger.info("the %s backend answers again", self.primary.name)
        return result, self.primary.name

    def parse(self, text: str) -> dict[str, Any]:
        return self.parse_with_name(text)[0]
