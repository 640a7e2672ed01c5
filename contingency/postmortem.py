"""Post-mortem of a flow run whose process died (killed, OOM, segfault) before it could
report: the fork server runs this in a fresh child when a run's process exits and the
run is not in a final state.

It marks the run ``Crashed``, releases the target lock the run held (its lease id is
recorded in ``<state>/run/leases/<run>.json``; without that the server would release it
after the lease expires), and — for an incident — escalates: every escalation channel
is told that a human must check the target, and a report says what is known (plan,
target, whether it had acted, the last state). Nothing is retried automatically: the
target may be half-way through a remediation.

    python -m contingency.postmortem RUN_ID EXIT_CODE
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.states import Crashed

from inventory.settings import get_settings


def _cause(exit_code: int) -> str:
    if exit_code > 128:
        return f"killed by signal {exit_code - 128}"
    return f"exited with status {exit_code}"


def _tag(tags: list[str], prefix: str) -> str:
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), "")


def _release_lock(run_id: str) -> str:
    from prefect.concurrency._sync import release_concurrency_slots_with_lease

    from remediations.rails import lease_file

    record = lease_file(run_id)
    if not record.exists():
        return ""
    data = json.loads(record.read_text())
    try:
        release_concurrency_slots_with_lease(UUID(data["lease_id"]))
    except Exception as exc:  # noqa: BLE001 - the lease then expires on its own
        return f"could not release the lock of {data['target']} ({type(exc).__name__}); it expires"
    finally:
        record.unlink(missing_ok=True)
    return f"the lock of {data['target']} was released"


def _escalate(run_id: str, name: str, tags: list[str], cause: str, state: str, lock: str) -> None:
    from inventory.loader import load_inventory
    from tasks.notify import Pager
    from tasks.report import Timeline, artifact_key, publish_report, render_report

    settings = get_settings()
    plan, target = _tag(tags, "plan:"), _tag(tags, "target:")
    acted = "acted" in tags
    message = (
        f"the process running this incident {cause} while it was {state}"
        + ("; it had started acting on the target" if acted else "; it had not acted yet")
        + (f"; {lock}" if lock else "")
        + ". A human must check the target: nothing is retried automatically."
    )
    timeline = Timeline()
    timeline.add("crashed", message)
    summary = {"outcome": "crashed", "flow run": run_id, "plan": plan or "—", "target": target}
    markdown = render_report(f"Incident {name} — crashed", summary, timeline, [], {})
    publish_report(markdown, f"incident-{run_id}", settings.reports_path)  # the file
    from prefect.client.schemas.actions import ArtifactCreate

    with get_client(sync_client=True) as client:  # the artifact, on the dead run
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(f"incident-{run_id}"), type="markdown", data=markdown,
                description=f"crashed: {message}"[:500], flow_run_id=UUID(run_id),
            )
        )  # fmt: skip
    pager = Pager(
        load_inventory(settings.inventory_path()),
        settings.language,
        {"alert": name, "target": target or "?", "plan": plan or "?", "summary": message},
    )
    pager.event("escalation")
    pager.flush()


def postmortem(run_id: str, exit_code: int) -> str:
    """Handle the death of run ``run_id``'s process; returns what was done."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        current = run.state
        if current is not None and (
            (current.is_final() and not current.is_crashed()) or current.is_cancelling()
        ):
            return f"{run_id}: {current.name}; nothing to do"
        cause = _cause(exit_code)
        if current is not None and current.is_crashed():
            state = "running"  # the worker saw the exit first and marked it Crashed
        else:
            state = current.name.lower() if current else "starting"
            client.set_flow_run_state(
                UUID(run_id),
                Crashed(message=f"the flow run's process {cause} while {state}"),
                force=True,
            )
        flow = client.read_flow(run.flow_id)
    lock = _release_lock(run_id)
    if flow.name == "incident":
        _escalate(run_id, run.name, list(run.tags), cause, state, lock)
    return f"{run_id}: crashed ({cause}) at {datetime.now(UTC):%H:%M:%S}; {lock or 'no lock held'}"


if __name__ == "__main__":
    print(postmortem(sys.argv[1], int(sys.argv[2])))
