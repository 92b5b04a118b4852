"""No parent's words in any log line (issue 12), whatever fails: a statement the database refuses
(on PostgreSQL with the words in its error message, as a DETAIL would), a database connection
killed while a message is handled (PostgreSQL: pg_terminate_backend), bodies that are not JSON,
not UTF-8, NaN, half an emoji, far too long, a Telegram update with an id of thousands of digits.

The app runs in a real uvicorn server (in a thread) so uvicorn's own "Exception in ASGI
application" logging is part of it, with every logger at DEBUG (SQLAlchemy's engine logging,
with its parameters and rows, included), captured by caplog and by a stderr handler as
`oudertelefoon serve` has; then ALL of it is searched for a marker that only the parent wrote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from bot import logsafe
from bot.channels.base import InboundMessage
from bot.config import Settings
from bot.storage import db
from bot.storage.models import Channel, Message, Outbox, utcnow
from bot.triage.engine import Triage
from bot.web.app import Services, build_services, create_app
from tests.channels.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, new_sid, sign

TG_SECRET = "log-test-secret_0123456789"


def marker() -> str:
    """Words only this test's parent writes."""
    return "zebrawolk" + uuid.uuid4().hex[:12]


def all_output(caplog: pytest.LogCaptureFixture, stderr: str) -> str:
    parts = [caplog.text, stderr]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(record.exc_text or "")
        parts.append(record.stack_info or "")
        parts.append(repr(record.args))
    return "\n".join(parts)


def leaked(words: str, output: str) -> bool:
    """The words, or a recognisable piece of them (also as pydantic or repr would shorten them)."""
    return words in output or words[:14] in output or words.lower() in output.lower()


# The filter itself --------------------------------------------------------------------------

def test_held_words_are_withheld_from_every_record(caplog: pytest.LogCaptureFixture) -> None:
    logsafe.install()
    words = marker()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("tests.logsafe")
    with logsafe.scope():
        inbound = InboundMessage(channel=Channel.web, pseudonym="p", address_encrypted=b"",
                                 provider_message_id="m1",
                                 text=f"ik ben bang {words} en\nmijn kind huilt " * 30,
                                 received_at=utcnow())
        log.warning("plain %s", inbound.text)
        log.warning("repr %r", inbound.text)  # escaped newlines
        log.warning("cut %s...", inbound.text[40:120])  # a piece from the middle
        try:
            raise KeyError(inbound.text)
        except KeyError:
            log.exception("failed")
        log.info("as argument: %s", ValueError(f"bad value {inbound.text}"))
        log.info("nothing of the parent here: update %d", 42)
    output = all_output(caplog, "")
    assert not leaked(words, output), output
    assert output.count(logsafe.WITHHELD) >= 4
    assert "nothing of the parent here: update 42" in caplog.text  # other lines stay as they are
    # Outside the scope the words are forgotten (nothing is kept longer than the handling).
    assert not logsafe.holds_parent_words(words * 3)


def test_database_and_validation_errors_keep_no_data(caplog: pytest.LogCaptureFixture,
                                                      database_url: str) -> None:
    """Without anything held: a database error quoting the row, SQLAlchemy's echo of parameters
    and rows, and a pydantic error quoting the input all lose their data."""
    logsafe.install()
    words = marker()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    engine = create_engine(database_url, echo=False)  # an engine without hide_parameters
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t_logs (id INTEGER PRIMARY KEY, words TEXT NOT NULL)"))
        connection.execute(text("INSERT INTO t_logs (id, words) VALUES (1, :w)"), {"w": words})
        list(connection.execute(text("SELECT words FROM t_logs")))
    error: BaseException | None = None
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t_logs (id, words) VALUES (1, :w)"), {"w": words})
    except IntegrityError as caught:
        error = caught
    assert error is not None and words in str(error)  # the raw error does quote the words
    logging.getLogger("tests.logsafe").error("insert failed", exc_info=error)
    logging.getLogger("tests.logsafe").error("insert failed: %s", error)

    class Body(BaseModel):
        n: int

    try:
        Body(n=words)  # type: ignore[arg-type]
    except ValidationError as invalid:
        assert words in str(invalid)
        logging.getLogger("tests.logsafe").exception("invalid")
    engine.dispose()
    output = all_output(caplog, "")
    assert not leaked(words, output), output
    assert "IntegrityError" in output and "int_parsing" in output  # the kind of failure stays
    assert "INSERT INTO t_logs" in output  # and the (parameterised) statement


