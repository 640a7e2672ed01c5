"""Software-crash plan (软件故障): restart a crashed service, verify, escalate if it stays down.

Facts (a health probe) → plan (the restart commands from the inventory, verified by
re-probing with backoff up to the service's deadline). One restart per incident: a
service that stays down is escalated, never restarted in a loop.

>>> from pathlib import Path
>>> from inventory.loader import load_inventory
>>> inv = load_inventory(Path("inventory/examples/lab"))
>>> build_plan(inv.service("web")).actions[0].shown
'labctl restart web'
"""

from __future__ import annotations

from inventory.models import PlanName, Service
from inventory.outcomes import Outcome
from remediations.context import IncidentContext, Verdict
from remediations.plan import Plan, ProbeAction, SshAction
from tasks.facts.probes import probe_health


def build_plan(service: Service, requires_approval: bool = False) -> Plan:
    """The exact commands a restart of ``service`` runs, and its check (pure)."""
    return Plan(
        plan=PlanName.software_crash,
        target=service.name,
        actions=[
            SshAction(
                host=service.host,
                command=cmd,
                description=f"restart {service.name}",
                risk="medium",
                idempotent=True,
                verify=f"health check of {service.name}",
            )
            for cmd in service.manager.restart_commands()
        ],
        verify=[ProbeAction(service=service.name, until_healthy=True, name="verify")],
        requires_approval=requires_approval or service.requires_approval,
        reason=f"service {service.name} on {service.host} is unhealthy",
        success=Outcome.recovered,
        success_message=f"{service.name} recovered",
        failure=Outcome.not_recovered,
        unrecovered=Outcome.not_recovered,
    )


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """Probe the service, then the restart plan (``already`` healthy: nothing runs)."""
    if ctx.decision.target_kind != "service":
        return Verdict(
            outcome=Outcome.unsupported,
            message=f"{ctx.target} is a host; the software-crash plan needs a service",
        )
    svc = ctx.inv.service(ctx.target)
    before = probe_health(svc, ctx.inv)
    ctx.event(
        "probe", f"{svc.name}: {'healthy' if before.healthy else 'unhealthy'} ({before.detail})"
    )
    plan = build_plan(svc, requires_approval=ctx.rule_requires_approval())
    if before.healthy:
        plan.already = Outcome.healthy
        plan.already_message = f"{svc.name} is healthy; nothing to do"
    return plan
