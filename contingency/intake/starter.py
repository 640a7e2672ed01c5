"""Start incident flow runs from alerts, de-duplicated by Prefect idempotency keys.

A re-sent firing alert whose incident *ended without handling it* (Crashed, or
Interrupted at a gate) is never swallowed: the intake starts a successor run whose
idempotency key is derived from the dead run (``contingency.runtime.incident_runs``), so every
replica, and the reconciler, agree on one successor.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType

from contingency.intake.dedup import AnsweredCache
from contingency.intake.schemas import IncidentRef
from contingency.runtime.incident_runs import (
    MAX_SUCCESSORS,
    ended_unhandled,
    generation,
    successor_key,
)
from inventory.alert import Alert
from inventory.correlation import CAUSE_TAG, Target, parse_cause_tag
from tasks.gate.watch import RESOLVED_TAG
from tasks.prefect_api import get_client
from tasks.report.related import absorbed_artifact

log = logging.getLogger("contingency.intake")
SUCCESSOR_TAG = "successor-of:"
"""Tag prefix of a run started because the alert's earlier run died: ``successor-of:<id>``."""
ALREADY_RUNNING = "already running"


def _state_name(run: FlowRun) -> str:
    return run.state.name if run.state is not None and run.state.name else "unknown"


@dataclass(frozen=True)
class NextStep:
    """What to do with the run Prefect answered for an idempotency key.

    ``successor``: the idempotency key to create next (the run died without handling the
    alert). None: answer with this run and ``note`` (it is alive or finished normally, or
    the chain is at its limit and ``stopped`` is set: a human must look).
    """

    successor: str | None
    note: str
    stopped: bool = False


def next_step(run: FlowRun, key: str, dead: FlowRun | None = None) -> NextStep:
    """Pure decision for an *existing* run found under ``key`` (the key that was posted);
    ``dead`` is the dead run this answer already stepped over to reach it, if any.

    The successor key is derived from the run's own idempotency key and id, so the chain
    is the same whichever replica (or the reconciler) builds it.
    """
    if not ended_unhandled(run):
        if dead is None:
            return NextStep(None, ALREADY_RUNNING)
        return NextStep(
            None,
            f"{ALREADY_RUNNING} (it took over from the earlier incident {dead.id}, which "
            f"ended without handling the alert: {_state_name(dead)})",
        )
    own_key = run.idempotency_key or key
    if generation(own_key) >= MAX_SUCCESSORS:
        return NextStep(
            None,
            f"the incident {run.id} ended without handling the alert ({_state_name(run)}) "
            f"and so did the {generation(own_key)} incident(s) before it; no new incident "
            "was started: a human must look",
            stopped=True,
        )
    return NextStep(successor_key(own_key, run.id), "")


def started_note(dead: FlowRun) -> str:
    """The answer's note when a successor of ``dead`` was started now."""
    return (
        f"the earlier incident {dead.id} ended without handling the alert "
        f"({_state_name(dead)}); a new incident was started"
    )


