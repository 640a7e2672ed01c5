"""The scale-out configuration: the same end-to-end path on a Prefect server backed by
PostgreSQL (the machine's server on 127.0.0.1:5432), via ``contingency up --database-url``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.launcher import crash_service
from inventory.loader import load_inventory
from tests.fixtures_pg import PG, pg_admin
from tests.fixtures_stack import Stack, service_pid, start_stack, stop_stack, wait_for


@pytest.fixture
def pg_stack(tmp_path: Path) -> Iterator[Stack]:
    db = f"contingency_test_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{db}"')
    base = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    saved = os.environ.get("PREFECT_API_URL")
    stack = None
    try:
        stack = start_stack(tmp_path / "state", database_url=f"{base}/{db}")
        os.environ["PREFECT_API_URL"] = stack.api_url
        from contingency.runtime.stack import stack_client

        with stack_client(stack.settings):
            yield stack
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
        stop_stack(tmp_path / "state")
        pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_end_to_end_on_postgresql(pg_stack: Stack) -> None:
    url = load_inventory(pg_stack.inventory).service("web").health.url  # type: ignore[union-attr]
    old_pid = wait_for(lambda: service_pid(url), what="web up")
    crash_service(pg_stack.settings, "web")
    labels = {"alertname": "ServiceDown", "service": "web", "test": uuid.uuid4().hex}
    resp = pg_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["incidents"][0]["flow_run_id"]

    def final():  # type: ignore[no-untyped-def]
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(uuid.UUID(run_id))
        return run if run.state and run.state.is_final() else None

    run = wait_for(final, timeout_s=120, what="incident finished")
    assert run.state.is_completed(), run.state
    assert wait_for(lambda: service_pid(url), what="web back") != old_pid
    info = (pg_stack.state_dir / "stack.json").read_text()
    assert '"database": "postgresql"' in info
    # the target lock's concurrency limit and the work pool are read before they are
    # created: PostgreSQL logs no duplicate-name violation (59 tracebacks before)
    incidents = 3
    for _ in range(incidents - 1):
        crash_service(pg_stack.settings, "web")
        labels = {"alertname": "ServiceDown", "service": "web", "test": uuid.uuid4().hex}
        resp = pg_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
        run_id = resp.json()["incidents"][0]["flow_run_id"]

        def ended(rid: str = run_id):  # type: ignore[no-untyped-def]
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(uuid.UUID(rid)).state
            return state is not None and state.is_final()

        wait_for(ended, timeout_s=120, what="incident finished")
    server_log = (pg_stack.state_dir / "run" / "server.log").read_text(errors="replace")
    assert "UniqueViolation" not in server_log and "duplicate key" not in server_log
