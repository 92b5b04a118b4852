"""Scale-out (issue 13): two app processes (`oudertelefoon serve --workers 2`, the app factory)
and two `oudertelefoon worker` processes on one PostgreSQL and one Redis, Telegram faked at the
HTTP boundary. 200 parents write 5 messages each, in bursts; one worker is SIGKILLed while it has
replies in flight. Every reply is delivered once, and each parent gets their replies in order.

The kill is timed: the fake provider first holds every sendMessage it receives (answers nothing),
the victim is killed while some of its sends are held, and only then are the held requests
answered; the victim's are dropped unanswered (its connections are gone), as a provider that
never got them. So the kill never lands between a provider's answer and the worker's commit:
there a crash means a second send by design (delivery is at least once; the window is kept
short and measured by bench/outbox_duplicates). What this test proves is everything else: the
victim's leased replies go out after its lease, by the other worker, once and in order; no
conversation's replies pass each other across processes; the sweeper lock passes on.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import create_engine, func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from bot.storage.models import Direction, Message, Outbox, OutboxStatus
from bot.triage.embedded import EmbeddedModel
from tests.browser.conftest import free_port
from tests.channels.fake_telegram import FakeTelegram

PARENTS = 200
MESSAGES = 5
SECRET = "scale-out-webhook-secret"
TEXTS = [
    "Hallo, mijn baby van 3 maanden huilt heel veel",
    "Mijn peuter wil 's avonds niet slapen",
    "Hoe vraag ik toeslag aan voor de kinderopvang?",
    "Ik voel me soms alleen als moeder",
    "Dank je wel voor de uitleg",
]


class Gate:
    """Holds sendMessage requests while closed; on opening, answers those whose sender is still
    connected and drops the others (not recorded: the provider never took them)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.held: list[int] = []  # the client ports of requests held now
        self.dropped: list[int] = []

    def hold(self, port: int) -> None:
        with self.lock:
            self.held.append(port)
        self.open.wait(60)
        with self.lock:
            self.held.remove(port)


