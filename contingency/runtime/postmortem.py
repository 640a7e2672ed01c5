"""Post-mortem of a flow run whose process died (killed, OOM, segfault) before it could
report: the fork server runs this in a fresh child when a run's process exits badly.

It only marks the run ``Crashed`` at once, naming the cause, if the run is not final
yet. Everything else — the report, the pages, releasing the target lock, re-opening a
gate that had not acted — is the reconciler's (contingency/runtime/reconciler.py), which reads
the same truth from Prefect whatever died, so there is one story-teller, not two.

    python -m contingency.runtime.postmortem RUN_ID EXIT_CODE
"""

from __future__ import annotations

import sys
from uuid import UUID

from prefect.states import Crashed

from tasks.prefect_api import get_client


def _cause(exit_code: int) -> str:
    if exit_code > 128:
        return f"killed by signal {exit_code - 128}"
    return f"exited with status {exit_code}"


def postmortem(run_id: str, exit_code: int) -> str:
    """Mark run ``run_id`` Crashed if its process died before it reached a final state."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        current = run.state
        if current is not None and (current.is_final() or current.is_cancelling()):
            return f"{run_id}: {current.name}; nothing to do"
        state = current.name.lower() if current and current.name else "starting"
        cause = _cause(exit_code)
        client.set_flow_run_state(
            UUID(run_id),
            Crashed(message=f"the flow run's process {cause} while {state}"),
            force=True,
        )
    return f"{run_id}: crashed ({cause}) while {state}; the reconciler finishes it"


if __name__ == "__main__":
    print(postmortem(sys.argv[1], int(sys.argv[2])))
