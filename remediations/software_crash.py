"""Software-crash plan (软件故障): restart a crashed service, verify, escalate if it stays down.

Facts (health probe) → plan (restart commands from the inventory) → apply → verify with
retries and backoff up to the service's deadline. Never loops: one restart per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from inventory.errors import CommandError
from inventory.loader import load_inventory
from inventory.models import Inventory, PlanName, Service
from inventory.settings import get_settings
from remediations.context import IncidentContext, Outcome
from remediations.plan import Action, Plan
from tasks.probes import ProbeResult, check_service, probe_health
from tasks.ssh import CommandResult, run_ssh


class VerifyResult(BaseModel):
    recovered: bool
    attempts: list[ProbeResult] = Field(default_factory=list)
    waited_s: float = 0.0


def build_plan(service: Service, requires_approval: bool = False) -> Plan:
    """The exact commands a restart of ``service`` runs (pure: no I/O)."""
    actions = [
        Action(
            host=service.host,
            command=cmd,
            description=f"restart {service.name}",
            risk="medium",
            idempotent=True,
        )
        for cmd in service.manager.restart_commands()
    ]
    return Plan(
        plan=PlanName.software_crash,
        target=service.name,
        actions=actions,
        requires_approval=requires_approval or service.requires_approval,
        reason=f"service {service.name} on {service.host} is unhealthy",
    )


def apply_plan(
    plan: Plan, inv: Inventory, on_result: Callable[[CommandResult], None] | None = None
) -> list[CommandResult]:
    """Run the plan's actions in order; stop at the first command that is not ``ok``
    (failed, timed out, or outcome unknown: never act again on top of an unknown).

    ``on_result`` sees each command as soon as it is known — also one whose task
    raised a `CommandError` after sending it — so it is recorded even if a later
    step raises.
    """
    results: list[CommandResult] = []
    for action in plan.actions:
        try:
            res = run_ssh(inv.host(action.host), action.command)
        except CommandError as exc:
            if on_result is not None and isinstance(exc.result, CommandResult):
                on_result(exc.result)
            raise
        results.append(res)
        if on_result is not None:
            on_result(res)
        if not res.ok:
            break
    return results


def verify_recovery(service: Service, inv: Inventory) -> VerifyResult:
    """Re-probe with exponential backoff until healthy or the service's deadline passes."""
    policy = service.verify
    started = time.monotonic()
    delay = policy.first_delay_s
    attempts: list[ProbeResult] = []
    while True:
        time.sleep(delay)
        result = check_service(service, inv)
        attempts.append(result)
        elapsed = time.monotonic() - started
        if result.healthy or elapsed >= policy.deadline_s:
            return VerifyResult(recovered=result.healthy, attempts=attempts, waited_s=elapsed)
        delay = min(
            max(delay, 0.2) * policy.backoff, policy.max_interval_s, policy.deadline_s - elapsed
        )


def handle(ctx: IncidentContext) -> Outcome:
    """The software-crash plan inside an incident: probe, plan, gate, restart, verify."""
    if ctx.decision.target_kind != "service":
        return Outcome(
            outcome="unsupported",
            ok=False,
            message=f"{ctx.target} is a host; the software-crash plan needs a service",
        )
    svc = ctx.inv.service(ctx.target)
    before = probe_health(svc, ctx.inv)
    ctx.event(
        "probe", f"{svc.name}: {'healthy' if before.healthy else 'unhealthy'} ({before.detail})"
    )
    plan = build_plan(svc, requires_approval=ctx.rule_requires_approval())
    ctx.plan = plan
    ctx.event("planned", "; ".join(f"{a.host}: {a.command}" for a in plan.actions))
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    if before.healthy:
        return Outcome(outcome="healthy", ok=True, message=f"{svc.name} is healthy; nothing to do")
    stop = ctx.gate(plan)
    if stop is not None:
        return stop
    results = apply_plan(plan, ctx.inv, on_result=lambda res: ctx.record([res]))
    unknown = [r for r in results if r.outcome == "unknown"]
    verify = verify_recovery(svc, ctx.inv)
    ctx.event(
        "verified",
        f"{'healthy' if verify.recovered else 'still unhealthy'} after "
        f"{len(verify.attempts)} checks, {verify.waited_s:.1f}s",
    )
    if unknown:
        return _after_unknown(ctx, svc, unknown[0], verify)
    if not verify.recovered:
        get_run_logger().error("ESCALATE: %s did not recover; no further restarts", svc.name)
        return Outcome(
            outcome="not_recovered",
            ok=False,
            message=f"{svc.name} still unhealthy after restart; escalated to a human",
        )
    return Outcome(outcome="recovered", ok=True, message=f"{svc.name} recovered")


def _after_unknown(
    ctx: IncidentContext, svc: Service, res: CommandResult, verify: VerifyResult
) -> Outcome:
    """A restart whose outcome is unknown (the connection dropped mid-command) is never
    repeated blindly: the service was re-probed; healthy → recovered, with a note;
    unhealthy → escalate, saying the restart may or may not have run."""
    what = f"the restart `{res.command}` on {res.host}"
    if verify.recovered:
        ctx.event(
            "note",
            f"{what}: outcome unknown ({res.message or 'no exit status'}), "
            f"but {svc.name} answers its health check; not restarting again",
        )
        return Outcome(
            outcome="recovered",
            ok=True,
            message=f"{svc.name} recovered: the restart's outcome was unknown "
            f"({res.message or 'no exit status came back'}), but the service answers",
        )
    get_run_logger().error(
        "ESCALATE: %s: restart outcome unknown and still unhealthy; no further restarts",
        svc.name,
    )
    return Outcome(
        outcome="outcome_unknown",
        ok=False,
        message=f"{what}: outcome unknown, {res.message or 'the command may have run'}; "
        f"{svc.name} is still unhealthy on re-probe. Not restarting again blindly; "
        "escalated to a human — check the host",
    )


class CrashOutcome(BaseModel):
    outcome: str
    plan: Plan
    before: ProbeResult | None = None
    commands: list[CommandResult] = Field(default_factory=list)
    verify: VerifyResult | None = None


@flow(name="software-crash", log_prints=False)
def software_crash(
    service: str, dry_run: bool = False, inventory_path: str | None = None
) -> CrashOutcome:
    """Restart ``service`` if it is unhealthy; ``dry_run=True`` returns the plan only.

    Example:
        >>> software_crash("web", dry_run=True).plan.actions[0].command
        'labctl restart web'
    """
    logger = get_run_logger()
    inv = load_inventory(inventory_path or get_settings().inventory_path())
    svc = inv.service(service)
    plan = build_plan(svc)
    logger.info("plan:\n%s", plan.as_markdown())
    if dry_run:
        return CrashOutcome(outcome="dry_run", plan=plan)
    before = probe_health(svc, inv)
    if before.healthy:
        return CrashOutcome(outcome="healthy", plan=plan, before=before)
    commands = apply_plan(plan, inv)
    verify = verify_recovery(svc, inv)
    outcome = "recovered" if verify.recovered else "not_recovered"
    if not verify.recovered:
        logger.error("ESCALATE: %s did not recover within %.0fs", service, svc.verify.deadline_s)
    return CrashOutcome(outcome=outcome, plan=plan, before=before, commands=commands, verify=verify)
