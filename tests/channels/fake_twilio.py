"""A fake Twilio for tests: the REST API as a real local HTTP server, signed webhooks, and the
recorded webhook payloads in tests/payloads/twilio/.

FakeTwilio answers POST /2010-04-01/Accounts/<sid>/Messages.json the way Twilio does (basic auth,
201 with the message resource, Twilio's error JSON), records what it was asked to send, and can
be told to fail the next N calls (503, or 400 with a Twilio error code). It refuses what Twilio
refuses: a body over 1600 characters (21617), an SMS/WhatsApp mix of From and To (21910).

TwilioLine drives our app the way Twilio does: signed form posts to the messaging webhook for a
parent's number, and signed status callbacks for what the fake "delivered".
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from fastapi.testclient import TestClient
from httpx import Response
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from bot.config import Settings

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "twilio"

# The account of the recorded payloads.
ACCOUNT_SID = "ACf3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8"
AUTH_TOKEN = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
SMS_FROM = "+3197010201234"
WHATSAPP_FROM = "+31201234567"
PUBLIC_BASE_URL = "https://hulp.oudertelefoon.example"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")
_CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Calls"
                    r"(?:/(?P<call>CA[0-9a-f]{32}))?\.json$")


def payload(name: str, **fields: str) -> dict[str, str]:
    """A recorded webhook payload (form fields, Twilio's names), with some fields replaced."""
    data: dict[str, str] = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    data.update(fields)
    return data


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN,
         algorithm: str | None = None) -> str:
    """X-Twilio-Signature as Twilio computes it (HMAC-SHA1 unless `algorithm` says otherwise)."""
    return str(RequestValidator(token).compute_signature(url, params, algorithm))


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def twilio_settings(settings: Settings, fake: FakeTwilio, **update: Any) -> Settings:
    """The test settings with Twilio switched on and pointed at the fake."""
    values: dict[str, Any] = {
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_sms_from": SMS_FROM,
        "twilio_whatsapp_from": WHATSAPP_FROM,
        "twilio_api_base": fake.base_url,
    }
    values.update(update)
    return settings.model_copy(update=values)


@dataclass(frozen=True)
class SentMessage:
    """One message the fake accepted, as Twilio's API received it."""

    sid: str
    to: str
    from_: str
    body: str | None
    content_sid: str | None
    status_callback: str | None
    params: dict[str, str]


@dataclass(frozen=True)
class CallRequest:
    """One request to the Calls API: "create" (POST Calls.json, a new outbound call) or "update"
    (POST Calls/<sid>.json, e.g. a redirect of a live call to a new TwiML Url)."""

    kind: str
    call_sid: str
    params: dict[str, str]


@dataclass
class _Failure:
    skip: int  # calls that still succeed before the failures start
    remaining: int
    status: int
    code: int | None


@dataclass
class FakeTwilio:
    """Twilio's Messages API on 127.0.0.1, port chosen by the OS."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sent: list[SentMessage] = field(default_factory=list)
    calls: int = 0  # every POST to Messages.json, failed or not
    call_requests: list[CallRequest] = field(default_factory=list)  # the Calls API, accepted
    call_failure: tuple[int, int] | None = None  # (HTTP status, Twilio code) of the next Calls POST
    _failure: _Failure | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                status, body = fake._answer(self.path, self.headers.get("Authorization", ""), raw)
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the access log would print to stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use FakeTwilio as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int, status: int = 503, code: int | None = None, *, after: int = 0) -> None:
        """The next `count` sends (after `after` good ones) fail with `status` and, for a 4xx,
        Twilio error `code` (e.g. 21610 unsubscribed; default 21211 invalid number)."""
        with self._lock:
            self._failure = _Failure(after, count, status, code)

    def to(self, address: str) -> list[SentMessage]:
        """What was sent to one address ("+316..." or "whatsapp:+316...")."""
        with self._lock:
            return [m for m in self.sent if m.to == address]

    # The API --------------------------------------------------------------------------------

    def _answer(self, path: str, authorization: str, raw: str) -> tuple[int, dict[str, Any]]:
        calls = _CALLS.match(urlsplit(path).path)
        match = _MESSAGES.match(urlsplit(path).path) or calls
        if match is None:
            return 404, _error(20404, "The requested resource was not found", 404)
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != f"Basic {expected}" or match["sid"] != self.account_sid:
            return 401, _error(20003, "Authenticate", 401)
        params = dict(parse_qsl(raw, keep_blank_values=True))
        if calls is not None:
            return self._call(calls["call"], params)
        with self._lock:
            self.calls += 1
            failure = self._failure
            if failure is not None and failure.skip > 0:
                failure.skip -= 1
            elif failure is not None and failure.remaining > 0:
                failure.remaining -= 1
                if failure.status >= 500:
                    return failure.status, _error(20500, "Internal Server Error", failure.status)
                code = failure.code or 21211
                message = _ERRORS.get(code, "Error").format(To=params.get("To", ""))
                return failure.status, _error(code, message, failure.status)
        to, sender = params.get("To", ""), params.get("From", "")
        body, content_sid = params.get("Body"), params.get("ContentSid")
        if not to:
            return 400, _error(21604, "A 'To' phone number is required.", 400)
        if not sender:
            return 400, _error(21603, "A 'From' phone number is required.", 400)
        if to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
            return 400, _error(21910, "Invalid From and To pair. From and To should be of the same "
                                      "channel", 400)
        if not body and not content_sid:
            return 400, _error(21602, "Message body is required.", 400)
        if body is not None and len(body) > 1600:
            return 400, _error(21617, "The concatenated message body exceeds the 1600 character "
                                      "limit.", 400)
        sid = new_sid()
        message = SentMessage(sid=sid, to=to, from_=sender, body=body, content_sid=content_sid,
                              status_callback=params.get("StatusCallback"), params=params)
        with self._lock:
            self.sent.append(message)
        now = format_datetime(datetime.now(UTC))
        return 201, {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }


    def _call(self, call_sid: str | None, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Calls.json (create: To, From, Url required) or Calls/<sid>.json (update: Url, or
        Status=completed/canceled), answered with Twilio's call resource."""
        with self._lock:
            failure, self.call_failure = self.call_failure, None
        if failure is not None:
            status, code = failure
            return status, _error(code, _CALL_ERRORS.get(code, "Error").format(
                To=params.get("To", "")), status)
        url = params.get("Url") or params.get("Twiml")
        if call_sid is None:
            if not params.get("To"):
                return 400, _error(21201, "No 'To' number is specified", 400)
            if not params.get("From"):
                return 400, _error(21213, "No 'From' number is specified", 400)
            if not url:
                return 400, _error(21205, "Url parameter is required.", 400)
            sid, kind, status, direction = new_sid("CA"), "create", "queued", "outbound-api"
            to, sender = params["To"], params["From"]
        else:
            if not url and params.get("Status") not in ("completed", "canceled"):
                return 400, _error(20001, "Missing required parameter Url, Twiml or Status", 400)
            sid, kind, status, direction = call_sid, "update", "in-progress", "inbound"
            to, sender = "", ""
        with self._lock:
            self.call_requests.append(CallRequest(kind=kind, call_sid=sid, params=params))
        now = format_datetime(datetime.now(UTC))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}"
        return (201 if kind == "create" else 200), {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": direction,
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": sender,
            "from_formatted": sender,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": status,
            "subresource_uris": {"notifications": f"{uri}/Notifications.json",
                                 "recordings": f"{uri}/Recordings.json"},
            "to": to,
            "to_formatted": to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }


