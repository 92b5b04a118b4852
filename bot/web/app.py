"""The web service. For now: health and the triage API; the channels and the dashboard
(later issues) mount here too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from bot import __version__
from bot.config import Environment, Settings, load_settings
from bot.intents.catalogue import Catalogue, load_catalogue
from bot.storage import db
from bot.storage.redis import connect as connect_redis
from bot.triage.engine import Triage

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000


@dataclass
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    triage: Triage
    catalogue: Catalogue


def build_services(settings: Settings) -> Services:
    """Everything the service needs, checked at start (a bad data file fails here, not later)."""
    url = settings.effective_database_url
    if settings.env is not Environment.production:
        db.upgrade(url)  # production runs `oudertelefoon db upgrade` as a deploy step
    return Services(
        settings=settings,
        engine=db.make_engine(url),
        redis=connect_redis(settings),
        triage=Triage.from_settings(settings),
        catalogue=load_catalogue(settings.aanbod_dir),
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


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or await run_in_threadpool(build_services, settings)
        yield
        app.state.services.engine.dispose()

    app = FastAPI(title="Oudertelefoon", version=__version__, lifespan=lifespan)

    @app.get("/health")
    def health(services: ServicesDep) -> JSONResponse:
        """Liveness and the state of the database and Redis."""
        checks: dict[str, str] = {}
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # health reports, it does not raise
            logger.warning("health: database check failed: %s", type(error).__name__)
            checks["database"] = "error"
        try:
            services.redis.ping()
            checks["redis"] = "ok"
        except Exception as error:
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

    return app
