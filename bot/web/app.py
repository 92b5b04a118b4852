"""The web service: health, the triage API, the web chat and the channels' webhooks (a channel
without credentials is simply off). The dashboard (the handoff issue) mounts here too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from bot import __version__, catalogue_warning, logsafe
from bot.catalogue_service import CatalogueService
from bot.channels import web as web_chat
from bot.channels.base import Sender
from bot.config import Environment, Settings, load_settings
from bot.delivery import Courier
from bot.intents.catalogue import Catalogue
from bot.intents.messages import Texts
from bot.pipeline import Pipeline
from bot.retention import purge
from bot.storage import db
from bot.storage.crypto import AddressVault
from bot.storage.models import Channel, utcnow
from bot.storage.redis import connect as connect_redis
from bot.storage.redis import stop_embedded
from bot.triage.engine import Triage
from bot.web import hardening
from bot.worker import WebSender, Worker
from handoff.desk import Desk
from handoff.estimate import estimator_for
from handoff.oncall import OnCall

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
WEB_DIR = Path(__file__).resolve().parent


def purge_now(services: Services) -> None:
    with db.transaction(services.factory) as session:
        purge(session, utcnow(), services.settings.retention_days)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    redis: redis.Redis
    triage: Triage
    catalogue: Catalogue
    texts: Texts
    vault: AddressVault
    pipeline: Pipeline
    desk: Desk
    auth: Any  # bot.web.auth.Auth (imported lazily: it imports this module's dependencies)
    senders: dict[Channel, Sender] = field(default_factory=dict)
    on_call: OnCall | None = None  # the on-call SMS (handoff.oncall); off without ON_CALL_PHONE
    courier: Courier | None = None  # replies posted right after the commit (bot.delivery)
    # The catalogue in SQL and its changes (bot.catalogue_service); `catalogue` is its live object.
    catalogue_service: CatalogueService | None = None

    def worker(self) -> Worker:
        return Worker(self.factory, self.vault, self.senders, redis_client=self.redis,
                      whatsapp_template=bool(self.settings.twilio_whatsapp_template_sid),
                      lease=timedelta(seconds=self.settings.outbox_lease_seconds))

    async def run_worker(self, stop: asyncio.Event, *, housekeeping_seconds: float = 3600.0) -> None:
        """The worker loop, wired once for every process that runs it (`serve`, `worker`,
        `telegram poll`): deliver the outbox, recover unanswered messages, the desk's tick (the
        queue index kept whole, idle claims returned), the on-call check and the retention purge."""
        await self.worker().run_forever(
            stop,
            recover=self.pipeline.recover,
            housekeeping=lambda: purge_now(self),
            handoff=self.desk.tick,
            on_call=self.on_call.tick if self.on_call is not None else None,
            housekeeping_seconds=housekeeping_seconds,
        )

    async def close(self) -> None:
        for sender in set(self.senders.values()):
            await sender.close()
        self.engine.dispose()


def build_senders(settings: Settings) -> dict[Channel, Sender]:
    """A sender per channel that has credentials; a channel without them is simply off."""
    senders: dict[Channel, Sender] = {Channel.web: WebSender()}
    if settings.telegram_enabled:
        from bot.channels.telegram import TelegramSender

        senders[Channel.telegram] = TelegramSender(settings)
    if settings.twilio_enabled:
        from bot.channels.twilio import TwilioSender

        twilio = TwilioSender(settings)
        senders[Channel.sms] = twilio
        senders[Channel.whatsapp] = twilio
    return senders


def build_services(settings: Settings, *, triage: Triage | None = None,
                   fault: str | None = None) -> Services:
    """Everything the service needs, checked at start (a bad data file fails here, not later)."""
    url = settings.effective_database_url
    if settings.env is not Environment.production:
        db.upgrade(url)  # production runs `oudertelefoon db upgrade` as a deploy step
    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    redis_client = connect_redis(settings)
    triage = triage or Triage.from_settings(settings)
    # The catalogue lives in SQL, seeded from data/aanbod when empty (bot.catalogue_service).
    catalogue_service = CatalogueService(factory, redis_client, prefix=settings.redis_prefix,
                                         directory=settings.aanbod_dir)
    catalogue = catalogue_service.start()
    texts = Texts.load(settings.messages_dir)
    from bot.web.auth import Auth

    desk = Desk(settings, factory, redis_client, texts, catalogue, prefix=settings.redis_prefix)
    vault = AddressVault(settings.secret)
    if settings.twilio_enabled:
        from bot.channels.voice import CallConnector

        # Claiming a call on the dashboard connects it (or calls the parent back).
        desk.on_claim_phone = CallConnector(settings, factory, vault)
    on_call = OnCall(settings, factory, vault, redis_client)
    pipeline = Pipeline(settings, factory, triage, catalogue, texts, redis_client, fault=fault,
                        on_change=desk.after_pipeline, on_call=on_call.after_pipeline,
                        estimator=estimator_for(settings),
                        schedules=desk.hours)  # the roster, opening hours as fallback (handoff.roster)
    desk.ensure_index()
    pipeline.catalogue_fresh = catalogue_service.refresh  # a coordinator's change, next turn
    return Services(
        settings=settings, engine=engine, factory=factory, redis=redis_client, triage=triage,
        catalogue=catalogue, texts=texts, vault=vault, pipeline=pipeline,
        desk=desk, auth=Auth(settings, factory, redis_client), senders=build_senders(settings),
        on_call=on_call, catalogue_service=catalogue_service,
    )


class TriageRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT_CHARS)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    run_worker: bool = False,
    reply_at_once: bool = False,
) -> FastAPI:
    """The app. `run_worker`: deliver replies in this process too (the one-command default)."""
    settings = settings or load_settings()
    logsafe.install()  # no parent's words in any log line, however the app is served

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or await run_in_threadpool(build_services, settings)
        if reply_at_once:  # webhooks post their replies right after the commit (bot.delivery)
            app.state.services.courier = Courier(app.state.services.worker())
        # Production offering nothing (no checked catalogue entry) is said at start, loudly.
        catalogue_warning.log_at_start(settings, app.state.services.catalogue)
        # The queues' Redis index is rebuilt from SQL at every start: nothing queued is lost
        # when Redis restarted without its data.
        await run_in_threadpool(app.state.services.desk.rebuild)
        stop = asyncio.Event()
        task = None
        if run_worker:
            task = asyncio.create_task(app.state.services.run_worker(stop))
        yield
        stop.set()
        if task is not None:
            await task
        await app.state.services.close()
        if services is None:  # the embedded redis-server this app started stops with it
            await run_in_threadpool(stop_embedded, app.state.services.redis)

    docs = settings.api_docs_enabled  # /docs, /redoc and /openapi.json: not in production
    app = FastAPI(title="Oudertelefoon", version=__version__, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    hardening.install(app)  # bad input: a clear 400/422, never a 5xx, never its words logged
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    templates = Jinja2Templates(directory=WEB_DIR / "templates")
    app.include_router(web_chat.build_router(templates, get_services))
    from bot.web import auth, catalogue_admin, dashboard, learning, stats

    auth.install(app)
    app.include_router(auth.build_router(templates))
    app.include_router(dashboard.build_router(templates))
    app.include_router(stats.build_router(templates))
    app.include_router(learning.build_router(templates))
    from bot.web import roster  # issue 15: the week view, swaps, my own shifts
    app.include_router(roster.build_router(templates))
    from bot.web import supervision  # issue 15: Meekijken, notes, takeover, vraag hulp
    app.include_router(supervision.build_router(templates))
    app.include_router(catalogue_admin.build_router(templates))
    if settings.telegram_enabled:
        from bot.channels import telegram

        app.include_router(telegram.build_router(get_services))
    if settings.twilio_enabled:
        from bot.channels import twilio, voice

        app.include_router(twilio.build_router(get_services))
        app.include_router(voice.build_router(get_services))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/chat")

    @app.get("/stats", include_in_schema=False)
    def stats_page() -> RedirectResponse:
        return RedirectResponse("/dashboard/stats")

    @app.get("/health")
    def health(services: ServicesDep) -> JSONResponse:
        """Liveness and the state of the database and Redis."""
        checks: dict[str, str] = {}
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # noqa: BLE001 - health reports, it does not raise
            logger.warning("health: database check failed: %s", type(error).__name__)
            checks["database"] = "error"
        try:
            services.redis.ping()
            checks["redis"] = "ok"
        except Exception as error:  # noqa: BLE001 - health reports, it does not raise
            logger.warning("health: redis check failed: %s", type(error).__name__)
            checks["redis"] = "error"
        ok = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "nlu_backend": services.settings.nlu_backend.value,
            **checks,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/api/triage")
    def triage(body: TriageRequest, services: ServicesDep) -> dict[str, Any]:
        """Triage one message: the same JSON as `oudertelefoon triage`."""
        return services.triage.run(body.text).contract()

    from bot.web import security

    security.install(app, settings)  # headers, trusted proxies, Secure cookies over https
    return app


def serve_app() -> FastAPI:
    """The app factory of `oudertelefoon serve` (uvicorn's --factory; with --workers N each
    process calls it): settings from the environment, replies delivered by this process too."""
    return create_app(load_settings(), run_worker=True, reply_at_once=True)


def serve_app_without_worker() -> FastAPI:
    """`oudertelefoon serve --no-worker`: a separate `oudertelefoon worker` delivers."""
    return create_app(load_settings(), run_worker=False, reply_at_once=True)
