"""No input costs a parent a message (issue 12): over 10,000 generated requests to every public
entry (the web chat API, Twilio's SMS/WhatsApp, status and voice webhooks signed the way Twilio
signs, the Telegram webhook with its secret header, /api/triage, the login form, the statistics
with odd query parameters), not one answer is a 5xx. Hypothesis generates them (derandomized:
the same requests on every run, so CI is reproducible), and every 5xx is collected with what
caused it, so a failure names them all at once.

Some of the requests are well-formed messages carrying odd text (NUL, lone surrogates, controls,
right-to-left text, emoji, 10,000 characters, empty): those must be stored (cleaned, see
bot.channels.base.clean_text) and answered. After all of it the service is healthy and a normal
message still gets its answer.

Cost: most requests are refused early (a bad signature, an invalid body), a few hundred go through
the whole pipeline; about a minute on PostgreSQL on 2 cores. FUZZ_SCALE=3 makes it three times as
long a run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.accounts.users import add_user
from bot.channels.base import clean_text
from bot.storage.models import Channel, Role
from bot.web.app import Services, create_app
from tests.channels.fake_twilio import ACCOUNT_SID, PUBLIC_BASE_URL, sign
from tests.channels.test_odd_characters import (  # noqa: F401 (fixtures)
    MESSAGING,
    ODD_TEXTS,
    TG_SECRET,
    Channels,
    answered,
    fakes,
    odd_services,
)

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
MIN_REQUESTS = 10_000
WELL_FORMED = 100
COORDINATOR_PASSWORD = "fuzz-coordinator-password-123"


def n(count: int) -> int:
    return max(1, int(count * SCALE))


def fuzz_settings(examples: int) -> Any:
    return hsettings(max_examples=examples, deadline=None, derandomize=True, database=None,
                     phases=[Phase.explicit, Phase.generate],
                     suppress_health_check=list(HealthCheck))


# Strategies ----------------------------------------------------------------------------------

ODD_CHARS = st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\x85", "\ud83d", "\udc00", "\u200f",
                             "\u202e", "\u200b", "\ufeff", "\uffff", "\n", "\t", "\r", "😢",
                             "👨‍👩‍👧", "ي", "ש", "é", "\u0301", " ", "\\", '"', "'", "<", "%"])
# Text as parents (and broken clients) write it: anything, biased to the odd.
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(ODD_CHARS, st.characters()), max_size=60).map("".join),
    st.lists(ODD_CHARS, max_size=12).map("".join),
    st.sampled_from([t for t, _ in ODD_TEXTS]),
    st.builds(lambda c, k: c * k, st.sampled_from(["a", "é", "😢", "\x00", "ab "]),
              st.sampled_from([1000, 5000, 10_000])),
)
# The same, as it can travel in a signed form (UTF-8: no lone surrogates).
_SURROGATES = re.compile("[\ud800-\udfff]")
FORM_TEXT = ODD_TEXT.map(lambda t: _SURROGATES.sub("", t))
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30),
                        st.floats(), ODD_TEXT)
JSON_VALUE = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)), max_leaves=12)


def dumps(value: Any) -> bytes:
    """JSON as a (careless) client writes it: NaN and Infinity included, surrogates as escapes."""
    return json.dumps(value, allow_nan=True).encode("ascii")


@st.composite
def mangled(draw: st.DrawFn, body: bytes) -> bytes:
    """A body cut off, with a byte changed, or with garbage around it."""
    how = draw(st.sampled_from(["cut", "flip", "wrap", "deep", "bigint", "same"]))
    if how == "cut" and body:
        return body[:draw(st.integers(0, len(body) - 1))]
    if how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
    if how == "wrap":
        return draw(st.binary(max_size=8)) + body + draw(st.binary(max_size=8))
    if how == "deep":
        depth = draw(st.sampled_from([100, 1000, 5000, 20_000]))
        return b"[" * depth + body + b"]" * depth
    if how == "bigint":
        return b'{"update_id": ' + b"9" * draw(st.sampled_from([20, 4300, 5000])) + b', "x": ' + (body or b"0") + b"}"
    return body


def raw_bodies(good: Callable[[Any], bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        JSON_VALUE.map(dumps),
        st.builds(good, ODD_TEXT).flatmap(mangled),
        st.builds(good, ODD_TEXT),
    )


VARIANTS = 5  # each example also sends this many byte-level mutations of its body


def variants(rnd: Any, body: bytes, count: int = VARIANTS) -> list[bytes]:
    """Cheap mutations of `body` (hypothesis draws the seed): cut, a byte changed or inserted
    (NUL, a UTF-8 lead byte, a quote), a part doubled. Generating them with hypothesis itself
    would cost more than sending them."""
    out = []
    for _ in range(count):
        b = bytearray(body or b"{}")
        how = rnd.randrange(4)
        at = rnd.randrange(len(b))
        if how == 0:
            del b[at:]
        elif how == 1:
            b[at] = rnd.choice([0, 0xED, 0xFF, 0x22, 0x5C, 0x80, rnd.randrange(256)])
        elif how == 2:
            b[at:at] = rnd.choice([b"\x00", b"\\u0000", b"\\ud83d", b"\xed\xa0\xbd", b"NaN", b"%00", b"[" * 50])
        else:
            b[at:at] = bytes(b[at:at + rnd.randrange(1, 64)])
        out.append(bytes(b))
    return out


CONTENT_TYPES = st.sampled_from(["application/json", "application/json", "text/plain", "",
                                 "application/x-www-form-urlencoded", "multipart/form-data",
                                 "application/json; charset=latin-1", "application/vnd.api+json"])


# The run -------------------------------------------------------------------------------------

@dataclass
class Run:
    client: TestClient
    services: Services
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    expected: list[tuple[Channel, str]] = field(default_factory=list)  # (channel, stored text)
    token: str = ""

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def record(self, entry: str, response: Any, what: Any) -> Any:
        self.statuses[f"{entry} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{entry} -> {response.status_code}: {repr(what)[:300]}")
        return response


@pytest.fixture
def run(odd_services: Services) -> Iterator[Run]:
    app = create_app(odd_services.settings, odd_services)
    with TestClient(app, base_url=PUBLIC_BASE_URL, raise_server_exceptions=False) as client:
        yield Run(client, odd_services)


def _twilio_post(run: Run, entry: str, path: str, form: dict[str, str], signed: bool,
                 query: str = "", rnd: Any = None) -> None:
    url = path + (f"?{query}" if query else "")
    headers = {"X-Twilio-Signature": sign(PUBLIC_BASE_URL + url, form) if signed else "x"}
    run.record(entry, run.client.post(url, data=form, headers=headers), form)
    if rnd is not None:  # the same signature over a changed body (Twilio would never send it)
        headers["content-type"] = "application/x-www-form-urlencoded"
        for body in variants(rnd, urlencode(form).encode("utf-8")):
            run.record(entry, run.client.post(url, content=body, headers=headers), body)


TWILIO_FIELDS = st.sampled_from(["Body", "MessageSid", "From", "To", "NumMedia", "MediaContentType0",
                                 "Latitude", "Longitude", "MessageType", "MessageStatus", "CallSid",
                                 "SpeechResult", "Digits", "Confidence", "CallStatus",
                                 "CallDuration", "DialCallStatus", "AccountSid", "WaId"])
SID = st.one_of(st.just("SM" + "0" * 32), st.text(max_size=10).map(lambda t: "SM" + t),
                st.sampled_from(["SM" + "a" * 200, "CA" + "b" * 100, "SM\x00abc", " ", ""]),
                FORM_TEXT)
NUMBER = st.one_of(st.sampled_from(["+31612345678", "whatsapp:+31612345678", "anonymous", "",
                                    "whatsapp:", "+" + "9" * 300, "+3161234\x005678"]), FORM_TEXT)


def fuzz_twilio_messaging(run: Run, examples: int) -> None:
    @fuzz_settings(examples)
    @given(fields=st.dictionaries(TWILIO_FIELDS, FORM_TEXT, max_size=6), sid=SID, sender=NUMBER,
           body=FORM_TEXT, signed=st.sampled_from([True, True, True, False]),
           ours=st.sampled_from([True, True, False]), status=st.booleans(), rnd=st.randoms())
    def check(fields: dict[str, str], sid: str, sender: str, body: str, signed: bool, ours: bool,
              status: bool, rnd: Any) -> None:
        form = {"MessageSid": sid, "From": sender, "Body": body, **fields,
                "AccountSid": ACCOUNT_SID if ours else fields.get("AccountSid", "AC0")}
        if status:
            form["MessageStatus"] = fields.get("MessageStatus", "delivered")
            _twilio_post(run, "twilio-status", "/webhooks/twilio/status", form, signed, rnd=rnd)
        else:
            _twilio_post(run, "twilio-messaging", MESSAGING, form, signed, rnd=rnd)

    check()


VOICE_PATHS = st.sampled_from(["/webhooks/twilio/voice", "/webhooks/twilio/voice/gather",
                               "/webhooks/twilio/voice/choice", "/webhooks/twilio/voice/whisper",
                               "/webhooks/twilio/voice/whisper/answer",
                               "/webhooks/twilio/voice/dial-status", "/webhooks/twilio/voice/wait",
                               "/webhooks/twilio/voice/status", "/webhooks/twilio/voice/connect",
                               "/webhooks/twilio/voice/callback"])
QUERY_KEYS = st.sampled_from(["lang", "attempt", "mode", "conversation", "entries", "queue",
                              "target", "user", "tried", "kind"])


def fuzz_twilio_voice(run: Run, examples: int) -> None:
    @fuzz_settings(examples)
    @given(path=VOICE_PATHS, fields=st.dictionaries(TWILIO_FIELDS, FORM_TEXT, max_size=6),
           sid=SID.map(lambda s: "CA" + s[2:] if s.startswith("SM") else s), caller=NUMBER,
           query=st.dictionaries(QUERY_KEYS, FORM_TEXT.map(lambda t: t[:300]), max_size=3),
           signed=st.sampled_from([True, True, True, False]), rnd=st.randoms(),
           status=st.sampled_from(["", "", "completed", "no-answer", "in-progress"]))
    def check(path: str, fields: dict[str, str], sid: str, caller: str, query: dict[str, str],
              signed: bool, rnd: Any, status: str) -> None:
        form = {"CallSid": sid, "From": caller, **fields, "AccountSid": ACCOUNT_SID}
        if status:
            form["CallStatus"] = status
        _twilio_post(run, "twilio-voice", path, form, signed, urlencode(query), rnd=rnd)

    check()


def telegram_update(text: Any) -> bytes:
    chat = next(_IDS)
    return dumps({"update_id": next(_IDS), "message": {
        "message_id": 1, "date": 1_700_000_000, "text": text,
        "chat": {"id": chat, "type": "private", "first_name": "O"}}})


_IDS = itertools.count(secrets.randbelow(10**12) + 10**9, 7)

UPDATE_SHAPES = st.fixed_dictionaries({
    "update_id": st.one_of(st.integers(), st.integers(min_value=2**63), JSON_SCALAR),
}, optional={
    "message": st.fixed_dictionaries({}, optional={
        "message_id": JSON_SCALAR, "date": JSON_SCALAR, "text": JSON_VALUE, "caption": JSON_VALUE,
        "chat": st.fixed_dictionaries({}, optional={
            "id": st.one_of(st.integers(), JSON_SCALAR),
            "type": st.sampled_from(["private", "group", "channel", "", "x"])}),
        "photo": JSON_VALUE, "sticker": JSON_VALUE, "location": JSON_VALUE}),
    "edited_message": JSON_VALUE,
    "my_chat_member": JSON_VALUE,
})


def fuzz_telegram(run: Run, examples: int) -> None:
    @fuzz_settings(examples)
    @given(body=st.one_of(raw_bodies(telegram_update), UPDATE_SHAPES.map(dumps)),
           secret=st.sampled_from([TG_SECRET, TG_SECRET, TG_SECRET, None, "", "wrong", TG_SECRET + "\x00"]),
           content_type=CONTENT_TYPES, rnd=st.randoms())
    def check(body: bytes, secret: str | None, content_type: str, rnd: Any) -> None:
        headers = {"content-type": content_type}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        for one in [body, *variants(rnd, body)]:
            run.record("telegram", run.client.post("/webhooks/telegram", content=one,
                                                   headers=headers), one)

    check()


def web_message(text: Any) -> bytes:
    return dumps({"text": text, "client_id": uuid.uuid4().hex})


def fuzz_web_chat(run: Run, examples: int) -> None:
    @fuzz_settings(examples)
    @given(body=raw_bodies(web_message), content_type=CONTENT_TYPES,
           cookie=st.sampled_from(["ours", "ours", "ours", "none", "junk", "odd"]),
           what=st.sampled_from(["post", "post", "post", "post", "get", "remember", "exit"]),
           after=st.one_of(st.integers(), FORM_TEXT.map(lambda t: t[:300])), rnd=st.randoms())
    def check(body: bytes, content_type: str, cookie: str, what: str, after: Any,
              rnd: Any) -> None:
        value = {"ours": run.token, "none": "", "junk": "x" * 40, "odd": "\x00\u202e;=,"}[cookie]
        headers: dict[str, Any] = {"content-type": content_type}
        if value:
            headers["cookie"] = ("ot_chat=" + value).encode("utf-8")
        if what == "get":
            response = run.client.get("/chat/api/messages", params={"after": after},
                                      headers={"cookie": headers.get("cookie", b"")})
        else:
            path = {"post": "/chat/api/messages", "remember": "/chat/api/remember",
                    "exit": "/chat/api/exit"}[what]
            if what == "post":
                for one in variants(rnd, body):
                    run.record("web-post", run.client.post(path, content=one, headers=headers), one)
            response = run.client.post(path, content=body, headers=headers)
            if what == "exit":
                run.token = new_chat(run)
        run.record(f"web-{what}", response, body)

    check()


def fuzz_triage(run: Run, examples: int) -> None:
    @fuzz_settings(examples)
    @given(body=raw_bodies(lambda t: dumps({"text": t})), content_type=CONTENT_TYPES,
           rnd=st.randoms())
    def check(body: bytes, content_type: str, rnd: Any) -> None:
        for one in [body, *variants(rnd, body)]:
            run.record("triage", run.client.post("/api/triage", content=one,
                                                 headers={"content-type": content_type}), one)

    check()


def login_form_token(run: Run) -> str:
    page = run.client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def fuzz_login(run: Run, examples: int) -> None:
    token = login_form_token(run)

    @fuzz_settings(examples)
    @given(username=FORM_TEXT, password=FORM_TEXT,
           csrf=st.sampled_from(["ours", "none", "junk", "junk", "none", "junk"]),
           nxt=FORM_TEXT, extra=st.dictionaries(FORM_TEXT, FORM_TEXT, max_size=2))
    def check(username: str, password: str, csrf: str, nxt: str, extra: dict[str, str]) -> None:
        form = {**extra, "username": username, "password": password, "next": nxt,
                "csrf_token": {"ours": token, "none": "", "junk": "\x00" * 43}[csrf]}
        run.record("login", run.client.post("/login", data=form), form)

    check()


STATS_PARAMS = st.fixed_dictionaries({}, optional={
    "period": st.one_of(st.sampled_from(["7", "30", "90", "custom", "-1", "0", "1e9", ""]),
                        FORM_TEXT.map(lambda t: t[:300])),
    "start": st.one_of(st.dates().map(str), st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30",
                                                             "20260101", "2026-W01-1"]),
                       FORM_TEXT.map(lambda t: t[:300])),
    "end": st.one_of(st.dates().map(str), st.sampled_from(["0001-01-01", "9999-12-31", ""]),
                     FORM_TEXT.map(lambda t: t[:300])),
    "channel": st.one_of(st.sampled_from([c.value for c in Channel]), FORM_TEXT.map(lambda t: t[:300])),
    "queue": st.one_of(st.sampled_from(["volunteer", "professional"]), FORM_TEXT.map(lambda t: t[:300])),
})


def fuzz_stats(run: Run, examples: int, cookie: str) -> None:
    absurd = {"period": "custom", "start": "0001-01-01", "end": "0001-01-31"}
    run.record("stats", run.client.get("/dashboard/stats", params=absurd,
                                       headers={"cookie": cookie}), absurd)

    @fuzz_settings(examples)
    @given(params=STATS_PARAMS, export=st.one_of(st.none(), st.sampled_from(["risk", "route", "x"]),
                                                 FORM_TEXT.map(lambda t: t[:300])),
           custom=st.booleans())
    def check(params: dict[str, str], export: str | None, custom: bool) -> None:
        if custom:
            params = {**params, "period": "custom"}
        path = ("/dashboard/stats" if export is None
                else f"/dashboard/stats/export/{quote(export, safe='')}.csv")
        response = run.client.get(path, params=params, headers={"cookie": cookie})
        run.record("stats", response, (path, params))
        assert response.status_code != 401 and response.status_code != 403, response.text[:200]

    check()


def new_chat(run: Run) -> str:
    run.client.cookies.clear()
    return run.client.get("/chat").cookies["ot_chat"]


def coordinator_cookie(run: Run) -> str:
    with run.services.factory() as session, session.begin():
        add_user(session, username="fuzz-coordinator", display_name="Fuzz", role=Role.coordinator,
                 password=COORDINATOR_PASSWORD)
    token = login_form_token(run)
    response = run.client.post("/login", data={"username": "fuzz-coordinator",
                                               "password": COORDINATOR_PASSWORD,
                                               "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    session_cookie = "; ".join(f"{k}={v}" for k, v in response.cookies.items())
    run.client.cookies.clear()
    return session_cookie


def well_formed(run: Run, examples: int) -> None:
    """Messages as the channels' providers send them, carrying odd text: stored and answered."""
    channels = Channels(run.client)

    @fuzz_settings(examples)
    @given(text=ODD_TEXT, channel=st.sampled_from(["web", "sms", "whatsapp", "telegram"]))
    def check(text: str, channel: str) -> None:
        if channel in ("sms", "whatsapp"):
            text = _SURROGATES.sub("", text)
        sent = "vraag: " + text  # never a bare command ("stop") or a one-word verdict
        response = channels.send(channel, sent)
        run.record(f"well-formed-{channel}", response, sent)
        if response.status_code in (200, 202):
            run.expected.append((Channel(channel), clean_text(sent)[:20_000]))

    check()


