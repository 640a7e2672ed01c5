"""Network-outage plan (网络中断): confirm the primary uplink is down, fail over, fail back.

Facts (several probe rounds through each link) → plan (the driver's exact action, its
rollback to the other link, verified by the default route and the probe targets along
it) → the executor (sign-off per the link's policy, apply, verify, roll back if the
check fails). When the route is already on the backup and the primary is back, the
plan fails back, after the primary has passed traffic for ``failback_after_s``.
"""

from __future__ import annotations

import time

from inventory.models import Inventory, PlanName
from inventory.network import Link
from inventory.outcomes import Outcome
from remediations.context import IncidentContext, Verdict
from remediations.plan import Plan, ProbeAction, RouteAction
from tasks.actions.failover import driver_for
from tasks.facts.network import confirm_link, probe_link, router_links, routes_via


def links_of(inv: Inventory, primary: str) -> tuple[Link, Link | None]:
    """The named primary link and a backup link on the same router (if any)."""
    link = inv.links[primary]
    backups = [lk for lk in router_links(inv, link.router) if lk.name != link.name]
    backup = next((lk for lk in backups if lk.role == "backup"), backups[0] if backups else None)
    return link, backup


def route_action(to: Link) -> RouteAction:
    host, what = driver_for(to).describe(to)
    return RouteAction(
        link=to.name, host=host, shown_as=what, description=f"route default traffic via {to.name}",
        risk="high", idempotent=True,
    )  # fmt: skip


def build_plan(
    to: Link,
    reason: str,
    requires_approval: bool = False,
    back: Link | None = None,
    success: Outcome = Outcome.failed_over,
    message: str = "",
) -> Plan:
    """The plan that moves the default traffic onto ``to`` and, if that does not
    verify, back onto ``back`` (pure: no I/O)."""
    action = route_action(to)
    if back is not None:
        action.rollback = [route_action(back).model_copy(update={"name": f"revert to {back.name}"})]
    return Plan(
        plan=PlanName.network_outage, target=to.name, actions=[action],
        verify=[ProbeAction(link=to.name, name=f"verify {to.name}")],
        requires_approval=requires_approval or to.policy.requires_approval,
        destructive=True, reason=reason, success=success,
        success_message=message or f"default traffic runs via {to.name}",
        failure=Outcome.switch_failed, unrecovered=Outcome.switch_failed,
    )  # fmt: skip


def prepare(ctx: IncidentContext) -> Plan | Verdict:
    """The target names the primary link: fail over, or, when the route is already on
    the backup and the primary is back, fail back."""
    if ctx.decision.target_kind != "link" or ctx.target not in ctx.inv.links:
        return Verdict(outcome=Outcome.unsupported, message=f"{ctx.target} is not a link")
    primary, backup = links_of(ctx.inv, ctx.target)
    if primary.role == "backup":
        return _backup_alert(ctx, primary)
    if backup is not None and backup.driver.kind == "linux-route" and routes_via(backup, ctx.inv):
        return _on_backup(ctx, primary)
    seen = confirm_link(primary, ctx.inv)
    ctx.event("probe", seen.summary)
    if seen.state == "up":
        return Verdict(
            outcome=Outcome.not_confirmed, message=f"{primary.name} passes traffic; no change"
        )
    if seen.state != "down":
        why = "cannot be judged (router unreachable?)"
        return Verdict(outcome=Outcome.undetermined, message=f"{primary.name} {why}; no change")
    if backup is None:
        return Verdict(
            outcome=Outcome.no_backup, message=f"{primary.name} is down and has no backup"
        )
    spare = confirm_link(backup, ctx.inv, rounds=1)
    ctx.event("probe", spare.summary)
    if spare.state != "up":
        msg = f"{primary.name} and backup {backup.name} are both down; no change made"
        return Verdict(outcome=Outcome.no_healthy_backup, message=msg)
    reason = f"{primary.name} is down ({seen.summary}); {backup.name} passes traffic"
    msg = f"failed over from {primary.name} to {backup.name}; fail back after recovery"
    return build_plan(backup, reason, ctx.rule_requires_approval(), primary, message=msg)


def _backup_alert(ctx: IncidentContext, link: Link) -> Verdict:
    """An alert on a backup link changes no route: confirm it and tell operations."""
    seen = confirm_link(link, ctx.inv)
    ctx.event("probe", seen.summary)
    if seen.state == "up":
        return Verdict(outcome=Outcome.not_confirmed, message=f"{seen.summary}; no change")
    msg = f"backup link {link.name} is {seen.state}; no route changed; repair it"
    return Verdict(outcome=Outcome.backup_down, message=msg)


def _on_backup(ctx: IncidentContext, primary: Link) -> Plan | Verdict:
    """Already failed over: fail back if the primary passes traffic, else change nothing."""
    now = probe_link(primary, ctx.inv)
    ctx.event("probe", f"default route is on the backup; {primary.name}: {now.detail}")
    if now.state == "up":
        return prepare_failback(ctx, primary.name)
    msg = f"already failed over; {primary.name} still down ({now.detail}); no change"
    return Verdict(outcome=Outcome.on_backup, message=msg)


def prepare_failback(ctx: IncidentContext, primary_name: str) -> Plan | Verdict:
    """Wait (bounded) until the primary has passed traffic for ``failback_after_s``,
    then plan the move of the default route back to it."""
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
        return Verdict(outcome=Outcome.failback_waiting, message=msg)
    ctx.event("probe", f"{primary.name} healthy for {policy.failback_after_s:g}s")
    reason = f"{primary.name} healthy again for {policy.failback_after_s:g}s: fail back"
    return build_plan(
        primary, reason, ctx.rule_requires_approval(), backup,
        success=Outcome.failed_back, message=f"failed back to {primary.name}",
    )  # fmt: skip
