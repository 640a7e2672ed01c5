"""Apply the deployments declared in prefect.yaml to a Prefect server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow, load_flow_from_entrypoint

from tasks.prefect_api import get_client

# Every flow run sends Prefect's heartbeat events (every 30 s, Prefect's minimum): the
# reconciler reads them to tell a live incident from one whose process died.
RUN_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
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


def locked_job_template(command: str, work_dir: Path) -> dict[str, Any]:
    """The process pool's base job template with the command, the environment and the
    working directory fixed: no ``{{ placeholder }}`` for them and no such variable,
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
        "working_dir": str(work_dir),
    }
    return {"job_configuration": job, "variables": variables}


async def ensure_work_pool(
    name: str, command: str | None = None, work_dir: Path | None = None
) -> None:
    """Create the process work pool, or lock down an existing one's job template."""
    from prefect.client.schemas.actions import WorkPoolUpdate

    template = locked_job_template(command, work_dir or Path.cwd()) if command is not None else None
    async with get_client() as client:
        try:
            await client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template or {})
            )
        except ObjectAlreadyExists:
            if template is not None:
                await client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))


async def apply_deployments(
    work_pool: str,
    path: Path | None = None,
    env: dict[str, str] | None = None,
    work_dir: Path | None = None,
    command: str | None = None,
) -> list[str]:
    """Create or update every deployment; returns ``flow/deployment`` names.

    The code is the installed distribution (module-path entrypoints), so the only pull
    step sets the working directory: without one, Prefect copies the worker's whole
    current directory into a temporary workspace before every run.
    """
    pull = [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": str(work_dir or Path.cwd())
            }
        }
    ]
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
                schedules=schedules(spec),
                pull_steps=pull,
            )
            names.append(f"{flow.name}/{spec['name']}")
    return names


def schedules(spec: dict[str, Any]) -> list[Any]:
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
                active=entry.get("active", True),
                parameters=entry.get("parameters") or {},
            )
        )
    return out
