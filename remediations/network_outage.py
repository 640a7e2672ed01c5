"""Network-outage plan (网络中断): confirm the primary uplink is down, fail over, fail back.

Facts (several probe rounds through each link) → plan (the driver's exact action) →
sign-off per the link's policy → apply → verify (the default route and the probe
targets along it) → revert if verification fails → notify. ``failback`` waits until
the primary has passed traffic for ``failback_after_s``, then does the same through
its own gate. ``dry_run`` stops after the plan::

    outcome = handle(ctx)   # ctx.target names the primary link; fails over, or, when the
                            # route is already on the backup and the primary is back, fails back
    outcome = failback(ctx, "uplink-a")   # the same failback, called directly
"""

from __future__ import annotations

import time

from inventory.models import Inventory, PlanName
from inventory.network import Link
from remediations.context import IncidentContext, Outcome
from remediations.notices import notify
from remediations.plan import Action, Plan
from tasks.failover import DriverResult, driver_for
from tasks.network import confirm_link, probe_link, router_links, routes_via

VERIFY_ROUNDS = 3


def links_of(inv: Inventory, primary: str) -> tuple[Link, Link | None]:
    """The named primary link and a backup link on the same router (if any)."""
    link = inv.links[primary]
    backups = [lk for lk in router_links(inv, link.router) if lk.name != link.name]
    backup = next((lk for lk in backups if lk.role == "backup"), backups[0] if backups else None)
    return link, backup


def build_plan(to: Link, reason: str, requires_approval: bool = False) -> Plan:
    """The plan that moves the default traffic onto ``to`` (pure: no I/O)."""
    host, what = driver_for(to).describe(to)
    action = Action(
        host=host, command=what, description=f"route default traffic via {to.name}",
        risk="high", idempotent=True,
    )  # fmt: skip
    return Plan(
        plan=PlanName.network_outage, target=to.name, actions=[action],
        requires_approval=requires_approval or to.policy.requires_approval,
        destructive=True, reason=reason,
    )  # fmt: skip


def verify_via(link: Link, inv: Inventory) -> tuple[bool, str]:
    """The default route uses ``link`` and its targets answer along the default route."""
    for i in range(VERIFY_ROUNDS):
        if i:
            time.sleep(max(link.policy.probe_interval_s, 0.2))
        probe = probe_link(link, inv, bind=False)
        on_route = link.driver.kind != "linux-route" or routes_via(link, inv)
        if on_route and probe.state == "up":
            return True, f"default route via {link.name}; {probe.detail}"
    return False, f"after {VERIFY_ROUNDS} checks: route via {link.name}={on_route}, {probe.detail}"


def switch(ctx: IncidentContext, to: Link, back: Link | None, plan: Plan) -> Outcome | None:
    """Gate, activate ``to``, verify; on failure re-activate ``back``. None = success."""
    stop = ctx.gate(plan)
    if stop is not None:
        return stop
    res = driver_for(to).activate(to, ctx.inv)
    _record(ctx, res)
    ok, detail = verify_via(to, ctx.inv) if res.ok else (False, res.detail)
    ctx.event("verified", f"{'ok' if ok else 'FAILED'}: {detail}")
    if ok:
        return None
    undone = "not reverted (no other link)"
    if back is not None:
        reverted = driver_for(back).activate(back, ctx.inv)
        _record(ctx, reverted)
        undone = f"reverted to {back.name}" if reverted.ok else f"REVERT TO {back.name} FAILED"
        ctx.event("reverted", undone)
    msg = f"switch to {to.name} did not verify ({detail}); {undone}; escalated to a human"
    return _escalate(ctx, to, "switch_failed", msg)