def test_every_entry_installs_the_filter(settings: Settings) -> None:
    import logging as std_logging

    from bot import cli

    std_logging.setLogRecordFactory(std_logging.LogRecord)
    assert not logsafe.installed()
    cli._setup_logging(settings)
    assert logsafe.installed()
    std_logging.setLogRecordFactory(std_logging.LogRecord)
    create_app(settings)
    assert logsafe.installed()
    assert sys.excepthook is logsafe._excepthook


def test_engine_hides_parameters(database_url: str) -> None:
    engine = db.make_engine(database_url)
    words = marker()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table WHERE x = :w"), {"w": words})
    except StatementError as error:
        assert words not in str(error)
        assert "hidden" in str(error)
    else:
        pytest.fail("the statement should have failed")
    finally:
        engine.dispose()


# The whole service under a real server ---------------------------------------------------------

class Server:
    def __init__(self, app: Any) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, log_level="debug", lifespan="on",
                                access_log=True)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        # A new connection per request: uvicorn drops one after an unhandled error.
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60,
                                   headers={"connection": "close"})
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def full_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_sms_from": "+3197010201234",
        "telegram_bot_token": SecretStr("123456:" + "A" * 35),
        "telegram_webhook_secret": SecretStr(TG_SECRET),
    })


@pytest.fixture
def services(full_settings: Settings, triage: Triage) -> Iterator[Services]:
    built = build_services(full_settings, triage=triage)
    yield built
    asyncio.run(built.close())


def _refuse_statement(services: Services) -> None:
    """The database refuses a message carrying 'stmtfail'; PostgreSQL quotes the text in its
    error, as its DETAIL does for a failing row."""
    with services.engine.begin() as connection:
        if services.engine.dialect.name == "postgresql":
            connection.execute(text("""
                CREATE FUNCTION ot_refuse() RETURNS trigger AS $$
                BEGIN
                    IF NEW.text LIKE '%stmtfail%' THEN
                        RAISE EXCEPTION 'refused: %', NEW.text USING DETAIL = NEW.text_masked;
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql"""))
            connection.execute(text("CREATE TRIGGER ot_refuse BEFORE INSERT ON messages "
                                    "FOR EACH ROW EXECUTE FUNCTION ot_refuse()"))
        else:
            connection.execute(text("""
                CREATE TRIGGER ot_refuse BEFORE INSERT ON messages
                WHEN NEW.text LIKE '%stmtfail%'
                BEGIN SELECT RAISE(ABORT, 'refused'); END"""))