OPEN_TYPES = [StateType.PAUSED, StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
"""States of an incident that has not ended."""


class IncidentStarter:
    """Creates one flow run of the incident deployment per firing alert.

    The idempotency key (fingerprint + start time) makes re-sends and other intake
    replicas agree without shared memory: Prefect returns the existing run. Keys this
    replica has seen answered are kept in ``cache`` (the fast path: a re-send is answered
    without an API call), and concurrent posts of one new key share one API call.
    """

    CACHED_NOTE = "already running (answered by this replica)"
    JOINED_NOTE = "already open (same fingerprint, no start time given)"

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
        self._client_lock = asyncio.Lock()
        self._inflight: dict[str, asyncio.Future[str]] = {}

    async def api_client(self) -> PrefectClient:
        """The intake's Prefect client, without looking the deployment up (readiness)."""
        async with self._client_lock:
            if self._client is None:
                client = get_client()
                await client.__aenter__()
                self._client = client
            return self._client

    async def _ensure(self) -> tuple[PrefectClient, UUID]:
        client = await self.api_client()
        async with self._lock:
            if self._deployment_id is None:
                dep = await client.read_deployment_by_name(self.deployment_name)
                self._deployment_id = dep.id
            return client, self._deployment_id

    async def warm_up(self) -> None:
        await self._ensure()

    async def client(self) -> PrefectClient:
        """The intake's Prefect client (for reads such as the outcome metrics)."""
        return (await self._ensure())[0]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    async def start(
        self,
        alert: Alert,
        join_open: bool = False,
        tags: list[str] | None = None,
        work_queue: str | None = None,
    ) -> IncidentRef:
        """Start or find ``alert``'s incident. ``join_open``: the alert carries no start
        time of its own (a generic sender that omits ``starts_at``), so its key changes
        every minute; while an incident of its fingerprint is open, a re-send joins it.
        ``tags`` go on a run created now (its cause); ``work_queue``: the pool's queue
        it waits in (by severity)."""
        if alert.status == "resolved":
            return await self.mark_resolved(alert)
        if join_open and (found := await self.open_runs(alert.fingerprint, limit=1)):
            return self._ref(alert, str(found[0].id), deduplicated=True, note=self.JOINED_NOTE)
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
            run_id, created, note = await self._resolve(alert, key, tags or [], work_queue)
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
        # The cache may answer this key with this run for ``ttl_s`` even if the run dies
        # meanwhile; the TTL is short (30 s default) so a re-send after that asks Prefect.
        self.cache.put(key, run_id)
        return self._ref(alert, run_id, deduplicated=not created, note=note)

    async def _resolve(
        self, alert: Alert, key: str, extra: list[str], queue: str | None
    ) -> tuple[str, bool, str]:
        """The run that handles ``key``: (flow run id, True if created now, note).

        An existing run that ended without handling the alert is followed by a successor
        (created, or found if another replica created it first), at most
        ``MAX_SUCCESSORS`` deep.
        """
        run_id, existing = await self._create(alert, key, extra=extra, queue=queue)
        if existing is None:
            return run_id, True, "incident started"
        dead: FlowRun | None = None  # the last dead run this answer stepped over
        while True:
            step = next_step(existing, key, dead)
            if step.successor is None:
                if step.stopped:
                    log.warning("intake: alert %r: %s", alert.fingerprint[:128], step.note)
                return str(existing.id), False, step.note
            key = step.successor
            run_id, found = await self._create(
                alert, key, successor_of=str(existing.id), extra=extra, queue=queue
            )
            if found is None:
                log.warning(
                    "intake: incident %s ended without handling alert %r (%s); started %s",
                    existing.id,
                    alert.fingerprint[:128],
                    _state_name(existing),
                    run_id,
                )
                return run_id, True, started_note(existing)
            dead, existing = existing, found

    async def _create(
        self,
        alert: Alert,
        key: str,
        successor_of: str | None = None,
        extra: list[str] | None = None,
        queue: str | None = None,
    ) -> tuple[str, FlowRun | None]:
        """Ask Prefect for the run of ``key``: (flow run id, None if it was created now,
        else the existing run as Prefect answered it, state included)."""
        client, deployment_id = await self._ensure()
        tags = ["incident", f"source:{alert.source}", f"fingerprint:{alert.fingerprint}"]
        if successor_of is not None:
            tags.append(f"{SUCCESSOR_TAG}{successor_of}")
        tags += extra or []
        body = DeploymentFlowRunCreate(
            parameters={"alert": alert.model_dump(mode="json")},
            idempotency_key=key,
            tags=tags,
            work_queue_name=queue,
        )
        # The API answers 201 when it created the run and 200 when the idempotency key
        # matched an existing one; the typed client method hides that, so post directly.
        # The 200 body is the existing run read by the server (state included): no second
        # call is needed to see whether it died.
        async with self._api:
            resp = await client._client.post(  # noqa: SLF001
                f"/deployments/{deployment_id}/create_flow_run",
                json=body.model_dump(mode="json", exclude_unset=True),
            )
        data = resp.json()
        if resp.status_code == 201:
            return str(data["id"]), None
        return str(data["id"]), FlowRun.model_validate(data)

    @staticmethod
    def _ref(alert: Alert, run_id: str, *, deduplicated: bool, note: str) -> IncidentRef:
        return IncidentRef(
            fingerprint=alert.fingerprint,
            status="firing",
            flow_run_id=run_id,
            deduplicated=deduplicated,
            note=note,
        )

    async def open_runs(self, fingerprint: str, limit: int | None = None) -> list[FlowRun]:
        """The incidents of ``fingerprint`` that have not ended (waiting, running, paused)."""
        client, _ = await self._ensure()
        async with self._api:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[f"fingerprint:{fingerprint}"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_TYPES)),
                ),
                limit=limit,
            )

    async def mark_resolved(self, alert: Alert) -> IncidentRef:
        """Tag the alert's open incidents ``alert-resolved``: a waiting gate then closes
        as "cleared" and nothing runs. Starts no incident."""
        client, _ = await self._ensure()
        runs = await self.open_runs(alert.fingerprint)
        async with self._api:
            for run in runs:
                await client.update_flow_run(run.id, tags=[*run.tags, RESOLVED_TAG])
        return IncidentRef(
            fingerprint=alert.fingerprint,
            status="resolved",
            note=f"resolved: {len(runs)} open incident(s) marked, none started",
        )

    async def open_causes(self) -> dict[Target, tuple[str, str]]:
        """Open incidents by cause: ``(kind, name)`` → ``(flow run id, fingerprint)``."""
        client, _ = await self._ensure()
        runs: list[FlowRun] = []
        while True:  # the API answers at most 200 a page
            async with self._api:
                page = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        tags=FlowRunFilterTags(all_=["incident", CAUSE_TAG]),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_TYPES)),
                    ),
                    limit=200,
                    offset=len(runs),
                )
            runs += page
            if len(page) < 200:
                break
        causes: dict[Target, tuple[str, str]] = {}
        for run in sorted(runs, key=lambda r: r.created or r.expected_start_time or 0):
            fp = next((t.removeprefix("fingerprint:") for t in run.tags if
                       t.startswith("fingerprint:")), "")  # fmt: skip
            for tag in run.tags:
                if (cause := parse_cause_tag(tag)) is not None:
                    causes.setdefault(cause, (str(run.id), fp))
        return causes

    async def ended(self, run_ids: list[str]) -> dict[str, datetime]:
        """Of ``run_ids``, those that ended: run id → when (for absorbed alerts)."""
        if not run_ids:
            return {}
        client, _ = await self._ensure()
        async with self._api:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(r) for r in run_ids]))
            )
        out = {}
        for run in runs:
            if run.state is not None and run.state.is_final():
                out[str(run.id)] = run.end_time or run.state.timestamp or datetime.now(UTC)
        return out

    async def waiting_runs(self) -> int:
        """Incident runs created and not yet taken by a worker (Scheduled, Late)."""
        client, _ = await self._ensure()
        async with self._api:
            return int(
                await client.count_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        tags=FlowRunFilterTags(all_=["incident"]),
                        state=FlowRunFilterState(
                            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                        ),
                    )
                )
            )

    async def record_absorbed(self, run_id: str, alerts: list[Alert]) -> None:
        """Append absorbed alerts to the open incident's record (a table artifact per
        batch under key ``absorbed-<run id>``; the report reads every version)."""
        client, _ = await self._ensure()
        async with self._api:
            await client.create_artifact(absorbed_artifact(run_id, alerts))