def test_no_input_gets_a_5xx(run: Run) -> None:
    started = time.monotonic()
    run.token = new_chat(run)
    cookie = coordinator_cookie(run)
    run.token = new_chat(run)

    timings: list[str] = []
    for name, fuzz, count, extra in [
        ("well-formed", well_formed, WELL_FORMED, ()),
        ("web chat", fuzz_web_chat, 720, ()),
        ("telegram", fuzz_telegram, 460, ()),
        ("twilio messaging", fuzz_twilio_messaging, 310, ()),
        ("twilio voice", fuzz_twilio_voice, 310, ()),
        ("triage", fuzz_triage, 240, ()),
        ("login", fuzz_login, 150, ()),
        ("stats", fuzz_stats, 120, (cookie,)),
    ]:
        before, sent = time.monotonic(), run.total
        fuzz(run, n(count), *extra)  # type: ignore[operator]
        timings.append(f"{name} {run.total - sent} in {time.monotonic() - before:.1f} s")
    elapsed = time.monotonic() - started
    print("\nfuzz timings: " + "; ".join(timings))

    summary = ", ".join(f"{k}: {v}" for k, v in sorted(run.statuses.items()))
    print(f"\nfuzz: {run.total} requests in {elapsed:.1f} s; {summary}")
    assert not run.server_errors, "\n".join(run.server_errors[:40])
    assert run.total >= MIN_REQUESTS * min(SCALE, 1), run.total
    # Every entry was reached, and not only refused: some of each got through.
    for entry in ("web-post 202", "telegram 200", "twilio-messaging 200", "twilio-voice 200",
                  "triage 200", "login 401", "stats 200", "stats 400"):
        assert run.statuses[entry] > 0, (entry, summary)

    # The well-formed messages with odd text were stored (cleaned) and answered.
    assert len(run.expected) >= n(WELL_FORMED) * 0.9
    missing = [(c.value, t[:60]) for c, t in run.expected
               if t.strip() and not answered(run.services, t, c)]
    assert not missing, missing[:10]

    # The service is healthy after all of it, and a normal message gets its answer.
    assert run.client.get("/health").status_code == 200
    channels = Channels(run.client)
    for channel in ("web", "sms", "whatsapp", "telegram"):
        response = channels.send(channel, "ik kan de huur niet betalen")
        assert response.status_code in (200, 202), response.text
        assert answered(run.services, "ik kan de huur niet betalen", Channel(channel))
