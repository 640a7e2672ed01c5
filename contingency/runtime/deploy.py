"""Apply the deployments declared in prefect.yaml to a Prefect server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.flows import Flow, load_flow_from_entrypoint

from tasks.prefect_api import get_client

# Every flow run sends Prefect's heartbeat events (every 30 s, Prefect's minimum): the
# reconciler reads them to tell a live incident from one whose process died.
RUN_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
FLOW_RUN_COMMAND = "contingency-flow-run"
"""The pool's command: a console script of this package (contingency/runtime/forkexec.py),
found on the worker's PATH — no path of the machine that deployed is written anywhere."""
PROJECT_FILE = Path(__file__).resolve().parents[2] / "prefect.yaml"


def packaged_prefect_yaml() -> Path:
    """prefect.yaml beside the source tree, or the copy shipped inside the package."""
    if PROJECT_FILE.exists():
        return PROJECT_FILE
    return Path(__file__).resolve().parents[1] / "prefect.yaml"


def read_deployments(path: Path | None = None) -> list[dict[str, Any]]:
    data = yaml.safe_load((path or packaged_prefect_yaml()).read_text(encoding="utf-8"))
    deployments = data.get("deployments") or []
    if not deployments:
        raise ValueError(f"{path}: no deployments declared")
    return deployments


LOCKED_VARIABLES = ("name", "labels", "stream_output")
"""The only job variables a deployment or a flow run may set on this pool."""


def locked_job_template(command: str = FLOW_RUN_COMMAND) -> dict[str, Any]:
    """The process pool's base job template with the command, the environment and the
    working directory fixed: no ``{{ placeholder }}`` for them and no such variable
    (the working directory is the worker's own: ``contingency-flow-run`` moves into
    ``<its state dir>/work``),
    and ``additionalProperties: false``, so the server refuses (422) any deployment or
    flow run whose ``job_variables`` try to set them (else whoever holds the API auth
    string could run any command as the worker's user). ``env`` needs this: the worker
    merges a run's env into a literal env even without a placeholder."""
    from prefect.workers.process import ProcessWorker

    base = ProcessWorker.get_default_base_job_template()
    props = base["variables"]["properties"]
    variables = {
        **base["variables"],
        "properties": {k: props[k] for k in LOCKED_VARIABLES},
        "additionalProperties": False,
    }
    variables.pop("required", None)
    job = {
        "command": command,
        "env": dict(RUN_ENV),
        "labels": "{{ labels }}",
        "name": "{{ name }}",
        "stream_output": "{{ stream_output }}",
    }
    return {"job_configuration": job, "variables": variables}


QUEUE_PRIORITY = {"critical": 1, "default": 2, "low": 3}
"""The pool's queues (lower runs first when the pool is at its cap): the intake puts an
incident in one by its alert's severity (``contingency/intake/dispatch.QUEUES``)."""


async def ensure_work_pool(
    name: str, locked: bool = True, command: str | None = None, concurrency: int | None = None
) -> None:
    """Create the process work pool, or lock down an existing one's job template; set its
    concurrency cap (runs paused at a gate do not count) and its severity queues."""
    from prefect.client.schemas.actions import WorkPoolUpdate

    template = locked_job_template(command or FLOW_RUN_COMMAND) if locked else None
    async with get_client() as client:
        try:  # read first: no server logs a duplicate-name error for an existing pool
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            pool = None
            with contextlib.suppress(ObjectAlreadyExists):  # created just now elsewhere
                await client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type="process",
                        base_job_template=template or {},
                        concurrency_limit=concurrency,
                    )
                )
        if pool is not None and (template is not None or pool.concurrency_limit != concurrency):
            update: dict[str, Any] = {"concurrency_limit": concurrency}
            if template is not None:
                update["base_job_template"] = template
            await client.update_work_pool(name, WorkPoolUpdate(**update))
        await ensure_queues(client, name)


async def ensure_queues(client: Any, pool: str) -> None:
    """The severity queues with their priorities (read first, then created or updated)."""
    existing = {q.name: q for q in await client.read_work_queues(work_pool_name=pool)}
    for queue, priority in sorted(QUEUE_PRIORITY.items(), key=lambda kv: kv[1]):
        found = existing.get(queue)
        if found is None:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_queue(name=queue, work_pool_name=pool, priority=priority)
        elif found.priority != priority:
            await client.update_work_queue(found.id, priority=priority)