def handle(ctx: IncidentContext) -> Outcome:
    """The network-outage plan inside an incident; the target names the primary link."""
    if ctx.decision.target_kind != "link" or ctx.target not in ctx.inv.links:
        return Outcome(outcome="unsupported", ok=False, message=f"{ctx.target} is not a link")
    primary, backup = links_of(ctx.inv, ctx.target)
    if primary.role == "backup":
        return _backup_alert(ctx, primary)
    if backup is not None and backup.driver.kind == "linux-route" and routes_via(backup, ctx.inv):
        return _on_backup(ctx, primary)
    seen = confirm_link(primary, ctx.inv)
    ctx.event("probe", seen.summary)
    if seen.state != "down":
        ok = seen.state == "up"
        why = "passes traffic" if ok else "cannot be judged (router unreachable?)"
        return Outcome(outcome="not_confirmed", ok=ok, message=f"{primary.name} {why}; no change")
    if backup is None:
        return _escalate(ctx, primary, "no_backup", f"{primary.name} is down and has no backup")
    spare = confirm_link(backup, ctx.inv, rounds=1)
    ctx.event("probe", spare.summary)
    if spare.state != "up":
        msg = f"{primary.name} and backup {backup.name} are both down; no change made"
        return _escalate(ctx, primary, "no_healthy_backup", msg)
    reason = f"{primary.name} is down ({seen.summary}); {backup.name} passes traffic"
    ctx.plan = build_plan(backup, reason, ctx.rule_requires_approval())
    ctx.event("planned", "; ".join(f"{a.host}: {a.command}" for a in ctx.plan.actions))
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    stop = switch(ctx, backup, primary, ctx.plan)
    if stop is not None:
        return stop
    msg = f"failed over from {primary.name} to {backup.name}; fail back after recovery"
    notify(ctx.inv, "finished", _fields(ctx, primary, msg, "failed_over"))
    return Outcome(outcome="failed_over", ok=True, message=msg)


def _backup_alert(ctx: IncidentContext, link: Link) -> Outcome:
    """An alert on a backup link changes no route: confirm it and tell operations."""
    seen = confirm_link(link, ctx.inv)
    ctx.event("probe", seen.summary)
    if seen.state == "up":
        return Outcome(outcome="not_confirmed", ok=True, message=f"{seen.summary}; no change")
    msg = f"backup link {link.name} is {seen.state}; no route changed; repair it"
    return _escalate(ctx, link, "backup_down", msg)


def _on_backup(ctx: IncidentContext, primary: Link) -> Outcome:
    """Already failed over: fail back if the primary passes traffic, else change nothing."""
    now = probe_link(primary, ctx.inv)
    ctx.event("probe", f"default route is on the backup; {primary.name}: {now.detail}")
    if now.state == "up":
        return failback(ctx, primary.name)
    msg = f"already failed over; {primary.name} still down ({now.detail}); no change"
    return Outcome(outcome="on_backup", ok=True, message=msg)


def failback(ctx: IncidentContext, primary_name: str) -> Outcome:
    """Wait (bounded) until the primary has passed traffic for ``failback_after_s``,
    then move the default route back to it through a gate."""
    primary, backup = links_of(ctx.inv, primary_name)
    policy = primary.policy
    deadline = time.monotonic() + policy.failback_max_wait_s
    healthy_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        up = probe_link(primary, ctx.inv).state == "up"
        healthy_since = (healthy_since or now) if up else None
        if healthy_since is not None and now - healthy_since >= policy.failback_after_s:
            break
        time.sleep(max(policy.probe_interval_s, 0.2))
    else:
        msg = f"{primary.name} was not healthy for {policy.failback_after_s:g}s; stayed on backup"
        return Outcome(outcome="failback_waiting", ok=False, message=msg)
    ctx.event("probe", f"{primary.name} healthy for {policy.failback_after_s:g}s")
    reason = f"{primary.name} healthy again for {policy.failback_after_s:g}s: fail back"
    ctx.plan = build_plan(primary, reason, ctx.rule_requires_approval())
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    stop = switch(ctx, primary, backup, ctx.plan)
    if stop is not None:
        return stop
    msg = f"failed back to {primary.name}"
    notify(ctx.inv, "finished", _fields(ctx, primary, msg, "failed_back"))
    return Outcome(outcome="failed_back", ok=True, message=msg)


def _record(ctx: IncidentContext, res: DriverResult) -> None:
    ctx.commands.append(
        {"host": res.host, "command": res.action, "exit_code": 0 if res.ok else 1,
         "duration_s": res.duration_s, "stdout_tail": res.detail}
    )  # fmt: skip
    ctx.event("command", f"{res.driver} {res.action} → ok={res.ok} ({res.detail})")


def _fields(ctx: IncidentContext, link: Link, summary: str, outcome: str) -> dict[str, object]:
    return {
        "alert": ctx.alert.name, "target": link.name, "plan": "network_outage",
        "summary": summary, "outcome": outcome, "severity": "critical", "duration": "-",
    }  # fmt: skip


def _escalate(ctx: IncidentContext, link: Link, outcome: str, msg: str) -> Outcome:
    roles = ("command_center", "operations")
    notify(ctx.inv, "escalation", _fields(ctx, link, msg, outcome), roles=roles)
    return Outcome(outcome=outcome, ok=False, message=msg)
