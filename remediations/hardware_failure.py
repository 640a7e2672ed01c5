"""Hardware-failure plan (硬件故障): move a dead host's services to its standby.

Facts (the host is down over a window: SSH and service ports, several rounds from the
worker; never one failed probe) → plan (fence, start services on the standby, move the
service addresses; then every service verified at its address, then a hardware ticket
to operations). Applied in that order, stopping at the first failure: the standby is
never started while the old host may still be alive.
"""

from __future__ import annotations

from inventory.models import Host, Inventory, PlanName, RoleName, Service
from inventory.network import DnsAddress, HostFailover, VipAddress
from inventory.outcomes import Outcome
from remediations.context import IncidentContext, Verdict
from remediations.plan import Action, DnsAction, NotifyAction, Plan, ProbeAction, SshAction
from tasks.actions.address import dns_describe, vip_commands
from tasks.facts.hosts import confirm_host_down, probe_host

STEP_TIMEOUT_S = 30.0


def services_on(inv: Inventory, host: str) -> list[Service]:
    return sorted((s for s in inv.services.values() if s.host == host), key=lambda s: s.name)


def ticket_text(host: Host, standby: str) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(host.labels.items())) or "none"
    return (
        f"HARDWARE TICKET {host.name} ({host.address}; labels {labels}): repair; "
        f"{host.name}'s services run on {standby} and answer at their addresses"
    )


def build_plan(
    host: Host,
    fo: HostFailover,
    services: list[Service],
    inv: Inventory,
    reason: str = "",
    requires_approval: bool = False,
) -> Plan:
    """Fence → start services on the standby (with their own restart commands) → move
    addresses; verified service by service at the standby (pure: no I/O)."""
    standby = inv.host(fo.standby)
    acts: list[Action] = []
    if fo.fence is not None:
        acts.append(SshAction(
            host=fo.fence.host, command=fo.fence.command, description=f"fence {host.name}",
            risk="high", idempotent=True, timeout_s=STEP_TIMEOUT_S,
        ))  # fmt: skip
    for svc in services:
        acts += [
            SshAction(host=standby.name, command=cmd, description=f"start {svc.name}",
                      risk="medium", timeout_s=STEP_TIMEOUT_S)
            for cmd in svc.manager.restart_commands()
        ]  # fmt: skip
    for addr in fo.addresses:
        if isinstance(addr, VipAddress):
            acts += [
                SshAction(host=standby.name, command=cmd, description=f"move {addr.address}",
                          risk="high", timeout_s=STEP_TIMEOUT_S)
                for cmd in vip_commands(addr)
            ]  # fmt: skip
        elif isinstance(addr, DnsAddress):
            acts.append(DnsAction(
                address=addr, to_host=standby.name, shown_as=dns_describe(addr, standby),
                description=f"point {addr.record}.{addr.zone} at {standby.name}", risk="high",
            ))  # fmt: skip
    return Plan(
        plan=PlanName.hardware_failure, target=host.name, actions=acts,
        verify=[
            ProbeAction(service=s.name, on_host=standby.name, until_healthy=True,
                        name=f"verify {s.name}")
            for s in services
        ],
        after=[NotifyAction(role=RoleName.operations.value, message=ticket_text(host, standby.name),
                            event="escalation", name="hardware ticket")],
        requires_approval=fo.requires_approval or requires_approval, destructive=True,
        reason=reason or f"{host.name} is down; move its services to {standby.name}",
        success=Outcome.failed_over,
        success_message=f"{host.name}'s services run on {standby.name} and answer at their "
        "addresses",
        failure=Outcome.failover_failed,
        unrecovered=Outcome.not_recovered,
    )  # fmt: skip


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """Confirm the host is down over a window and its standby answers, then plan."""
    fo = ctx.inv.host_failover.get(ctx.target)
    if ctx.decision.target_kind != "host" or fo is None:
        msg = f"{ctx.target} is not a host with a host_failover entry (standby, fencing)"
        return Verdict(outcome=Outcome.unsupported, message=msg)
    host, services = ctx.inv.host(ctx.target), services_on(ctx.inv, ctx.target)
    policy = fo.confirm.model_copy(
        update={"ports": list(dict.fromkeys([*fo.confirm.ports, *_ports(services)]))}
    )
    seen = confirm_host_down(host, policy)
    ctx.event("probe", seen.summary)
    if not seen.down:
        return Verdict(outcome=Outcome.not_confirmed, message=f"{seen.summary}; no change")
    standby = ctx.inv.host(fo.standby)
    if not probe_host(standby, [], fo.confirm.timeout_s).up:
        msg = f"{host.name} is down and its standby {standby.name} does not answer; no change"
        return Verdict(outcome=Outcome.standby_down, message=msg)
    why = f"{seen.summary}; standby {standby.name}"
    return build_plan(host, fo, services, ctx.inv, why, ctx.rule_requires_approval())


def _ports(services: list[Service]) -> list[int]:
    from urllib.parse import urlparse

    from inventory.models import HttpCheck, TcpCheck

    out = []
    for s in services:
        if isinstance(s.health, TcpCheck):
            out.append(s.health.port)
        elif isinstance(s.health, HttpCheck) and (port := urlparse(s.health.url).port):
            out.append(port)
    return out
