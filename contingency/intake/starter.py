"""Start incident flow runs from alerts, de-duplicated by Prefect idempotency keys."""

from __future__ import annotations

import asyncio
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType

from contingency.intake.dedup import AnsweredCache
from contingency.intake.schemas import IncidentRef
from inventory.alert import Alert
from tasks.gate_watch import RESOLVED_TAG


class IncidentStarter:
    """Creates one flow run of the incident deployment per firing alert.

    The idempotency key (fingerprint + start time) makes re-sends and other intake
    replicas agree without shared memory: Prefect returns the existing run. Keys this
    replica has seen answered are kept in ``cache`` (the fast path: a re-send is answered
    without an API call), and concurrent posts of one new key share one API call.
    """

    CACHED_NOTE = "already running (answered by this replica)"

    def __init__(
        self, deployment_name: str, cache: AnsweredCache | None = None, api_calls: int = 4
    ) -> None:
        self.deployment_name = deployment_name
        self.cache = cache if cache is not None else AnsweredCache(max_entries=0)
        # At most ``api_calls`` Prefect calls at once: a storm of new alerts queues here
        # instead of making an SQLite-backed server answer 503 (seen with 100 at once).
        self._api = asyncio.Semaphore(api_calls)
        self._client: PrefectClient | None = None
        self._deployment_id: UUID | None = None
        self._lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[str]] = {}

    async def _ensure(self) -> tuple[PrefectClient, UUID]:
        async with self._lock:
            if self._client is None:
                self._client = get_client()
                await self._client.__aenter__()
            if self._deployment_id is None:
                dep = await self._client.read_deployment_by_name(self.deployment_name)
                self._deployment_id = dep.id
        return self._client, self._deployment_id

    async def warm_up(self) -> None:
        await self._ensure()

    async def client(self) -> PrefectClient:
        """The intake's Prefect client (for reads such as the outcome metrics)."""
        return (await self._ensure())[0]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def start(self, alert: Alert) -> IncidentRef:
        if alert.status == "resolved":
            return await self.mark_resolved(alert)
        key = alert.idempotency_key()
        run_id = self.cache.get(key)
        if run_id is not None:
            return self._ref(alert, run_id, deduplicated=True, note=self.CACHED_NOTE)
        pending = self._inflight.get(key)
        if pending is not None:  # the same new key is being created right now: share it
            run_id = await asyncio.shield(pending)
            return self._ref(alert, run_id, deduplicated=True, note="already running")
        pending = asyncio.get_running_loop().create_future()
        self._inflight[key] = pending
        try:
            run_id, created = await self._create(alert, key)
        except asyncio.CancelledError:
            pending.cancel()
            raise
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            self._inflight.pop(key, None)
        pending.set_result(run_id)
        self.cache.put(key, run_id)
        note = "incident started" if created else "already running"
        return self._ref(alert, run_id, deduplicated=not created, note=note)

    async def _create(self, alert: Alert, key: str) -> tuple[str, bool]:
        """Ask Prefect for the run of ``key``: (flow run id, True if it was created now)."""
        client, deployment_id = await self._ensure()
        body = DeploymentFlowRunCreate(
            parameters={"alert": alert.model_dump(mode="json")},
            idempotency_key=key,
            tags=["incident", f"source:{alert.source}", f"fingerprint:{alert.fingerprint}"],
        )
        # The API answers 201 when it created the run and 200 when the idempotency key
        # matched an existing one; the typed client method hides that, so post directly.
        async with self._api:
            resp = await client._client.post(  # noqa: SLF001
                f"/deployments/{deployment_id}/create_flow_run",
                json=body.model_dump(mode="json", exclude_unset=True),
            )
        return str(resp.json()["id"]), resp.status_code == 201

    @staticmethod
    def _ref(alert: Alert, run_id: str, *, deduplicated: bool, note: str) -> IncidentRef:
        return IncidentRef(
            fingerprint=alert.fingerprint,
            status="firing",
            flow_run_id=run_id,
            deduplicated=deduplicated,
            note=note,
        )

    async def mark_resolved(self, alert: Alert) -> IncidentRef:
        """Tag the alert's open incidents ``alert-resolved``: a waiting gate then closes
        as "cleared" and nothing runs. Starts no incident."""
        client, _ = await self._ensure()
        open_types = [StateType.PAUSED, StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
        async with self._api:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[f"fingerprint:{alert.fingerprint}"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_types)),
                )
            )
            for run in runs:
                await client.update_flow_run(run.id, tags=[*run.tags, RESOLVED_TAG])
        return IncidentRef(
            fingerprint=alert.fingerprint,
            status="resolved",
            note=f"resolved: {len(runs)} open incident(s) marked, none started",
        )