_CALL_ERRORS = {
    21220: "Unable to update record. Call is not in-progress. Cannot redirect.",
    21211: "Invalid 'To' Phone Number: {To}",
}

_ERRORS = {
    21211: "The 'To' number {To} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
}


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


# Driving our app as Twilio does ---------------------------------------------------------------


class TwilioLine:
    """Signed webhooks into our app, for one fake Twilio account."""

    def __init__(self, client: TestClient, fake: FakeTwilio, base_url: str = PUBLIC_BASE_URL,
                 token: str = AUTH_TOKEN) -> None:
        self.client = client
        self.fake = fake
        self.base_url = base_url
        self.token = token
        self._counter = itertools.count(1)

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None,
             signed_url: str | None = None, unsigned: bool = False) -> Response:
        """A form post to `path`, signed over PUBLIC_BASE_URL + path unless told otherwise."""
        url = signed_url or self.base_url + path
        headers = {} if unsigned else {
            "X-Twilio-Signature": signature if signature is not None else sign(url, params, self.token)
        }
        return self.client.post(path, data=params, headers=headers)

    def inbound(self, number: str, text: str = "", *, whatsapp: bool = False,
                sid: str | None = None, template: str | None = None, **fields: str) -> dict[str, str]:
        """The form Twilio posts for a parent's message (a recorded payload, refilled)."""
        name = template or ("whatsapp_text" if whatsapp else "sms_text")
        data = payload(name)
        sid = sid or new_sid("MM" if data["MessageSid"].startswith("MM") else "SM")
        prefix = "whatsapp:" if whatsapp else ""
        data.update({
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid,
            "AccountSid": self.fake.account_sid,
            "From": prefix + number,
            "To": prefix + (WHATSAPP_FROM if whatsapp else SMS_FROM),
        })
        if template is None or text:
            data["Body"] = text
        if "WaId" in data:
            data["WaId"] = number.lstrip("+")
            data["ChannelMetadata"] = json.dumps({"type": "whatsapp", "data": {"context": {
                "ProfileName": data.get("ProfileName", ""), "WaId": number.lstrip("+")}}})
        data.update(fields)
        return data

    def says(self, number: str, text: str = "", *, whatsapp: bool = False, **kwargs: Any) -> Response:
        """A parent's message arrives; Twilio expects the empty TwiML back."""
        data = self.inbound(number, text, whatsapp=whatsapp, **kwargs)
        response = self.post("/webhooks/twilio/messaging", data)
        assert response.status_code == 200, response.text
        assert response.text == EMPTY_TWIML
        assert response.headers["content-type"].startswith("text/xml")
        return response

    def report(self, message: SentMessage, status: str) -> Response:
        """Twilio's status callback for a message the fake accepted, to its StatusCallback URL."""
        assert message.status_callback, "the message was sent without a StatusCallback"
        whatsapp = message.to.startswith("whatsapp:")
        data = payload("status_whatsapp_read" if whatsapp else "status_sms_delivered")
        data.update({"MessageSid": message.sid, "SmsSid": message.sid, "MessageStatus": status,
                     "SmsStatus": status, "To": message.to, "From": message.from_,
                     "AccountSid": self.fake.account_sid})
        data.pop("ChannelToAddress", None)
        path = urlsplit(message.status_callback).path
        return self.post(path, data, signed_url=message.status_callback)

    def received(self, address: str) -> list[str]:
        """The texts one parent's phone received, in order (template sends show as ContentSid)."""
        return [m.body if m.body is not None else f"[template {m.content_sid}]"
                for m in self.fake.to(address)]


def iter_payloads() -> Iterator[tuple[str, dict[str, str]]]:
    for path in sorted(PAYLOADS.glob("*.json")):
        yield path.stem, json.loads(path.read_text(encoding="utf-8"))
