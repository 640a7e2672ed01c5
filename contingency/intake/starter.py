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

from contingency.intake.schemas import IncidentRef
from inventory.alert import Alert
from tasks.gate_watch import RESOLVED_TAG


class IncidentStarter:
    """Creates one flow run of the incident deployment per firing alert.

    The idempotency key (fingerprint + start time) makes re-sends and other intake
    replicas agree without shared memory: Prefect returns the existing run.
    """

    def __init__(self, deployment_name: str) -> None:
        self.deployment_name = deployment_name
        self._client: PrefectClient | None = None
        self._deployment_id: UUID | None = None
        self._lock = asyncio.Lock()

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

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def start(self, alert: Alert) -> IncidentRef:
        if alert.status == "resolved":
            return await self.mark_resolved(alert)
        client, deployment_id = await self._ensure()
        body = DeploymentFlowRunCreate(
            parameters={"alert": alert.model_dump(mode="json")},
            idempotency_key=alert.idempotency_key(),
            tags=["incident", f"source:{alert.source}", f"fingerprint:{alert.fingerprint}"],
        )
        # The API answers 201 when it created the run and 200 when the idempotency key
        # matched an existing one; the typed client method hides that, so post directly.
        resp = await client._client.post(  # noqa: SLF001
            f"/deployments/{deployment_id}/create_flow_run",
            json=body.model_dump(mode="json", exclude_unset=True),
        )
        run_id = resp.json()["id"]
        dedup = resp.status_code != 201
        return IncidentRef(
            fingerprint=alert.fingerprint,
            status="firing",
            flow_run_id=str(run_id),
            deduplicated=dedup,
            note="already running" if dedup else "incident started",
        )

    async def mark_resolved(self, alert: Alert) -> IncidentRef:
        """Tag the alert's open incidents ``alert-resolved``: a waiting gate then closes
        as "cleared" and nothing runs. Starts no incident."""
        client, _ = await self._ensure()
        open_types = [StateType.PAUSED, StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
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
