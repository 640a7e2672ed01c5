"""The alert intake: a FastAPI service that stores each post's alerts durably (the outbox)
and answers 202; the dispatcher then starts or joins their incidents, with retries
(``dispatch.py``). ``?wait=SECONDS`` makes the answer wait for the incidents (the CLI
uses it). 503 only if the alerts could not be stored. ``/healthz`` is liveness,
``/readyz`` readiness (Prefect API, deployment, a live worker, a writable state dir, the
dispatcher running)."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, SecretStr, ValidationError

from contingency.intake.auth import (
    ReplayCache,
    SignatureError,
    precheck_generic,
    precheck_grafana,
    verify_generic,
    verify_grafana,
)
from contingency.intake.board import add_board
from contingency.intake.dispatch import Dispatcher
from contingency.intake.dispatch_process import DispatchProcess
from contingency.intake.fastlane import FastLane
from contingency.intake.grafana import GrafanaPayload
from contingency.intake.inventory_cache import InventoryCache
from contingency.intake.limits import BodyTooLarge, TokenBucket, read_limited
from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outbox import Outbox
from contingency.intake.outcomes import IncidentOutcomes
from contingency.intake.readiness import CheckFailed, Readiness, live_workers, probe_state_dir
from contingency.intake.schemas import (
    AlertmanagerPayload,
    GenericPayload,
    IncidentRef,
    IntakeResponse,
)
from contingency.intake.starter import IncidentStarter
from inventory.alert import Alert
from inventory.secrets import webhook_token
from inventory.settings import Settings, get_settings

log = logging.getLogger("contingency.intake")
P = TypeVar("P", bound=BaseModel)
QUEUED = "queued: stored; its incident starts or joins shortly"
METRICS_PREFECT_WAIT_S = 5.0
"""How long a scrape waits for Prefect's figures (Prometheus gives up after 10 s)."""


