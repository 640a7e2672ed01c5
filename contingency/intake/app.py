"""The alert intake: a FastAPI service answering 202 with the incidents it started."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ValidationError

from contingency.intake.schemas import (
    AlertmanagerPayload,
    GenericPayload,
    IncidentRef,
    IntakeResponse,
)
from contingency.intake.starter import IncidentStarter
from inventory.alert import Alert
from inventory.settings import Settings, get_settings

log = logging.getLogger("contingency.intake")
P = TypeVar("P", bound=BaseModel)


def _readable(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append(f"{loc or 'body'}: {err.get('msg')}")
    return out


def create_app(settings: Settings | None = None, starter: IncidentStarter | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.webhook_token is None:
        raise RuntimeError("CONTINGENCY_WEBHOOK_TOKEN is not set; the intake refuses to start")
    token = settings.webhook_token.get_secret_value().encode()
    starter = starter or IncidentStarter(settings.incident_deployment)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:  # warm the API client so the first alert is as fast as the rest
            await starter.warm_up()
        except Exception as exc:  # noqa: BLE001 - the server may come later; start anyway
            log.warning("intake: Prefect API not ready yet (%s)", type(exc).__name__)
        yield
        await starter.close()

    app = FastAPI(title="Contingency alert intake", version="0.1.0", lifespan=lifespan)

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
            raise HTTPException(
                401, "missing or bad bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def parse(request: Request, model: type[P]) -> P:
        """Auth first, then the body: an unauthenticated caller learns nothing about it."""
        authorize(request)
        if "json" not in request.headers.get("content-type", "application/json"):
            raise HTTPException(415, "content type must be application/json")
        body = await request.body()
        try:
            return model.model_validate_json(body or b"null")
        except ValidationError as exc:
            raise HTTPException(
                422, {"error": "invalid body", "problems": _readable(exc)}
            ) from None

    async def start_all(alerts: list[Alert]) -> IntakeResponse:
        refs: list[IncidentRef] = []
        for alert in alerts:
            try:
                refs.append(await starter.start(alert))
            except Exception as exc:  # one bad alert must not hide the others
                log.exception("could not start incident for %s", alert.fingerprint)
                refs.append(
                    IncidentRef(
                        fingerprint=alert.fingerprint,
                        status=alert.status,
                        note=f"not started: {type(exc).__name__}",
                    )
                )
        return IntakeResponse(accepted=len(alerts), incidents=refs)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhook/alertmanager", status_code=202, response_model=IntakeResponse)
    async def alertmanager(request: Request) -> IntakeResponse:
        """Alertmanager webhook (version 4); firing alerts start incidents."""
        payload = await parse(request, AlertmanagerPayload)
        return await start_all(payload.normalized())

    @app.post("/webhook/generic", status_code=202, response_model=IntakeResponse)
    async def generic(request: Request) -> IntakeResponse:
        """Generic JSON alerts; see ``GenericPayload`` for the schema."""
        payload = await parse(request, GenericPayload)
        return await start_all(payload.normalized())

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory contingency.intake.app:app_from_env``."""
    return create_app()
