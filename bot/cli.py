"""`oudertelefoon`: the one command that is the entry to everything.

Subcommands (their names and output are contracts):
  triage TEXT | triage --batch FILE      one JSON object per message
  nlu train | nlu test [--data PATH] [--json] | nlu export-corrections [--out PATH]
  serve [--host 127.0.0.1] [--port 8000] [--workers N] [--no-worker]
  db upgrade
  worker [--once]                       deliver replies, purge old transcripts
  worker --check [--max-age 120]        exit 0 only when this host's worker beat recently
  catalogue check
  telegram set-webhook | telegram poll
  users add --role ROLE --username U [--display-name D] [--languages nl,en] [--password-stdin]
  users deactivate U | users activate U | users list
  users phone U +316... | users phone U --clear   (the number the telephone line dials)
  handoff rebuild                       the queues' Redis index from SQL
  demo-data [--days 30] [--seed 1]       made-up anonymous statistics (not in production)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from bot.config import Environment, NLUBackendName, Settings, load_settings
from bot.errors import OudertelefoonError

logger = logging.getLogger("bot.cli")


def _setup_logging(settings: Settings) -> None:
    from bot import logsafe

    logsafe.install()  # every command: serve, worker, telegram poll, ... (issue 12)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _triage(settings: Settings, backend: str | None) -> Any:
    from bot.triage.engine import Triage

    if backend:
        settings = settings.model_copy(update={"nlu_backend": NLUBackendName(backend)})
    return Triage.from_settings(settings)


def _dump(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _open_batch(path: str) -> TextIO:
    """The batch file, or standard input for "-"; the caller closes it (``with``)."""
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8", errors="replace")


def cmd_triage(args: argparse.Namespace, settings: Settings) -> int:
    if (args.text is None) == (args.batch is None):
        print("error: give either TEXT or --batch FILE", file=sys.stderr)
        return 2
    triage = _triage(settings, args.backend)
    if args.text is not None:
        _dump(triage.run(args.text).contract(), sys.stdout)
        return 0
    try:
        handle = _open_batch(args.batch)
    except OSError as error:
        print(f"error: cannot read {args.batch}: {error.strerror}", file=sys.stderr)
        return 2
    failures = 0
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                _dump({"line": number, "error": "empty line"}, sys.stdout)
                failures += 1
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                _dump({"line": number, "error": f"not valid JSON: {error.msg}"}, sys.stdout)
                failures += 1
                continue
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                _dump({"line": number, "error": 'expected an object with a "text" string'}, sys.stdout)
                failures += 1
                continue
            try:
                _dump(triage.run(item["text"]).contract(), sys.stdout)
            except Exception as error:  # noqa: BLE001 - one bad line never stops the batch
                # The type only: a traceback could quote the message text.
                logger.error("triage failed on batch line %d: %s", number, type(error).__name__)
                _dump({"line": number, "error": "triage failed"}, sys.stdout)
                failures += 1
            sys.stdout.flush()
    if failures:
        print(f"{failures} line(s) had errors", file=sys.stderr)
    return 0


def cmd_nlu_train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.triage.embedded import train
    from bot.triage.nludata import load_training

    data = load_training(settings.nlu_dir)
    start = time.perf_counter()
    train(data, settings.var_dir / "models")
    seconds = time.perf_counter() - start
    counts = data.counts()
    print(
        f"trained the embedded model on {len(data.examples)} examples, {len(counts)} intents, "
        f"from {len(data.files)} files in {seconds:.1f} s (data hash {data.fingerprint()[:12]})"
    )
    return 0


def cmd_nlu_test(args: argparse.Namespace, settings: Settings) -> int:
    from bot.triage.evaluate import evaluate, format_report
    from bot.triage.nludata import data_files, load

    held_out = ("test", "validation", "holdout")
    paths = [Path(args.data)] if args.data else [settings.nlu_dir / name for name in held_out]
    triage = _triage(settings, args.backend)
    reports = {}
    for path in paths:
        if not args.data and not path.exists():
            continue
        reports[str(path)] = evaluate(triage, load(data_files(path)))
    if args.json:
        out = {name: report.as_dict() for name, report in reports.items()}
        print(json.dumps(out if len(out) > 1 else next(iter(out.values())), ensure_ascii=False, indent=2))
    else:
        print("\n\n".join(f"== {name}\n{format_report(report)}" for name, report in reports.items()))
    return 0


def cmd_nlu_export_corrections(args: argparse.Namespace, settings: Settings) -> int:
    """The accepted corrections not exported yet, as Rasa NLU YAML under data/nlu/ (to review and
    commit). Prints how many; writes no file when there are none."""
    from stats.learning import export_corrections

    with _user_factory(settings) as factory, factory() as session:
        result = export_corrections(session, settings.nlu_dir, out=Path(args.out) if args.out else None)
    since = f" (reviewed since {result.since.isoformat(timespec='seconds')})" if result.since else ""
    if result.path is None:
        print(f"no accepted corrections to export{since}")
    else:
        print(f"exported {result.examples} example(s) from {result.corrections} accepted correction(s)"
              f"{since} to {result.path}")
    return 0


# Set by the SIGTERM handler below. The SystemExit it raises can be swallowed by library code
# that catches everything while the service starts; the loops check this once they run, so a
# SIGTERM during the start is never lost (the worker used to keep running after one).
TERMINATED = threading.Event()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    TERMINATED.set()
    raise SystemExit(128 + signum)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """In a running loop: SIGINT and SIGTERM set `stop`; a SIGTERM that came during the start sets
    it at once."""
    import asyncio

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if TERMINATED.is_set():
        stop.set()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.redis_url:
        # Each process would start an embedded Redis of its own: no shared queues or wake-ups.
        print("error: --workers above 1 needs a shared Redis: set REDIS_URL", file=sys.stderr)
        return 2
    if settings.env is not Environment.production:
        from bot.storage import db

        db.upgrade(settings.effective_database_url)  # once, before the processes start
    _print_demo_logins(settings, f"http://{args.host}:{args.port}")
    channels = ["web chat (/chat)"]
    channels.append("Telegram (/webhooks/telegram)" if settings.telegram_enabled
                    else "Telegram off (set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET)")
    channels.append("SMS and WhatsApp (/webhooks/twilio/messaging)" if settings.twilio_enabled
                    else "SMS and WhatsApp off (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)")
    print(f"Oudertelefoon on http://{args.host}:{args.port}/chat  (dashboard: /dashboard, health: /health, "
          "triage: POST /api/triage)")
    for line in channels:
        print(f"  channel: {line}")
    print("  replies are delivered " + ("by a separate `oudertelefoon worker`" if args.no_worker
                                         else "by this process" if args.workers == 1
                                         else f"by these {args.workers} processes"))
    # An app factory (bot.web.app): each of the --workers processes loads the settings from the
    # environment and builds its own services; one of all processes sweeps (bot.worker.Leader).
    # uvicorn turns SIGINT and SIGTERM into a graceful shutdown (the app's lifespan stops the
    # embedded Redis), then raises the signal again with the handler main() set (SystemExit).
    # An open dashboard keeps an event stream; give streams a few seconds, then stop anyway.
    factory = "bot.web.app:serve_app_without_worker" if args.no_worker else "bot.web.app:serve_app"
    uvicorn.run(factory, factory=True, workers=args.workers, host=args.host, port=args.port,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=5)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bot.storage.db import upgrade

    upgrade(settings.effective_database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def cmd_catalogue_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.intents.catalogue import load_catalogue

    catalogue = load_catalogue(settings.aanbod_dir)
    entries = list(catalogue.entries.values())
    verified = sum(1 for e in entries if e.verified)
    print(f"catalogue ok: {len(entries)} entries, {verified} verified, {len(entries) - verified} to check")
    return 0


@contextmanager
def _catalogue_service(settings: Settings) -> Iterator[Any]:
    """The catalogue in SQL (seeded from data/aanbod when empty), announcing changes in Redis so
    running services use them in their next answer."""
    from bot.catalogue_service import CatalogueService
    from bot.storage.redis import connect as connect_redis

    with _user_factory(settings) as factory:
        client = connect_redis(settings)
        try:
            service = CatalogueService(factory, client, prefix=settings.redis_prefix,
                                       directory=settings.aanbod_dir)
            service.start()
            yield service
        finally:
            client.close()


def cmd_catalogue_export(args: argparse.Namespace, settings: Settings) -> int:
    """The database's catalogue as data/aanbod YAML (loaded back with the bot's loader)."""
    from bot.catalogue_service import CatalogueRefused

    target = Path(args.to) if args.to else settings.aanbod_dir
    with _catalogue_service(settings) as service:
        try:
            written = service.export(target)
        except CatalogueRefused as error:
            print(f"error: {target} holds other *.yml files the export would not overwrite "
                  f"(they would load next to it): {', '.join(error.problems)}", file=sys.stderr)
            return 1
    print(f"catalogue exported to {target}: {len(written)} file(s), checked with the loader")
    return 0


def cmd_catalogue_import(args: argparse.Namespace, settings: Settings) -> int:
    """Reviewed YAML into the database: the diff first; applied (and audited) with --apply."""
    directory = Path(args.directory)
    with _catalogue_service(settings) as service:
        plan = service.plan_import(directory)
        for line in plan.lines():
            print(line)
        if plan.empty:
            print("catalogue import: no changes")
            return 0
        summary = f"{len(plan.added)} new, {len(plan.changed)} changed"
        if not args.apply:
            print(f"catalogue import: {summary}; nothing applied (run again with --apply)")
            return 0
        service.apply_import(plan)
    print(f"catalogue import: {summary}; applied")
    return 0


def cmd_worker_check(args: argparse.Namespace, settings: Settings) -> int:
    """The worker's healthcheck: its heartbeat in Redis (bot.worker.beat) is recent. Run in the
    worker's own container: the heartbeat is kept per host name."""
    import redis

    from bot.storage.redis import connect
    from bot.worker import heartbeat_age, worker_name

    client = connect(settings)
    try:
        age = heartbeat_age(client, settings.redis_prefix)
    except redis.RedisError as error:
        print(f"worker check: Redis cannot be reached ({type(error).__name__})", file=sys.stderr)
        return 1
    finally:
        client.close()
    name = worker_name()
    if age is None:
        print(f"worker check: no heartbeat from worker {name} (not started, or not running)",
              file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"worker check: the heartbeat of worker {name} is {age:.0f} s old "
              f"(more than {args.max_age:.0f} s)", file=sys.stderr)
        return 1
    print(f"worker check: worker {name} beat {age:.1f} s ago")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    if args.check:
        return cmd_worker_check(args, settings)

    from bot.web.app import build_services, purge_now

    services = build_services(settings)

    async def run() -> None:
        worker = services.worker()
        if args.once:
            services.pipeline.recover()
            services.desk.tick()
            if services.on_call is not None:
                services.on_call.tick()
            sent = 0
            while batch := await worker.run_once():
                sent += batch
            purge_now(services)
            print(f"worker: delivered {sent} message(s), purged transcripts older than "
                  f"{settings.retention_days} days")
        else:
            stop = asyncio.Event()
            _stop_on_signals(stop)
            print(f"worker: delivering replies; purging transcripts older than "
                  f"{settings.retention_days} days every {args.interval:.0f} s")
            await services.run_worker(stop, housekeeping_seconds=args.interval)
        await services.close()

    asyncio.run(run())
    return 0


