"""What an incident run's state says about its alert — shared by the intake and the reconciler.

An incident run that ended *without handling its alert* (its process died, it was
interrupted at a gate, it never started) must never swallow the alert: a re-sent firing
alert, or the reconciler, starts a successor run. Both derive the successor's idempotency
key from the dead run, so several intake replicas and reconcilers agree on one successor
without shared memory (Prefect's idempotency key is the referee).
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import FlowRun

from inventory.outcomes import INTERRUPTED

MAX_SUCCESSORS = 3
"""A chain of successors stops here: something is wrong beyond a passing death."""
SUCCESSOR_MARK = "|after:"


def ended_unhandled(run: FlowRun) -> bool:
    """The run is final and did not handle its alert (Crashed or Interrupted)."""
    state = run.state
    if state is None or not state.is_final():
        return False
    return state.is_crashed() or state.name == INTERRUPTED


def successor_key(key: str, dead_run_id: object) -> str:
    """The idempotency key of the run that takes over from ``dead_run_id``."""
    return f"{key}{SUCCESSOR_MARK}{dead_run_id}"


def generation(key: str | None) -> int:
    """How many dead runs this key's chain has already replaced (0 for the first run)."""
    return (key or "").count(SUCCESSOR_MARK)


def start_successor(client: Any, run: FlowRun, *extra_tags: str) -> FlowRun | None:
    """Start ``run``'s alert again from its deployment (None without one): the same
    parameters and name, its incident tags, ``successor-of:<run>``, and the successor
    key — so the reconciler, `contingency gates reopen` and a re-sent alert all find
    the same successor however often they ask."""
    if run.deployment_id is None:
        return None
    keep = [
        t
        for t in run.tags
        if t in ("incident", "drill") or t.startswith(("source:", "fingerprint:"))
    ]
    return client.create_flow_run_from_deployment(
        run.deployment_id,
        parameters=run.parameters,
        name=run.name,
        idempotency_key=successor_key(run.idempotency_key or str(run.id), run.id),
        tags=[*keep, f"successor-of:{run.id}", *extra_tags],
    )
