"""The runbook plan (其他突发事件): a declarative YAML runbook (inventory/runbooks.py) as a plan.

Each step becomes one typed action with its parameters filled in and quoted (an ssh
command, an http call, a probe, a wait, a notice, a sign-off), so the plan shown in dry
runs and at sign-off is exactly what runs. The executor runs it like every plan: the
rails and the first sign-off before the first step that changes anything or at the
first approval step, the rails again before every later changing step, later approval
steps ask again; each ssh step is a Prefect task named after the step.

A failed step (non-zero exit, unhealthy probe, unexpected status, unreachable host)
follows its ``on_failure``: ``stop`` ends the runbook and escalates; ``continue`` notes
it and runs the next step; ``escalate`` pages the command center at once, runs the next
step and ends the incident escalated. A host whose pinned key does not match always
stops the runbook.
"""

from __future__ import annotations

from typing import Any

from inventory.models import Inventory, PlanName
from inventory.outcomes import Outcome
from inventory.runbooks import Runbook, Step, pick, render
from inventory.settings import get_settings
from remediations.context import IncidentContext, Verdict
from remediations.plan import (
    Action,
    ApprovalAction,
    HttpAction,
    NotifyAction,
    Plan,
    ProbeAction,
    RollingAction,
    SshAction,
    WaitAction,
)


def _where(step: Step, inv: Inventory) -> str:
    if step.host:
        return step.host
    if step.service:
        return inv.service(step.service).host
    return "(contingency)"


def action(step: Step, values: dict[str, Any], inv: Inventory) -> Action:
    """The step as a typed action, its parameters filled in (pure)."""
    common: dict[str, Any] = {
        "name": step.name, "description": f"{step.name} ({step.kind})",
        "on_failure": step.on_failure,
    }  # fmt: skip
    changing = {"risk": "medium" if step.changes else "low", "idempotent": not step.changes}
    if step.kind == "ssh":
        return SshAction(
            host=_where(step, inv), command=render(step.command or "", values),
            timeout_s=step.timeout_s, changes=True, **changing, **common,
        )  # fmt: skip
    if step.kind == "http":
        return HttpAction(
            method=step.method, url=render(step.url or "", values, how="url"),
            expect_status=step.expect_status, timeout_s=step.timeout_s,
            changes=step.changes, **changing, **common,
        )  # fmt: skip
    if step.kind == "probe":
        return ProbeAction(service=step.service, on_host=_where(step, inv), **common)
    if step.kind == "rolling":
        return rolling(step, inv, common)
    if step.kind == "wait":
        return WaitAction(
            seconds=step.seconds, service=step.service, timeout_s=step.timeout_s,
            on_host=_where(step, inv) if step.service else None, **common,
        )  # fmt: skip
    if step.kind == "notify":
        return NotifyAction(
            role=step.role,
            message=render(pick(step.message, get_settings().language), values, quote=False),
            **common,
        )
    return ApprovalAction(**common)


def rolling(step: Step, inv: Inventory, common: dict[str, Any]) -> RollingAction:
    """A rolling step: the service's restart commands from the inventory on each of its
    instances (a service on one host is one instance)."""
    name = step.service or ""
    names = inv.instances.get(name) or [name]
    services = [inv.service(n) for n in names]
    return RollingAction(
        service=name, instances=[(s.name, s.host) for s in services],
        commands=services[0].manager.restart_commands(), batch_size=step.batch_size,
        max_unavailable=step.max_unavailable, stop_failure_pct=step.stop_failure_pct,
        timeout_s=step.timeout_s, risk="high" if len(services) > 1 else "medium",
        idempotent=True, changes=True, **common,
    )  # fmt: skip


def build_plan(rb: Runbook, target: str, values: dict[str, Any], inv: Inventory) -> Plan:
    """Every step as an action, commands filled in (pure)."""
    return Plan(
        plan=PlanName.runbook,
        target=target,
        actions=[action(s, values, inv) for s in rb.steps],
        requires_approval=any(s.kind == "approval" for s in rb.steps),
        reason=f"runbook {rb.name}: {rb.text('title', 'en') or rb.name}",
        label=f"runbook {rb.name}",
        success=Outcome.runbook_completed,
        success_message=f"runbook {rb.name} completed",
        failure=Outcome.runbook_failed,
        unrecovered=Outcome.runbook_failed,
    )


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """The routed runbook with its parameters (from the route and the CLI/API)."""
    name = ctx.decision.runbook or ""
    rb = ctx.inv.runbooks.get(name)
    if rb is None:
        return Verdict(outcome=Outcome.unsupported, message=f"unknown runbook {name[:80]!r}")
    try:
        values = rb.resolve({**ctx.decision.params, **ctx.options})
    except ValueError as exc:
        return Verdict(outcome=Outcome.bad_parameters, message=f"runbook {name}: {exc}")
    ctx.event("planned", f"runbook {name}: {len(rb.steps)} steps")
    return build_plan(rb, ctx.target, values, ctx.inv)