class KillingTriage:
    """The real triage; for a text with 'killdb' the database connections die mid-message
    (PostgreSQL: pg_terminate_backend of every other backend), or, on SQLite, the statement
    after triage fails the way a lost connection does."""

    def __init__(self, real: Triage, database_url: str) -> None:
        self.real = real
        self.database_url = database_url
        self.kills = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run(self, words: str) -> Any:
        if "killdb" in words:
            self.kills += 1
            if self.database_url.startswith("postgresql"):
                admin = create_engine(self.database_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.execute(text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
                admin.dispose()
            else:
                raise OperationalError("UPDATE messages SET text = ?", {"text": words},
                                       Exception(f"disk I/O error while writing {words}"))
        return self.real.run(words)


def test_no_parent_words_in_any_log_line(services: Services, full_settings: Settings,
                                         database_url: str, caplog: pytest.LogCaptureFixture,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    logsafe.install()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    stderr_handler = logging.StreamHandler(sys.stderr)
    stderr_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr_handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(stderr_handler)
    killing = KillingTriage(services.pipeline.triage, database_url)
    services.pipeline.triage = killing  # type: ignore[assignment]
    _refuse_statement(services)
    words: list[str] = []

    def say(words_: str) -> str:
        words.append(words_)
        return words_

    try:
        with Server(create_app(full_settings, services)) as client:
            page = client.get("/chat")
            # The cookie is Secure (PUBLIC_BASE_URL is https); this server speaks plain http.
            client.headers["cookie"] = f"ot_chat={page.cookies['ot_chat']}"
            cid = lambda: uuid.uuid4().hex

            # A statement the database refuses: the message cannot be stored (500), and the
            # error (with the statement's parameters, and on PostgreSQL the words) is logged.
            refused = say(f"ik ben bang stmtfail {marker()}")
            r = client.post("/chat/api/messages", json={"text": refused, "client_id": cid()})
            assert r.status_code == 500

            # The connection killed while the message is handled: stored, and answered (fallback).
            killed_id = cid()
            killed = say(f"ik ben zo moe killdb {marker()}")
            r = client.post("/chat/api/messages", json={"text": killed, "client_id": killed_id})
            assert r.status_code == 202, r.text
            assert killing.kills == 1

            # Odd characters: stored and answered.
            nul = say(f"mijn baby\x00 slaapt slecht {marker()}")
            assert client.post("/chat/api/messages",
                               json={"text": nul, "client_id": cid()}).status_code == 202
            half = say(f"ik ben bang {marker()} ")
            body = json.dumps({"text": half + "HALF", "client_id": cid()}).replace("HALF", "\\ud83d")
            r = client.post("/chat/api/messages", content=body,
                            headers={"content-type": "application/json"})
            assert r.status_code == 202, r.text

            # Bodies that are not what they should be: a clear 4xx, words never echoed.
            bad = say(f"ik weet het niet meer {marker()}")
            bodies = [
                json.dumps({"text": bad, "client_id": "x"}),  # client_id too short
                json.dumps({"text": bad * 5000, "client_id": cid()}),  # far too long
                '{"text": "' + bad + '", "client_id": NaN}',
                '{"text": NaN, "client_id": "' + cid() + '", "x": "' + bad + '"}',
                '{"text": "' + bad + '", "client_id": "' + cid() + '"',  # cut off
            ]
            for raw in bodies:
                r = client.post("/chat/api/messages", content=raw.encode("utf-8"),
                                headers={"content-type": "application/json"})
                assert r.status_code == 422, (r.status_code, r.text)
                assert bad not in r.text and bad[:14] not in r.text
            latin = ('{"text": "' + bad + ' \xe9\xff", "client_id": "' + cid() + '"}').encode("latin-1")
            r = client.post("/chat/api/messages", content=latin,
                            headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            for raw in ['{"text": NaN}', '{"text": "' + bad + '\\udc00"}', '{"text": 1e999}']:
                r = client.post("/api/triage", content=raw, headers={"content-type": "application/json"})
                assert r.status_code in (200, 422), r.text  # 200: the surrogate replaced
                assert r.status_code == 200 or bad not in r.text

            # Telegram: an update id of 5,000 digits, nesting 5,000 deep, a NUL.
            tg = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "content-type": "application/json"}
            chat = {"id": 5830172946, "type": "private", "first_name": "A"}
            tg_text = say(f"help mij {marker()}")
            huge = ('{"update_id": ' + "9" * 5000 + ', "message": {"message_id": 1, "date": 1, '
                    '"chat": ' + json.dumps(chat) + ', "text": "' + tg_text + '"}}')
            assert client.post("/webhooks/telegram", content=huge, headers=tg).status_code == 400
            deep = '{"update_id": 1, "x": ' + "[" * 5000 + '"' + tg_text + '"' + "]" * 5000 + "}"
            assert client.post("/webhooks/telegram", content=deep, headers=tg).status_code == 400
            update = {"update_id": 700000001, "message": {"message_id": 1, "date": 1, "chat": chat,
                                                          "text": say(f"nul\x00 {marker()}")}}
            r = client.post("/webhooks/telegram", content=json.dumps(update), headers=tg)
            assert r.status_code == 200, r.text

            # Twilio: a MessageSid longer than the column, and a NUL in an SMS.
            path = "/webhooks/twilio/messaging"
            for sid, body_text in (("SM" + "a" * 200, say(f"sms {marker()}")),
                                   (new_sid(), say(f"sms\x00 nul {marker()}"))):
                form = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "From": "+31612345678",
                        "To": "+3197010201234", "Body": body_text, "NumMedia": "0"}
                r = client.post(path, data=form,
                                headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, form)})
                assert r.status_code == (400 if len(sid) > 128 else 200), r.text

            # Afterwards the service is healthy and answers a normal message.
            assert client.get("/health").status_code == 200
            assert client.post("/chat/api/messages", json={"text": "ik kan de huur niet betalen",
                                                           "client_id": cid()}).status_code == 202
    finally:
        logging.getLogger().removeHandler(stderr_handler)

    # The killed message was stored and answered (the fallback), nothing lost.
    with services.factory() as session:
        message = session.scalar(select(Message).where(Message.text == killed))
        assert message is not None and message.handled_at is not None
        assert session.scalar(select(Outbox.id).where(Outbox.reply_to == message.id).limit(1))
        stored = list(session.scalars(select(Message.text)))
    assert any("mijn baby slaapt slecht" in (t or "") for t in stored)  # the NUL removed
    assert any("\ufffd" in (t or "") for t in stored)  # half an emoji replaced

    stderr = capfd.readouterr().err
    output = all_output(caplog, stderr)
    # The failures did get logged (so there was something to leak) ...
    assert "Exception in ASGI application" in output
    assert ("IntegrityError" in output) or ("RaiseException" in output) or ("refused" in output)
    assert "handling message failed" in output
    assert "SELECT" in output  # SQLAlchemy's engine logging was on
    # ... and not one of the parent's words is in any of it.
    for one in words:
        assert not leaked(one.split()[-1], output), one