def _readable(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append(f"{loc or 'body'}: {err.get('msg')}")
    return out


def _secrets(value: SecretStr | None) -> list[SecretStr]:
    if value is None:
        return []
    return [SecretStr(v.strip()) for v in value.get_secret_value().split(",") if v.strip()]


def _board_auth(settings: Settings) -> str | None:
    """The Prefect API's auth string (the board's login), if one is configured."""
    from contingency.runtime.api import api_target

    try:
        auth = api_target(settings).auth
    except Exception:  # noqa: BLE001 - no API configured yet: the webhook token guards it
        return None
    return auth.get_secret_value() if auth is not None else None


def readiness_checks(
    settings: Settings, starter: IncidentStarter, dispatcher: Dispatcher | DispatchProcess
) -> Readiness:
    """The checks behind ``/readyz``, through the intake's own Prefect client; the
    dispatcher's check says whether stored alerts become incidents."""
    pool = settings.work_pool

    async def prefect_api() -> str:
        client = await starter.api_client()
        exc = await client.api_healthcheck()  # GET /health
        if exc is not None:
            raise CheckFailed(f"Prefect API not answering ({type(exc).__name__})")
        return "answers"

    async def deployment() -> str:
        try:
            await starter.warm_up()  # reads the deployment id once, then remembers it
        except ObjectNotFound:
            raise CheckFailed(f"deployment {settings.incident_deployment!r} not found") from None
        return f"{settings.incident_deployment!r} found"

    async def worker() -> str:
        client = await starter.api_client()
        try:
            workers = await client.read_workers_for_work_pool(pool)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                raise CheckFailed(f"work pool {pool!r} not found") from None
            raise
        live = live_workers(workers)
        if not live:
            raise CheckFailed(f"no live worker in work pool {pool!r} ({len(workers)} known)")
        return f"{len(live)} live worker(s) in work pool {pool!r}"

    async def state_dir() -> str:
        return await asyncio.to_thread(probe_state_dir, settings.state_dir)

    async def dispatch() -> str:
        return dispatcher.ready()

    return Readiness(
        {
            "prefect_api": prefect_api,
            "deployment": deployment,
            "worker": worker,
            "state_dir": state_dir,
            "dispatcher": dispatch,
        },
        ttl_s=settings.intake_ready_cache_s,
        timeout_s=settings.intake_ready_timeout_s,
    )


def create_app(
    settings: Settings | None = None, starter: IncidentStarter | None = None
) -> FastLane:
    settings = settings or get_settings()
    token = webhook_token(settings).encode()
    # The real intake dispatches from a process of its own (``dispatch_process.py``); a
    # stand-in starter (tests) is driven by a dispatcher on this event loop.
    in_process = starter is not None
    starter = starter or IncidentStarter(settings.incident_deployment)
    inventory = InventoryCache(settings)
    outbox = Outbox(settings.outbox_path, spin=not in_process)
    # The webhook stores posts on threads of its own: never queued behind the
    # dispatcher's outbox and Prefect work in the shared default executor.
    storing = ThreadPoolExecutor(2, thread_name_prefix="outbox-add")
    grafana_secrets = _secrets(settings.grafana_hmac_secrets)
    generic_secrets = _secrets(settings.generic_hmac_secrets)
    replays = ReplayCache()
    bucket = TokenBucket(settings.intake_rate_per_second, settings.intake_rate_burst)
    unauth_bucket = TokenBucket(
        settings.intake_unauth_rate_per_second, settings.intake_unauth_burst
    )
    metrics = IntakeMetrics()
    dispatcher: Dispatcher | DispatchProcess = (
        Dispatcher(outbox, starter, inventory, metrics, grace_s=settings.correlation_grace_s)
        if in_process
        else DispatchProcess(settings, outbox, metrics)
    )
    readiness = readiness_checks(settings, starter, dispatcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:  # warm the API client so the first alert is as fast as the rest
            await starter.warm_up()
        except Exception as exc:  # noqa: BLE001 - the server may come later; start anyway
            log.warning("intake: Prefect API not ready yet (%s)", type(exc).__name__)
        await asyncio.to_thread(inventory)  # loaded before the first alert needs it
        dispatcher.start()  # also what a previous intake stored and did not dispatch
        # Everything loaded so far (FastAPI, Prefect's client, pydantic models: ~1M
        # objects) lives as long as the process: out of the collector's full passes,
        # which otherwise walk it all while a post waits for its 202.
        gc.collect()
        gc.freeze()
        yield
        await dispatcher.stop()
        await starter.close()
        storing.shutdown(wait=True)
        outbox.close()

    app = FastAPI(title="Contingency alert intake", version="0.1.0", lifespan=lifespan)
    app.state.metrics = metrics  # the hook other code calls: app.state.metrics.incident_outcome()
    app.state.outbox = outbox
    add_board(app, token, _board_auth(settings), inventory)

    def reject(endpoint: str, reason: str, exc: HTTPException) -> HTTPException:
        metrics.rejected.labels(endpoint=endpoint, reason=reason).inc()
        return exc

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token):
            raise HTTPException(
                401, "missing or bad bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    def unauthenticated(path: str, client: str, reason: str, exc: HTTPException) -> HTTPException:
        """A request that failed authentication: 401 while its address is within the small
        unauthenticated budget, 429 past it. It never spends the authenticated budget, so a
        flood of these never 429s a sender with the token from the same address. The
        connection is closed (an unread body is not read on)."""
        wait = unauth_bucket.take((client, ""))
        if wait:
            headers = {"Retry-After": unauth_bucket.retry_after(wait), "Connection": "close"}
            return reject(
                path,
                "unauthenticated_rate_limited",
                HTTPException(429, "too many unauthenticated requests", headers=headers),
            )
        headers = {**(exc.headers or {}), "Connection": "close"}
        return reject(path, reason, HTTPException(exc.status_code, exc.detail, headers=headers))

    async def parse(request: Request, model: type[P], signed_by: str | None = None) -> P:
        """Auth, then the rate limit, then the body: an unauthenticated caller spends only
        its own small budget and learns nothing about the body.

        ``signed_by`` is "grafana" or "generic" for endpoints that accept an HMAC signature.
        A signature covers the body, so for those the headers are checked first (present,
        well-formed, timestamp fresh), then at most the body limit is read and verified.
        """
        path = request.scope["path"]
        client = request.client.host if request.client else "unknown"
        signature_check = None
        if signed_by == "grafana" and grafana_secrets:
            signature_check = "grafana"
        elif (
            signed_by == "generic"
            and generic_secrets
            and request.headers.get("x-contingency-signature") is not None
        ):
            signature_check = "generic"  # signature given: it must verify; else bearer
        try:
            if signature_check is None:
                authorize(request)
            else:
                precheck_signature(signature_check, request)
        except HTTPException as exc:
            reason = "auth" if signature_check is None else "signature"
            raise unauthenticated(path, client, reason, exc) from None
        body: bytes | None = None
        if signature_check is not None:
            body = await read_body(request)
            verify_signature(signature_check, request, body, client)
        wait = bucket.take((client, path))
        if wait:
            raise reject(
                path,
                "rate_limited",
                HTTPException(
                    429, "too many requests", headers={"Retry-After": bucket.retry_after(wait)}
                ),
            )
        if "json" not in request.headers.get("content-type", "application/json"):
            raise reject(path, "content_type", HTTPException(415, "content type must be JSON"))
        if body is None:
            body = await read_body(request)
        try:
            return model.model_validate_json(body or b"null")
        except ValidationError as exc:
            raise reject(
                path,
                "invalid",
                HTTPException(422, {"error": "invalid body", "problems": _readable(exc)}),
            ) from None

    async def read_body(request: Request) -> bytes:
        try:
            return await read_limited(
                request.headers.get("content-length"),
                request.stream(),
                settings.intake_max_body_bytes,
            )
        except BodyTooLarge as exc:
            raise reject(request.scope["path"], "too_large", HTTPException(413, str(exc))) from None

    def precheck_signature(kind: str, request: Request) -> None:
        h = request.headers
        try:
            if kind == "grafana":
                precheck_grafana(
                    h.get("x-grafana-alerting-signature"), h.get(settings.grafana_timestamp_header)
                )
            else:
                precheck_generic(h.get("x-contingency-signature"), h.get("x-contingency-timestamp"))
        except SignatureError as exc:
            raise HTTPException(401, str(exc)) from None

    def verify_signature(kind: str, request: Request, body: bytes, client: str) -> None:
        path = request.scope["path"]
        h = request.headers
        try:
            if kind == "grafana":
                verify_grafana(
                    grafana_secrets,
                    body,
                    h.get("x-grafana-alerting-signature"),
                    h.get(settings.grafana_timestamp_header),
                )
                return
            digest = verify_generic(
                generic_secrets,
                body,
                h.get("x-contingency-signature"),
                h.get("x-contingency-timestamp"),
            )
        except SignatureError as exc:
            raise unauthenticated(path, client, "signature", HTTPException(401, str(exc))) from None
        if not replays.check_and_add(digest):
            raise unauthenticated(
                path, client, "replay", HTTPException(401, "signature already used")
            )

    def wait_of(request: Request) -> float:
        raw = request.query_params.get("wait")
        if raw is None:
            return settings.intake_ack_wait_s
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= 25:
            raise reject(
                request.scope["path"],
                "invalid",
                HTTPException(422, {"error": "invalid query", "problems": ["wait: 0 to 25 s"]}),
            )
        return wait

    async def start_all(
        request: Request, alerts: list[Alert], undated: frozenset[int] = frozenset()
    ) -> Response:
        """Store the alerts (one durable transaction), then answer 202; the dispatcher
        starts or joins their incidents. With a wait, the answer carries the incidents
        known by then; the rest say "queued". The answer is serialized once, here.
        ``undated``: positions of alerts that came without a start time of their own."""
        path = request.scope["path"]
        wait = wait_of(request)
        rows = [
            (a.model_dump_json(), a.priority, i in undated, a.fingerprint)
            for i, a in enumerate(alerts)
        ]
        began = time.perf_counter()
        try:
            ids = await asyncio.get_running_loop().run_in_executor(storing, outbox.add, rows)
            request.state.store_s = time.perf_counter() - began
        except (sqlite3.Error, OSError) as exc:  # not stored: the sender must send again
            log.error("intake: alerts not stored (%s: %s)", type(exc).__name__, exc)
            metrics.rejected.labels(endpoint=path, reason="not_stored").inc()
            return Response(
                '{"detail": "the alerts could not be stored; send them again"}',
                503,
                headers={"Retry-After": "5"},
                media_type="application/json",
            )
        for alert in alerts:
            metrics.received.labels(source=alert.source, status=alert.status).inc()
        dispatcher.start()
        dispatcher.poke()
        known = await dispatcher.answers(ids, wait) if wait > 0 else {}
        refs = [
            known.get(rid) or IncidentRef(fingerprint=a.fingerprint, status=a.status, note=QUEUED)
            for rid, a in zip(ids, alerts, strict=True)
        ]
        answer = IntakeResponse(accepted=len(alerts), incidents=refs)
        return Response(answer.model_dump_json(), 202, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 if incidents can be started, else 503 naming the failing checks.
        No token (load balancers probe it); details never carry secrets."""
        ready, body = await readiness.verdict()
        return JSONResponse(body, 200 if ready else 503, headers={"Cache-Control": "no-store"})

    @app.post("/webhook/alertmanager", status_code=202, response_model=IntakeResponse)
    async def alertmanager(request: Request) -> Response:
        """Alertmanager webhook (version 4); firing alerts start incidents."""
        payload = await parse(request, AlertmanagerPayload)
        return await start_all(request, payload.normalized())

    @app.post("/webhook/generic", status_code=202, response_model=IntakeResponse)
    async def generic(request: Request) -> Response:
        """Generic JSON alerts; see ``GenericPayload`` for the schema."""
        payload = await parse(request, GenericPayload, signed_by="generic")
        undated = frozenset(i for i, a in enumerate(payload.alerts) if a.starts_at is None)
        return await start_all(request, payload.normalized(), undated)

    @app.post("/webhook/grafana", status_code=202, response_model=IntakeResponse)
    async def grafana(request: Request) -> Response:
        """Grafana alerting webhook (version 1), HMAC-signed when secrets are configured."""
        payload = await parse(request, GrafanaPayload, signed_by="grafana")
        return await start_all(request, payload.normalized())

    # Outcomes and durations come from Prefect (finished incident runs), read on scrape.
    outcomes = IncidentOutcomes(metrics) if isinstance(starter, IncidentStarter) else None

    async def read_prefect() -> None:
        assert outcomes is not None and isinstance(starter, IncidentStarter)
        try:
            await outcomes.refresh(await starter.client())
            metrics.runs_waiting.set(await starter.waiting_runs())
        except Exception as exc:  # noqa: BLE001 - intake counters still render
            log.warning("intake: incident outcomes not read from Prefect (%s)", exc)

    reading: dict[str, asyncio.Task[None]] = {}
    # stored → dispatched, read from the outbox on scrape (the dispatcher's process
    # writes when each row was done); only rows dispatched since this intake started
    dispatched = [time.time()]

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """The intake's counters, and the incident figures read from Prefect. A read
        that takes longer than ``METRICS_PREFECT_WAIT_S`` (Prefect busy in a storm)
        goes on in the background: this scrape shows the last figures, never times out."""
        metrics.queue_depth.set(await asyncio.to_thread(outbox.depth))
        for done_at, seconds in await asyncio.to_thread(outbox.dispatched_since, dispatched[0]):
            metrics.dispatch_seconds.observe(max(seconds, 0.0))
            dispatched[0] = done_at
        if isinstance(dispatcher, DispatchProcess):
            dispatcher.sync_metrics()
        if outcomes is not None:
            task = reading.get("task")
            if task is None or task.done():
                task = reading["task"] = asyncio.create_task(read_prefect())
            await asyncio.wait({task}, timeout=METRICS_PREFECT_WAIT_S)
        return Response(metrics.render(), media_type=metrics.content_type)

    # The routes above document the webhooks (OpenAPI); requests take the fast lane.
    webhooks = {
        "/webhook/alertmanager": alertmanager,
        "/webhook/generic": generic,
        "/webhook/grafana": grafana,
    }
    return FastLane(app, webhooks)


def app_from_env() -> FastLane:
    """Factory for ``uvicorn --factory contingency.intake.app:app_from_env``."""
    return create_app()