async def apply_deployments(
    work_pool: str,
    path: Path | None = None,
    env: dict[str, str] | None = None,
    command: str | None = None,
    activate: Callable[[str, dict[str, Any]], bool] | None = None,
) -> list[str]:
    """Create or update every deployment; returns ``flow/deployment`` names.

    ``activate(deployment, schedule parameters)``: True turns that schedule on whatever
    prefect.yaml says (the lab's game days, ``game_days_in``).

    The code is the installed distribution (module-path entrypoints), so there are no
    pull steps: nothing of the machine that deployed (paths, checkout) is recorded, and
    a worker anywhere runs the flows from its own installation.
    """
    # The command and the environment live in the work pool's locked template
    # (ensure_work_pool); a pool without one (e.g. made by hand) still gets them here.
    job_variables: dict[str, Any] = {}
    if command or env:
        job_variables = {"env": {**RUN_ENV, **(env or {})}}
        if command:
            job_variables["command"] = command
    names = []
    async with get_client() as client:
        for spec in read_deployments(path):
            flow: Flow[..., Any] = load_flow_from_entrypoint(spec["entrypoint"])
            flow_id = await client.create_flow_from_name(flow.name)
            pool = spec.get("work_pool") or {}
            await client.create_deployment(
                flow_id=flow_id,
                name=spec["name"],
                entrypoint=spec["entrypoint"],
                description=spec.get("description"),
                tags=spec.get("tags") or [],
                parameters=spec.get("parameters") or {},
                work_pool_name=work_pool or pool.get("name"),
                work_queue_name=pool.get("work_queue_name") or "default",
                parameter_openapi_schema=flow.parameters.model_dump(mode="json"),
                enforce_parameter_schema=True,  # a run with parameters off-schema is refused
                job_variables=job_variables,
                concurrency_limit=spec.get("concurrency_limit"),
                schedules=schedules(spec, activate),
                pull_steps=[],
            )
            names.append(f"{flow.name}/{spec['name']}")
    return names


def schedules(
    spec: dict[str, Any], activate: Callable[[str, dict[str, Any]], bool] | None = None
) -> list[Any]:
    """prefect.yaml ``schedules`` (cron or interval entries) as API objects.

    >>> [s.schedule.cron for s in schedules({"schedules": [{"cron": "0 3 * * *"}]})]
    ['0 3 * * *']
    """
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    out = []
    for entry in spec.get("schedules") or []:
        tz = entry.get("timezone") or "UTC"
        if "cron" in entry:
            sched: Any = CronSchedule(cron=entry["cron"], timezone=tz)
        elif "interval" in entry:
            sched = IntervalSchedule(interval=entry["interval"], timezone=tz)
        else:
            raise ValueError(f"deployment {spec.get('name')!r}: a schedule needs cron or interval")
        out.append(
            DeploymentScheduleCreate(
                schedule=sched,
                active=entry.get("active", True)
                or bool(activate and activate(spec["name"], entry.get("parameters") or {})),
                parameters=entry.get("parameters") or {},
            )
        )
    return out


def game_days_in(inv: Any) -> Callable[[str, dict[str, Any]], bool]:
    """``activate`` for :func:`apply_deployments`: a game-day schedule that the game day
    itself would accept on this inventory (``tasks.actions.faults.plan_fault``: its
    target exists and sits on a drill host) is turned on."""
    from tasks.actions.faults import FaultRefused, plan_fault

    def activate(deployment: str, params: dict[str, Any]) -> bool:
        if deployment != "game-day":
            return False
        try:
            plan_fault(str(params.get("scenario")), str(params.get("target")), inv)
        except FaultRefused:
            return False
        return True

    return activate


def ensure_limits(settings: Any) -> int:
    """Create the concurrency limit of every inventory target once (read first: no
    server logs a duplicate-name error); returns how many were new. A target added to
    the inventory later gets its limit on first use (remediations/rails.py)."""
    from inventory.loader import load_inventory
    from remediations.rails import ensure_limit, lock_name

    inv = load_inventory(settings.inventory_path())
    targets = {*inv.hosts, *inv.services, *inv.datasets, *inv.links}
    with get_client(sync_client=True) as client:
        return sum(ensure_limit(client, lock_name(t)) for t in sorted(targets))
