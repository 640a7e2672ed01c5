"""Wait for flow runs to reach a final state (used by the demo, tests and benchmarks)."""

from __future__ import annotations

import time
from uuid import UUID

from prefect.client.schemas.objects import FlowRun

from tasks.prefect_api import get_client


def wait_for_run(
    run_id: str | UUID, timeout_s: float = 120, poll_s: float = 0.5, final_or_paused: bool = False
) -> FlowRun:
    """Poll the API until the run is final (or paused, if asked); raise on timeout."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(UUID(str(run_id)))
            state = run.state
            if state and (state.is_final() or (final_or_paused and state.is_paused())):
                return run
            if time.monotonic() > deadline:
                name = state.name if state else "no state"
                raise TimeoutError(f"flow run {run_id} still {name} after {timeout_s:.0f}s")
            time.sleep(poll_s)