def _peer_closed(connection: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _gated(fake: FakeTelegram, gate: Gate) -> None:
    server = fake._server
    assert server is not None
    base = server.RequestHandlerClass

    class Gated(base):  # type: ignore[misc, valid-type]
        def _params(self) -> dict[str, Any]:
            params: dict[str, Any] = super()._params()  # the body is read: the request is whole
            if self.path.endswith("/sendMessage") and not gate.open.is_set():
                gate.hold(self.client_address[1])
                if _peer_closed(self.connection):
                    with gate.lock:
                        gate.dropped.append(self.client_address[1])
                    raise ConnectionResetError("the sender is gone")  # nothing recorded
            return params

    server.RequestHandlerClass = Gated


def _update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    person = {"id": chat_id, "is_bot": False, "first_name": "Ouder"}
    return {"update_id": update_id, "message": {
        "message_id": update_id, "from": person, "chat": {**person, "type": "private"},
        "date": int(time.time()), "text": text}}


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    for attempt in range(3):  # as Telegram does: a failed delivery comes again
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == 2:
                return int(error.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == 2:
                raise
        time.sleep(0.5)
    return 0


def _wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError("a process ended while starting: "
                                     + (process.stderr.read().decode()[-3000:] if process.stderr else ""))
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not answer /health in time")


def _wait_for_heartbeats(env: dict[str, str], workers: list[subprocess.Popen[bytes]],
                         seconds: float) -> None:
    """Each worker has started its loop: a held lease is now a worker's, not a start's."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in workers:
            if process.poll() is not None:
                raise AssertionError("a worker ended while starting: "
                                     + (process.stderr.read().decode()[-3000:] if process.stderr else ""))
        if all(_tcp_ports(p.pid) for p in workers):  # connected to the database and Redis
            return
        time.sleep(0.2)
    raise AssertionError("the workers did not start in time")


def _tcp_ports(pid: int) -> set[int]:
    try:
        return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}
    except psutil.Error:
        return set()


@pytest.mark.postgres
def test_two_apps_and_two_workers_deliver_every_reply_once_in_order_through_a_sigkill(
    tmp_path: Path, model_cache: Path, embedded_model: EmbeddedModel, database_url: str,
    redis_url: str,
) -> None:
    started = time.monotonic()
    var = tmp_path / "var"
    shutil.copytree(model_cache, var / "models")  # the session's trained model: no retraining
    fake = FakeTelegram().start()
    gate = Gate()
    _gated(fake, gate)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"RASA_TEST_URL"}}
    env.update(
        OUDERTELEFOON_ENV="test", OUDERTELEFOON_VAR_DIR=str(var), NLU_BACKEND="embedded",
        LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", DATABASE_URL=database_url,
        REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"t{uuid.uuid4().hex[:12]}",
        TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_BASE=fake.url, REPLY_INTERVAL_SECONDS="0.3", OUTBOX_LEASE_SECONDS="5",
    )
    env.pop("SECRET_KEY", None)  # the development key file: four processes create it at once
    command = [sys.executable, "-m", "bot.cli"]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, capture_output=True)
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True)
        processes.append(process)
        return process

    engine = create_engine(database_url)
    try:
        app = start("serve", "--workers", "2", "--no-worker", "--port", str(port))
        workers = [start("worker"), start("worker")]
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, [app, *workers], 90)
        _wait_for_heartbeats(env, workers, 60)
        print(f"\nscale-out: started in {time.monotonic() - started:.1f} s")
        keys = {(var / "secret_key").read_text()}
        assert len(keys) == 1 and len(keys.pop().strip()) > 40
        assert not list(var.glob(".secret_key.*"))  # no temporary key file left behind

        chats = {index: 700_000_000 + index for index in range(PARENTS)}

        def parent(index: int) -> list[int]:
            return [_post(f"{url}/webhooks/telegram",
                          _update(1_000_000 + index * 10 + n, chats[index], TEXTS[n]))
                    for n in range(MESSAGES)]

        # The kill, timed as the module's text says, once a third of the parents have written.
        killed: dict[str, Any] = {}

        def kill_one_worker() -> None:
            while len(fake.sent) < PARENTS // 3 and time.monotonic() - started < 150:
                time.sleep(0.05)
            victim = workers[0]
            gate.open.clear()
            deadline = time.monotonic() + 20  # generous: a loaded CI machine is slow to lease
            while time.monotonic() < deadline:
                mine = _tcp_ports(victim.pid)
                with gate.lock:
                    held = [p for p in gate.held if p in mine]
                if held:
                    break
                time.sleep(0.02)
            killed["held"] = len(held)
            killed["ports"] = set(_tcp_ports(victim.pid))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            time.sleep(0.3)  # the kernel closes its connections
            gate.open.set()

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        with ThreadPoolExecutor(24) as pool:
            statuses = [status for batch in pool.map(parent, range(PARENTS)) for status in batch]
        assert statuses == [200] * (PARENTS * MESSAGES)
        print(f"scale-out: {PARENTS * MESSAGES} messages posted at {time.monotonic() - started:.1f} s")
        killer.join(60)
        assert killed.get("held", 0) > 0, "the victim had no send in flight when it was killed"
        assert gate.dropped and set(gate.dropped) <= killed["ports"]

        # Everything answered and sent (the victim's leases run out after 5 s).
        with Session(engine) as session:
            deadline = time.monotonic() + 60
            while True:
                unhandled = session.scalar(sql_select(func.count()).select_from(Message).where(
                    Message.direction == Direction.inbound, Message.handled_at.is_(None)))
                pending = session.scalar(sql_select(func.count()).select_from(Outbox).where(
                    Outbox.status == OutboxStatus.pending))
                if unhandled == 0 and pending == 0:
                    break
                assert time.monotonic() < deadline, f"{unhandled} unhandled, {pending} pending"
                session.rollback()
                time.sleep(0.3)
            assert session.scalar(sql_select(func.count()).select_from(Message).where(
                Message.direction == Direction.inbound)) == PARENTS * MESSAGES
            rows = session.execute(
                sql_select(Outbox.conversation_id, Outbox.text, Outbox.status)
                .order_by(Outbox.scheduled_at, Outbox.seq, Outbox.id)).all()
            chat_of = {cid: (int(pid) - 1_000_000) // 10 for cid, pid in session.execute(
                sql_select(Message.conversation_id, Message.provider_message_id)
                .where(Message.direction == Direction.inbound)).all()}
        print(f"scale-out: {len(rows)} replies sent at {time.monotonic() - started:.1f} s; "
              f"{killed['held']} of the killed worker's sends held, {len(gate.dropped)} dropped")
        assert {status for _, _, status in rows} == {OutboxStatus.sent}
        expected: dict[str, list[str]] = defaultdict(list)
        for conversation_id, text, _ in rows:
            assert conversation_id is not None
            expected[str(chats[chat_of[conversation_id]])].append(text)
        delivered: dict[str, list[str]] = defaultdict(list)
        for chat_id, text in list(fake.sent):
            delivered[chat_id].append(text)
        assert len(fake.sent) == len(rows)  # once: nothing twice, nothing lost
        assert len(expected) == PARENTS
        assert delivered == expected  # and in order, per conversation
        # How long it took is printed above, not asserted (speed is measured in bench/).
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        engine.dispose()
        fake.stop()


def test_processes_starting_at_once_share_one_development_secret(tmp_path: Path) -> None:
    """The development SECRET_KEY file is made by whichever process comes first, whole: every
    process that starts at the same moment reads that same key (none fails, none reads half)."""
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(OUDERTELEFOON_ENV="development", OUDERTELEFOON_VAR_DIR=str(var))
    code = ("import sys, time; from bot.config import load_settings; s = load_settings(); "
            "time.sleep(max(0.0, float(sys.argv[1]) - time.time())); print(s.secret.decode())")
    at = f"{time.time() + 2.0:.3f}"  # all of them ask at this moment
    processes = [subprocess.Popen([sys.executable, "-c", code, at], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(8)]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 8, results[0][1][-2000:]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1 and len(keys.pop()) > 40
    assert (var / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [path.name for path in var.iterdir() if path.name.startswith(".secret_key")] == []