def cmd_telegram_set_webhook(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bot.channels.telegram import set_webhook

    status = asyncio.run(set_webhook(settings))
    bot = f"@{status.bot_username}" if status.bot_username else "the bot"
    print(f"telegram: webhook of {bot} set to {status.url} (updates: "
          f"{', '.join(status.allowed_updates) or 'all'}; pending: {status.pending_update_count})")
    if status.last_error:
        print(f"telegram: last delivery error reported by Telegram: {status.last_error}")
    return 0


def cmd_telegram_poll(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from bot.channels.telegram import poll, require_token
    from bot.web.app import build_services

    require_token(settings)  # refuse before the slow start
    services = build_services(settings)

    async def run() -> int:
        stop = asyncio.Event()
        _stop_on_signals(stop)

        def ready(username: str | None) -> None:
            print(f"telegram poll: webhook removed; reading updates for @{username} and delivering "
                  "replies here (Ctrl-C stops)", flush=True)

        try:
            return await poll(services, stop, timeout=args.timeout, on_ready=ready)
        finally:
            await services.close()

    handled = asyncio.run(run())
    print(f"telegram poll: stopped after {handled} update(s)")
    return 0


def _print_demo_logins(settings: Settings, base_url: str) -> None:
    """Where demo users are on (development): make sure they exist and print their logins."""
    if not settings.demo_users_enabled:
        return
    from bot.accounts.users import ROLE_NAMES, ensure_demo_users
    from bot.storage import db

    # Production upgrades as a deploy step (and has no demo users).
    db.upgrade(settings.effective_database_url)
    engine = db.make_engine(settings.effective_database_url)
    try:
        logins = ensure_demo_users(settings, db.session_factory(engine))
    finally:
        engine.dispose()
    if not logins:
        return
    print("Demo-logins (alleen voor uitproberen):", file=sys.stderr)
    for username, password, role in logins:
        print(f"  {username} / {password}  ({ROLE_NAMES[role]})", file=sys.stderr)
    print(f"  dashboard: {base_url}/dashboard", file=sys.stderr)


@contextmanager
def _user_factory(settings: Settings) -> Iterator[Any]:
    from bot.config import Environment
    from bot.storage import db

    url = settings.effective_database_url
    if settings.env is not Environment.production:
        db.upgrade(url)  # as `serve` does; production runs `oudertelefoon db upgrade` on deploy
    engine = db.make_engine(url)
    try:
        yield db.session_factory(engine)
    finally:
        engine.dispose()


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.accounts.users import (
        ROLE_NAMES,
        add_user,
        audit,
        generate_password,
        normalize_phone,
        parse_languages,
        set_phone,
    )
    from bot.storage import db
    from bot.storage.crypto import AddressVault
    from bot.storage.models import Role

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password = generate_password()
        generated = True
    role = Role(args.role)
    phone = normalize_phone(args.phone) if args.phone else None  # refused before anything is added
    with _user_factory(settings) as factory, db.transaction(factory) as session:
        user = add_user(session, username=args.username,
                        display_name=args.display_name or args.username, role=role,
                        password=password, languages=parse_languages(args.languages))
        audit(session, "user_added", None, user=user.id, role=role.value, by="cli")
        if phone is not None:
            set_phone(session, user.id, phone, AddressVault(settings.secret))
            audit(session, "user_phone_set", None, user=user.id, by="cli")
        username, display_name = user.username, user.display_name
    print(f"added {username} ({display_name}), {ROLE_NAMES[role]}"
          + (", phone number for calls set" if phone else ""))
    if generated:
        print(f"password (shown once): {password}")
    return 0


def _stop_shift(settings: Settings, factory: Any, user_id: str) -> int:
    """The desk ends a deactivated person's shift; their claimed conversations go back."""
    from bot.intents.catalogue import load_catalogue
    from bot.intents.messages import Texts
    from bot.storage.redis import connect as connect_redis
    from handoff.desk import Desk

    client = connect_redis(settings)
    try:
        desk = Desk(settings, factory, client, Texts.load(settings.messages_dir),
                    load_catalogue(settings.aanbod_dir), prefix=settings.redis_prefix)
        return desk.stop_shift(user_id)
    finally:
        client.close()


def cmd_handoff_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """The queues' Redis index from SQL (after Redis lost its data; the service also does this at
    start and whenever it finds the index gone)."""
    import time

    from bot.intents.catalogue import load_catalogue
    from bot.intents.messages import Texts
    from bot.storage import db
    from bot.storage.redis import connect as connect_redis
    from handoff.desk import Desk

    url = settings.effective_database_url
    if settings.env is not Environment.production:
        db.upgrade(url)
    engine = db.make_engine(url)
    client = connect_redis(settings)
    try:
        desk = Desk(settings, db.session_factory(engine), client, Texts.load(settings.messages_dir),
                    load_catalogue(settings.aanbod_dir), prefix=settings.redis_prefix)
        start = time.perf_counter()
        count = desk.rebuild()
        print(f"handoff: queue index rebuilt from SQL: {count} waiting conversation(s) "
              f"in {time.perf_counter() - start:.2f} s")
    finally:
        engine.dispose()
    return 0


def _cmd_users_set_active(args: argparse.Namespace, settings: Settings, active: bool) -> int:
    from bot.accounts.users import audit, find_user, set_active
    from bot.storage import db

    with _user_factory(settings) as factory:
        with db.transaction(factory) as session:
            user = find_user(session, args.username)
            set_active(session, user.id, active)  # deactivating ends their sessions
            audit(session, "user_activated" if active else "user_deactivated", None,
                  user=user.id, by="cli")
            username, user_id = user.username, user.id
        if active:
            print(f"activated {username}")
            return 0
        returned = _stop_shift(settings, factory, user_id)
    print(f"deactivated {username}: sessions ended, shift ended, {returned} claimed "
          "conversation(s) back in the queue")
    return 0


def cmd_users_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    return _cmd_users_set_active(args, settings, False)


def cmd_users_activate(args: argparse.Namespace, settings: Settings) -> int:
    return _cmd_users_set_active(args, settings, True)


def cmd_users_phone(args: argparse.Namespace, settings: Settings) -> int:
    """Set or clear a person's own number for calls (stored encrypted, never printed)."""
    from bot.accounts.users import (
        UserError,
        audit,
        find_user,
        normalize_phone,
        phone_hint,
        set_phone,
    )
    from bot.storage import db
    from bot.storage.crypto import AddressVault

    if args.clear == bool(args.number):
        raise UserError("Geef een telefoonnummer (+31612345678) of --clear, niet allebei.")
    number = None if args.clear else normalize_phone(args.number)
    vault = AddressVault(settings.secret)
    with _user_factory(settings) as factory, db.transaction(factory) as session:
        user = find_user(session, args.username)
        set_phone(session, user.id, number, vault)
        audit(session, "user_phone_cleared" if number is None else "user_phone_set", None,
              user=user.id, by="cli")
        username, hint = user.username, phone_hint(user, vault)
    print(f"{username}: phone number for calls {hint or 'cleared'}")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from bot.accounts.users import ROLE_NAMES
    from bot.storage.models import User

    with _user_factory(settings) as factory, factory() as session:
        users = list(session.scalars(select(User).order_by(User.username)))
    rows = [("username", "name", "role", "languages", "active", "last login")]
    for user in users:
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "-"
        rows.append((user.username, user.display_name, ROLE_NAMES[user.role],
                     ",".join(user.languages or ["nl"]), "yes" if user.active else "no", last))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    """A realistic period of anonymous statistics (no conversations, no people) for a demo."""
    if settings.env is Environment.production:
        print("error: demo-data refuses to run in production (OUDERTELEFOON_ENV=production): it "
              "would mix made-up contacts into the real statistics", file=sys.stderr)
        return 2
    if args.days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return 2
    from zoneinfo import ZoneInfo

    from bot.accounts.users import ensure_demo_users
    from bot.hours import parse_hours
    from bot.intents.catalogue import load_catalogue
    from bot.storage import db
    from stats.demo import make

    with _user_factory(settings) as factory:
        ensure_demo_users(settings, factory)  # their past shifts fill the heat map (development)
        with db.transaction(factory) as session:
            made = make(session, days=args.days, contacts_per_day=args.per_day, seed=args.seed,
                        zone=ZoneInfo(settings.timezone), hours=parse_hours(settings.volunteer_hours),
                        catalogue=load_catalogue(settings.aanbod_dir))
    zone = ZoneInfo(settings.timezone)
    print(f"demo-data: {made.facts} made-up contacts over {args.days} days "
          f"({made.start.astimezone(zone):%Y-%m-%d} to {made.end.astimezone(zone):%Y-%m-%d}), "
          f"{made.handed_over} handed over, "
          f"{made.themes} theme rows, {made.corrections} corrections, {made.shifts} past shifts "
          f"(seed {args.seed})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oudertelefoon", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    triage = sub.add_parser("triage", help="triage a message (or a JSON-lines file) and print JSON")
    triage.add_argument("text", nargs="?", help="the message text")
    triage.add_argument("--batch", metavar="FILE", help='JSON lines with a "text" field ("-" = stdin)')
    triage.add_argument("--backend", choices=[b.value for b in NLUBackendName], help="override NLU_BACKEND")
    triage.set_defaults(func=cmd_triage)

    nlu = sub.add_parser("nlu", help="train or test the NLU model").add_subparsers(dest="nlu", required=True)
    nlu_train = nlu.add_parser("train", help="train the embedded model on data/nlu")
    nlu_train.set_defaults(func=cmd_nlu_train)
    nlu_test = nlu.add_parser("test", help="per-intent precision, recall and F1 on a test split")
    nlu_test.add_argument("--data", metavar="PATH",
                          help="file or folder (default: data/nlu/test, validation and holdout)")
    nlu_test.add_argument("--json", action="store_true", help="machine-readable output")
    nlu_test.add_argument("--backend", choices=[b.value for b in NLUBackendName], help="override NLU_BACKEND")
    nlu_test.set_defaults(func=cmd_nlu_test)
    nlu_export = nlu.add_parser("export-corrections",
                                help="write the accepted corrections as Rasa NLU YAML under data/nlu")
    nlu_export.add_argument("--out", metavar="PATH",
                            help="output file (default data/nlu/corrections_<YYYYMMDD>.yml)")
    nlu_export.set_defaults(func=cmd_nlu_export_corrections)

    serve = sub.add_parser("serve", help="run the web service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true",
                       help="do not deliver replies here (run `oudertelefoon worker` instead)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="web processes (above 1 needs REDIS_URL; PostgreSQL recommended)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    worker = sub.add_parser("worker", help="deliver replies, recover unhandled messages, purge old transcripts")
    worker.add_argument("--once", action="store_true", help="one round and exit")
    worker.add_argument("--interval", type=float, default=3600.0, help="seconds between purges")
    worker.add_argument("--check", action="store_true",
                        help="healthcheck: exit 0 only when this host's worker beat recently")
    worker.add_argument("--max-age", type=float, default=120.0,
                        help="seconds a heartbeat stays fresh for --check (default 120)")
    worker.set_defaults(func=cmd_worker)

    catalogue = sub.add_parser("catalogue", help="the help catalogue").add_subparsers(
        dest="catalogue", required=True
    )
    check = catalogue.add_parser("check", help="validate data/aanbod")
    check.set_defaults(func=cmd_catalogue_check)
    export = catalogue.add_parser("export", help="write the database's catalogue as data/aanbod YAML")
    export.add_argument("--to", help="directory to write (default: the data/aanbod directory)")
    export.set_defaults(func=cmd_catalogue_export)
    importer = catalogue.add_parser("import", help="load reviewed YAML: shows the diff, applies with --apply")
    importer.add_argument("directory", help="a directory in the data/aanbod format")
    importer.add_argument("--apply", action="store_true", help="apply the changes (audited)")
    importer.set_defaults(func=cmd_catalogue_import)

    telegram = sub.add_parser("telegram", help="Telegram setup").add_subparsers(
        dest="telegram", required=True
    )
    tg_webhook = telegram.add_parser("set-webhook",
                                     help="register PUBLIC_BASE_URL/webhooks/telegram with Telegram")
    tg_webhook.set_defaults(func=cmd_telegram_set_webhook)
    tg_poll = telegram.add_parser("poll", help="local use without a public URL: long-poll and reply")
    tg_poll.add_argument("--timeout", type=int, default=30, help="seconds per long poll")
    tg_poll.set_defaults(func=cmd_telegram_poll)

    handoff = sub.add_parser("handoff", help="the volunteer and professional queues").add_subparsers(
        dest="handoff", required=True
    )
    rebuild = handoff.add_parser("rebuild", help="rebuild the queues' Redis index from SQL")
    rebuild.set_defaults(func=cmd_handoff_rebuild)

    users = sub.add_parser("users", help="dashboard users").add_subparsers(
        dest="users", required=True
    )
    users_add = users.add_parser("add", help="add a user (a generated password is printed once)")
    users_add.add_argument("--role", required=True,
                           choices=["volunteer", "professional", "coordinator"])
    users_add.add_argument("--username", required=True)
    users_add.add_argument("--display-name", help="the name parents see (default: the username)")
    users_add.add_argument("--languages", default="nl", help="language codes, e.g. nl,en")
    users_add.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of stdin")
    users_add.add_argument("--phone", help="their own number for calls, E.164 (+316...)")
    users_add.set_defaults(func=cmd_users_add)
    users_phone = users.add_parser("phone", help="set or clear a user's number for calls")
    users_phone.add_argument("username")
    users_phone.add_argument("number", nargs="?", help="E.164, e.g. +31612345678")
    users_phone.add_argument("--clear", action="store_true", help="remove the number")
    users_phone.set_defaults(func=cmd_users_phone)
    users_deactivate = users.add_parser("deactivate",
                                        help="stop a user from logging in; ends their sessions")
    users_deactivate.add_argument("username")
    users_deactivate.set_defaults(func=cmd_users_deactivate)
    users_activate = users.add_parser("activate", help="let a deactivated user log in again")
    users_activate.add_argument("username")
    users_activate.set_defaults(func=cmd_users_activate)
    users_list = users.add_parser("list", help="all users, their role and last login")
    users_list.set_defaults(func=cmd_users_list)

    demo_data = sub.add_parser("demo-data", help="add a realistic month of made-up anonymous statistics "
                               "(not in production)")
    demo_data.add_argument("--days", type=int, default=30, help="days back from today (default 30)")
    demo_data.add_argument("--seed", type=int, default=1, help="random seed (same seed, same data)")
    demo_data.add_argument("--per-day", type=float, default=120.0, help="contacts a day on average")
    demo_data.set_defaults(func=cmd_demo_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except OudertelefoonError as error:
        print(error, file=sys.stderr)
        return 2
    _setup_logging(settings)
    # SIGTERM (docker stop, systemd, a supervisor), also while starting: SystemExit instead of
    # the default sudden end, so exit hooks run (the embedded redis-server is stopped) as on Ctrl-C.
    # Commands with a loop of their own (worker, telegram poll, serve) handle it gracefully there.
    if (signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # not inside another program's handler
            and threading.current_thread() is threading.main_thread()):
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return int(args.func(args, settings))
    except OudertelefoonError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
