"""Hardware-failure plan (硬件故障): move a dead host's services to its standby.

Facts (the host is down over a window: SSH and service ports, several rounds from the
worker; never one failed probe) → plan (fence, start services on the standby, move the
service addresses) → sign-off → apply in that order, stopping at the first failure
(never start the standby while the old host may still be alive) → verify every
service at its address → open a hardware ticket with operations::

    outcome = handle(ctx)       # ctx.target names the host; see inventory host_failover
"""

from __future__ import annotations

from inventory.models import Host, Inventory, PlanName, Service
from inventory.network import DnsAddress, HostFailover, VipAddress
from remediations.context import IncidentContext, Outcome
from remediations.notices import notify
from remediations.plan import Action, Plan
from remediations.software_crash import verify_recovery
from tasks.address import apply_dns, dns_describe, vip_commands
from tasks.failover import run_action
from tasks.hosts import confirm_host_down, probe_host

STEP_TIMEOUT_S = 30.0


def services_on(inv: Inventory, host: str) -> list[Service]:
    return sorted((s for s in inv.services.values() if s.host == host), key=lambda s: s.name)


def build_plan(
    host: Host,
    fo: HostFailover,
    services: list[Service],
    inv: Inventory,
    reason: str = "",
    requires_approval: bool = False,
) -> Plan:
    """Fence → start services on the standby (with their own restart commands) → move
    addresses (pure: no I/O)."""
    standby = inv.host(fo.standby)
    acts: list[Action] = []
    if fo.fence is not None:
        acts.append(Action(
            host=fo.fence.host, command=fo.fence.command, description=f"fence {host.name}",
            risk="high", idempotent=True,
        ))  # fmt: skip
    for svc in services:
        acts += [
            Action(host=standby.name, command=cmd, description=f"start {svc.name}", risk="medium")
            for cmd in svc.manager.restart_commands()
        ]
    for addr in fo.addresses:
        if isinstance(addr, VipAddress):
            acts += [
                Action(host=standby.name, command=cmd, description=f"move {addr.address}",
                       risk="high")
                for cmd in vip_commands(addr)
            ]  # fmt: skip
        else:
            acts.append(Action(host="dns", command=dns_describe(addr, standby), risk="high"))
    return Plan(
        plan=PlanName.hardware_failure, target=host.name, actions=acts,
        requires_approval=fo.requires_approval or requires_approval, destructive=True,
        reason=reason or f"{host.name} is down; move its services to {standby.name}",
    )  # fmt: skip


def apply_plan(ctx: IncidentContext, fo: HostFailover, plan: Plan) -> str | None:
    """Run the actions in order; return why it stopped, or None when all succeeded."""
    standby = ctx.inv.host(fo.standby)
    dns = [a for a in fo.addresses if isinstance(a, DnsAddress)]
    for action in plan.actions:
        if action.host == "dns":
            res = apply_dns(dns.pop(0), standby)
            ctx.commands.append({
                "host": "dns", "command": res.action, "exit_code": 0 if res.ok else 1,
                "duration_s": res.duration_s, "stdout_tail": res.detail,
            })  # fmt: skip
            ok = res.ok
        else:
            out = run_action(ctx.inv.host(action.host), action.command, STEP_TIMEOUT_S)
            ctx.record([out])
            ok = out.ok
        if not ok:
            return f"{action.description or action.command} failed on {action.host}"
    return None


def handle(ctx: IncidentContext) -> Outcome:
    """The hardware-failure plan inside an incident; the target names the host."""
    fo = ctx.inv.host_failover.get(ctx.target)
    if ctx.decision.target_kind != "host" or fo is None:
        msg = f"{ctx.target} is not a host with a host_failover entry (standby, fencing)"
        return Outcome(outcome="unsupported", ok=False, message=msg)
    host, services = ctx.inv.host(ctx.target), services_on(ctx.inv, ctx.target)
    policy = fo.confirm.model_copy(
        update={"ports": list(dict.fromkeys([*fo.confirm.ports, *_ports(services)]))}
    )
    seen = confirm_host_down(host, policy)
    ctx.event("probe", seen.summary)
    if not seen.down:
        return Outcome(outcome="not_confirmed", ok=True, message=f"{seen.summary}; no change")
    standby = ctx.inv.host(fo.standby)
    if not probe_host(standby, [], fo.confirm.timeout_s).up:
        msg = f"{host.name} is down and its standby {standby.name} does not answer; no change"
        return _escalate(ctx, host, "standby_down", msg)
    why = f"{seen.summary}; standby {standby.name}"
    ctx.plan = build_plan(host, fo, services, ctx.inv, why, ctx.rule_requires_approval())
    ctx.event("planned", "; ".join(f"{a.host}: {a.command}" for a in ctx.plan.actions))
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    stop = ctx.gate(ctx.plan)
    if stop is not None:
        return stop
    failed = apply_plan(ctx, fo, ctx.plan)
    if failed is not None:
        return _escalate(ctx, host, "failover_failed", f"{failed}; stopped there, escalated")
    moved = [s.model_copy(update={"host": standby.name}) for s in services]
    down = [s.name for s in moved if not verify_recovery(s, ctx.inv).recovered]
    ctx.event("verified", f"not answering: {', '.join(down)}" if down else "all services answer")
    if down:
        msg = f"moved to {standby.name} but {', '.join(down)} do not answer; escalated"
        return _escalate(ctx, host, "not_recovered", msg)
    msg = f"{host.name}'s services run on {standby.name} and answer at their addresses"
    _ticket(ctx, host, msg)
    return Outcome(outcome="failed_over", ok=True, message=msg)


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


def _fields(ctx: IncidentContext, host: Host, summary: str, outcome: str) -> dict[str, object]:
    return {
        "alert": ctx.alert.name, "target": host.name, "plan": "hardware_failure",
        "summary": summary, "outcome": outcome, "severity": "critical", "duration": "-",
    }  # fmt: skip


def _ticket(ctx: IncidentContext, host: Host, msg: str) -> None:
    """The hardware ticket: operations hear which machine to repair, and where it is."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(host.labels.items())) or "none"
    detail = f"HARDWARE TICKET {host.name} ({host.address}; labels {labels}): repair; {msg}"
    ctx.event("ticket", detail)
    notify(ctx.inv, "escalation", _fields(ctx, host, detail, "hardware_ticket"))


def _escalate(ctx: IncidentContext, host: Host, outcome: str, msg: str) -> Outcome:
    roles = ("command_center", "operations")
    notify(ctx.inv, "escalation", _fields(ctx, host, msg, outcome), roles=roles)
    return Outcome(outcome=outcome, ok=False, message=msg)
