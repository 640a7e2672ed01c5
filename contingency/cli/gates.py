"""Open gates and decisions from the command line (the same form as the Prefect UI)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from pydantic import BaseModel

from tasks.gate.triage import AWAIT_TRIAGE
from tasks.prefect_api import get_client, resume_with_input


class OpenGate(BaseModel):
    flow_run_id: str
    name: str
    opened_at: datetime
    age_s: float
    expires_at: datetime | None = None
    live: bool = True
    """False: the run's process is gone (no heartbeat); the reconciler re-opens it."""


def open_gates() -> list[OpenGate]:
    """Incident runs waiting at a gate (state Paused), oldest first."""
    now = datetime.now(UTC)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["incident"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
            )
        )
    from tasks.facts.liveness import dead_runs

    with get_client(sync_client=True) as client:
        dead = {r.id for r in dead_runs(client, list(runs))}
    gates = []
    for run in runs:
        if AWAIT_TRIAGE in run.tags:  # a triage form, not a sign-off
            continue
        state = run.state
        opened = state.timestamp if state and state.timestamp else now
        expires = state.state_details.pause_timeout if state else None
        gates.append(
            OpenGate(
                flow_run_id=str(run.id),
                name=run.name,
                opened_at=opened,
                age_s=(now - opened).total_seconds(),
                expires_at=expires,
                live=run.id not in dead,
            )
        )
    return sorted(gates, key=lambda g: g.opened_at)


def decide(
    run_id: str, decision: str, approver: str, code: str, comment: str = "", choice: str = ""
) -> str:
    """Submit a decision to a waiting gate; returns the server's verdict.

    ``choice`` picks among what the plan offers (e.g. a restore point key)."""
    if decision not in ("approve", "reject"):
        raise ValueError("decision must be approve or reject")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        if run.state is None or not run.state.is_paused():
            raise RuntimeError(
                f"flow run {run_id} is not waiting at a gate "
                f"(state {run.state.name if run.state else 'unknown'})"
            )
        from tasks.facts.liveness import dead_runs

        if dead_runs(client, [run]):
            raise RuntimeError(
                f"flow run {run_id} waits at a gate but its process is gone: the gate is "
                "being re-opened as a new incident (see `contingency gates`); decide there"
            )
        result = resume_with_input(
            client,
            UUID(run_id),
            {
                "decision": decision,
                "approver": approver,
                "code": code,
                "comment": comment,
                "choice": choice,
            },
        )
    status = getattr(result.status, "value", str(result.status))
    if status != "ACCEPT":
        details = getattr(result.details, "reason", "") or ""
        raise RuntimeError(f"the server refused the decision: {status} {details}".strip())
    return status


def reopen(run_id: str) -> str:
    """Re-ask the command center for an incident whose gate was interrupted (or that
    ended without handling its alert): start its alert again as a successor run.
    Returns the successor's id; the same one however often it is asked."""
    from contingency.runtime.incident_runs import ended_unhandled, start_successor

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        if "incident" not in run.tags:
            raise RuntimeError(f"flow run {run_id} is not an incident")
        if run.state is None or not run.state.is_final():
            raise RuntimeError(
                f"incident {run_id} is still {run.state.name if run.state else 'unknown'}; "
                "only an ended incident can be re-opened"
            )
        if not ended_unhandled(run) and "acted" in run.tags:
            raise RuntimeError(
                f"incident {run_id} ended {run.state.name} after acting; start a new alert "
                "instead of re-opening it"
            )
        new = start_successor(client, run, "reopened")
        if new is None:
            raise RuntimeError(f"incident {run_id} has no deployment to start again from")
    return str(new.id)
