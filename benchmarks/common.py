"""What the benchmarks share: a throw-away embedded stack with the lab on free ports,
and reading when an incident ran its first SSH command."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from rich.console import Console

from contingency.lab.launcher import DEFAULT_SERVICE_PORTS
from contingency.runtime.processes import free_port
from contingency.runtime.stack import StackInfo, up
from inventory.settings import Settings


def start_lab_stack(
    prefix: str, console: Console, polling: dict[str, str] | None = None
) -> tuple[Settings, StackInfo]:
    """`contingency up --lab` in a fresh temporary state dir, every port free."""
    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix=prefix)))
    ports = {name: free_port() for name in DEFAULT_SERVICE_PORTS}
    info = up(
        settings,
        lab=True,
        api_port=0,
        intake_port=0,
        lab_ssh_port=free_port(),
        lab_service_ports=ports,
        polling=polling,
        console=console,
    )
    return settings, info


def first_ssh_start(run_id: str) -> datetime:
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)]))
        )
    starts = [t.start_time for t in tasks if t.name.startswith("ssh") and t.start_time]
    if not starts:
        raise RuntimeError(f"run {run_id} ran no ssh task")
    return min(starts)


def incidents_labelled(key: str, value: str) -> list[FlowRun]:
    """Incident flow runs whose alert carries the label ``key=value``, every page of them."""
    from prefect.client.schemas.filters import FlowRunFilterTags

    found: list[FlowRun] = []
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["incident"])),
                limit=200,
                offset=offset,
            )
            found += [
                r for r in page
                if ((r.parameters.get("alert") or {}).get("labels") or {}).get(key) == value
            ]  # fmt: skip
            if len(page) < 200:
                return found
            offset += 200


@contextmanager
def cpu_busy(n: int) -> Iterator[None]:
    """``n`` CPU-busy processes (``yes > /dev/null``) beside the stack while inside."""
    procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them take their share before anything is measured
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
