"""A fake Telegram Bot API: a real HTTP server on 127.0.0.1 (port 0, in a thread) that answers
the methods we use in Telegram's own shapes ({"ok": true, "result": ...} and
{"ok": false, "error_code": ..., "description": ...}) and records what it was asked.

Like the real API it takes parameters as a query string, form data or JSON, refuses a wrong
token with 401, and refuses getUpdates with 409 while a webhook is set.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

BOT_USER = {
    "id": 7012345678,
    "is_bot": True,
    "first_name": "Oudertelefoon",
    "username": "oudertelefoon_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
    "can_connect_to_business": False,
    "has_main_web_app": False,
}

# What the real API answers in each failure mode.
FAILURES: dict[str, tuple[int, Any]] = {
    "down": (502, ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                  "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>"
                  "\r\n</body>\r\n</html>\r\n")),
    "server_error": (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}),
    "flood": (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                    "parameters": {"retry_after": 3}}),
    "blocked": (403, {"ok": False, "error_code": 403,
                      "description": "Forbidden: bot was blocked by the user"}),
    "chat_not_found": (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
    "unauthorized": (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    "drop": (0, None),  # the connection is closed without an answer
}


@dataclass
class _Failure:
    kind: str
    times: int
    after: int
    method: str


@dataclass
class FakeTelegram:
    token: str = "123456:test-token_abc"
    sent: list[tuple[str, str]] = field(default_factory=list)  # (chat_id, text) of sendMessage
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (method, params)
    webhook: dict[str, Any] | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)  # waiting for getUpdates

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._failures: list[_Failure] = []
        self._message_id = 100
        self._closing = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # control -----------------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What TELEGRAM_API_BASE is set to."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, times: int, kind: str = "down", *, after: int = 0, method: str = "sendMessage") -> None:
        """Answer the next `times` calls of `method` (after `after` good ones) with a failure."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}")
        with self._lock:
            self._failures.append(_Failure(kind, times, after, method))

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (long polls waiting for one answer at once)."""
        with self._lock:
            self.updates.append(update)
            self._lock.notify_all()

    def methods(self) -> list[str]:
        with self._lock:
            return [method for method, _ in self.calls]

    def wait_for_sent(self, count: int, timeout: float = 30.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} sent message(s), got {len(self.sent)}")
                self._lock.wait(left)
            return list(self.sent)

    # the API -----------------------------------------------------------------------------------

    def _failure_for(self, method: str) -> str | None:
        for failure in self._failures:
            if failure.method != method or failure.times <= 0:
                continue
            if failure.after > 0:
                failure.after -= 1
                return None
            failure.times -= 1
            return failure.kind
        return None

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.calls.append((method, params))
            if token != self.token:
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            failure = self._failure_for(method)
            if failure is not None:
                return FAILURES[failure]
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return handler(params)

    def _api_getMe(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"ok": True, "result": BOT_USER}

    def _api_sendMessage(self, params: dict[str, Any]) -> tuple[int, Any]:
        chat_id, text = str(params.get("chat_id", "")), params.get("text")
        if not chat_id:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"}
        if not isinstance(text, str) or not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        with self._lock:
            self._message_id += 1
            message_id = self._message_id
            self.sent.append((chat_id, text))
            self._lock.notify_all()
        return 200, {"ok": True, "result": {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": {"id": int(chat_id), "first_name": "Ouder", "type": "private"},
            "date": int(time.time()),
            "text": text,
        }}

    def _api_setWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        url = params.get("url", "")
        if url and not str(url).startswith("https://"):
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"}
        with self._lock:
            self.webhook = dict(params) if url else None
        return 200, {"ok": True, "result": True,
                     "description": "Webhook was set" if url else "Webhook was deleted"}

    def _api_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            existed, self.webhook = self.webhook is not None, None
        return 200, {"ok": True, "result": True,
                     "description": "Webhook was deleted" if existed else "Webhook is already deleted"}

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            webhook, pending = self.webhook, len(self.updates)
        result: dict[str, Any] = {"url": "", "has_custom_certificate": False,
                                  "pending_update_count": pending}
        if webhook is not None:
            result.update({"url": webhook["url"], "max_connections": 40, "ip_address": "203.0.113.7"})
            if webhook.get("allowed_updates"):
                result["allowed_updates"] = webhook["allowed_updates"]
        return 200, {"ok": True, "result": result}

    def _api_getUpdates(self, params: dict[str, Any]) -> tuple[int, Any]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 50.0)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self.webhook is not None:
                return 409, {"ok": False, "error_code": 409, "description":
                             "Conflict: can't use getUpdates method while webhook is active; "
                             "use deleteWebhook to delete the webhook first"}
            if offset:  # confirmed: forgotten, as Telegram does
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self._closing:
                ready = [u for u in self.updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return 200, {"ok": True, "result": ready}
                self._lock.wait(left)
        return 200, {"ok": True, "result": []}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeTelegram
    server_version = "nginx/1.18.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a long poll the client gave up on

    def _params(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        params: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json" and raw:
            params.update(json.loads(raw))
        elif raw:
            for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
                # Form values that are arrays or objects are JSON-serialised, as Telegram expects.
                if value[:1] in ("[", "{"):
                    try:
                        params[key] = json.loads(value)
                        continue
                    except json.JSONDecodeError:
                        pass
                params[key] = value
        return params

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        status, body = self.owner.answer(parts[0][3:], parts[1], self._params())
        if status == 0:  # "drop": close without an answer
            self.close_connection = True
            self.connection.close()
            return
        self._reply(status, body)

    def _reply(self, status: int, body: Any) -> None:
        if isinstance(body, str):
            data, kind = body.encode("utf-8"), "text/html"
        else:
            data, kind = json.dumps(body).encode("utf-8"), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _dispatch
    do_POST = _dispatch
