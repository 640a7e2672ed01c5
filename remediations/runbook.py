"""The runbook plan (其他突发事件): run a declarative YAML runbook (inventory/runbooks.py).

The runbook is compiled into the incident flow: each step is a Prefect task named after
the step (ssh steps are the ``ssh`` task, renamed), so the run's graph reads like the
runbook. The plan (every command, with its parameters filled in and quoted) is shown in
dry runs and at sign-off. The safety rails are checked once, before the first step that
changes anything or at the first approval step, whichever comes first; later approval
steps ask again.

A failed step (non-zero exit, unhealthy probe, unexpected status, unreachable host)
follows its ``on_failure``: ``stop`` ends the runbook and escalates; ``continue`` notes
it and runs the next step; ``escalate`` pages the command center at once, runs the next
step and ends the incident escalated. A host whose pinned key does not match always
stops the runbook.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from inventory.errors import ContingencyError, HostKeyError
from inventory.models import Inventory, PlanName, RoleName
from inventory.runbooks import Runbook, Step, render
from inventory.secrets import redact
from remediations.context import IncidentContext, Outcome
from remediations.plan import Action, Plan
from tasks.probes import check_service
from tasks.ssh import run_ssh


def _where(step: Step, inv: Inventory) -> str:
    if step.host:
        return step.host
    if step.service:
        return inv.service(step.service).host
    return "(contingency)"


def describe(step: Step, values: dict[str, Any], inv: Inventory) -> str:
    """What the step does, exactly (the command, request or check)."""
    if step.kind == "ssh":
        return render(step.command or "", values)
    if step.kind == "http":
        return f"{step.method} {_url(step, values)} → {step.expect_status}"
    if step.kind == "probe":
        return f"health check of {step.service}"
    if step.kind == "wait" and step.service:
        return f"wait until {step.service} is healthy (at most {_wait_limit(step):g}s)"
    if step.kind == "wait":
        return f"wait {step.seconds:g}s"
    if step.kind == "notify":
        return f"notify {step.role}: {render(step.message or '', values, quote=False)}"
    return "sign-off by the command center"


def build_plan(rb: Runbook, target: str, values: dict[str, Any], inv: Inventory) -> Plan:
    """Every step as an action, commands filled in (pure)."""
    actions = [
        Action(
            host=_where(s, inv),
            command=describe(s, values, inv),
            description=f"{s.name} ({s.kind})",
            risk="medium" if s.changes else "low",
            idempotent=not s.changes,
        )
        for s in rb.steps
    ]
    return Plan(
        plan=PlanName.runbook,
        target=target,
        actions=actions,
        requires_approval=any(s.kind == "approval" for s in rb.steps),
        reason=f"runbook {rb.name}: {rb.text('title', 'en') or rb.name}",
    )


@task(name="runbook-step", cache_policy=NO_CACHE)
def _step(fn: Any) -> tuple[bool, str]:
    return fn()  # type: ignore[no-any-return]


def _url(step: Step, values: dict[str, Any]) -> str:
    return render(step.url or "", values, how="url")


def _http(step: Step, values: dict[str, Any]) -> tuple[bool, str]:
    url = _url(step, values)
    try:
        resp = requests.request(step.method, url, timeout=step.timeout_s)
    except requests.RequestException as exc:
        return False, f"{step.method} {url}: {type(exc).__name__}"
    return resp.status_code == step.expect_status, f"{step.method} {url} → {resp.status_code}"


def _wait_limit(step: Step) -> float:
    return step.seconds if step.seconds is not None else step.timeout_s


def _wait(step: Step, inv: Inventory) -> tuple[bool, str]:
    if step.seconds is not None and step.service is None:
        time.sleep(step.seconds)
        return True, f"waited {step.seconds:g}s"
    deadline = time.monotonic() + _wait_limit(step)
    while time.monotonic() < deadline:
        if check_service(inv.service(step.service or ""), inv).healthy:
            return True, f"{step.service} healthy"
        time.sleep(0.5)
    return False, f"{step.service} still unhealthy"


def run_step(ctx: IncidentContext, step: Step, values: dict[str, Any]) -> tuple[bool, str]:
    """Run one non-approval step as a task named after it; (ok, what happened)."""
    inv = ctx.inv
    if step.kind == "ssh":
        host = inv.host(_where(step, inv))
        try:
            res = run_ssh.with_options(task_run_name=step.name)(
                host, render(step.command or "", values), step.timeout_s
            )
        except HostKeyError:
            raise  # never passed over: the host may not be who it says
        except ContingencyError as exc:
            return False, f"{type(exc).__name__}: {redact(str(exc))[:200]}"
        ctx.record([res])
        return res.ok, f"exit {res.exit_code}" + (" (timed out)" if res.timed_out else "")
    runner = _step.with_options(task_run_name=step.name)
    if step.kind == "probe":
        return runner(lambda: _probe(step, inv))  # type: ignore[no-any-return]
    if step.kind == "http":
        return runner(lambda: _http(step, values))  # type: ignore[no-any-return]
    if step.kind == "wait":
        return runner(lambda: _wait(step, inv))  # type: ignore[no-any-return]
    return runner(lambda: _notify(ctx, step, values))  # type: ignore[no-any-return]


def _notify(ctx: IncidentContext, step: Step, values: dict[str, Any]) -> tuple[bool, str]:
    """The step's message to its role: through the incident's pager when there is one
    (so a drill pages nobody and the report lists the delivery), else sent directly."""
    message = render(step.message or "", values, quote=False)
    runbook = ctx.decision.runbook or ""
    fields = {"runbook": runbook, "step": step.name, "target": ctx.target, "summary": message}
    role = RoleName(step.role)
    if ctx.pager is not None:
        ctx.pager.event("runbook_notice", fields, roles=(role,))
        return True, f"notice to {step.role} queued"
    from tasks.notify import send

    sent = send("runbook_notice", ctx.inv, fields, roles=(role,))
    return True, f"notified {step.role} ({sum(d.ok for d in sent)}/{len(sent)} channels)"


def _escalate_now(ctx: IncidentContext, runbook: str, step: Step, what: str) -> None:
    """``on_failure: escalate``: page the command center now; the runbook goes on."""
    summary = f"runbook {runbook}: step {step.name!r} failed ({what}); the runbook continues"
    get_run_logger().error("ESCALATE: %s", summary)
    ctx.event("escalated", summary)
    if ctx.pager is not None:
        ctx.pager.event("escalation", {"summary": summary}, roles=(RoleName.command_center,))


def _probe(step: Step, inv: Inventory) -> tuple[bool, str]:
    res = check_service(inv.service(step.service or ""), inv)
    return (
        res.healthy,
        f"{step.service}: {'healthy' if res.healthy else 'unhealthy'} ({res.detail})",
    )


def handle(ctx: IncidentContext) -> Outcome:
    """Run the routed runbook: plan → (rails/sign-off) → steps in order → outcome."""
    name = ctx.decision.runbook or ""
    rb = ctx.inv.runbooks.get(name)
    if rb is None:
        return Outcome(outcome="unsupported", ok=False, message=f"unknown runbook {name[:80]!r}")
    try:
        values = rb.resolve({**ctx.decision.params, **ctx.options})
    except ValueError as exc:
        return Outcome(outcome="bad_parameters", ok=False, message=f"runbook {name}: {exc}")
    plan = build_plan(rb, ctx.target, values, ctx.inv)
    ctx.plan = plan
    ctx.event("planned", f"runbook {name}: {len(rb.steps)} steps")
    if ctx.dry_run:
        return Outcome(outcome="dry_run", ok=True, message="plan only, nothing changed")
    checked = False
    passed_over: list[str] = []
    escalated: list[str] = []
    done: list[str] = []
    for step in rb.steps:
        if step.kind == "approval" or (step.changes and not checked):
            gate_plan = plan.model_copy(update={"requires_approval": step.kind == "approval"})
            stop = ctx.gate(gate_plan) if not checked else _approve_again(ctx, gate_plan, done)
            checked = True
            if stop is not None:
                return stop
            if step.kind == "approval":
                ctx.event("step", f"{step.name}: approved")
                continue
        ok, what = run_step(ctx, step, values)
        done.append(step.name)
        ctx.event("step", f"{step.name} ({step.kind}): {'ok' if ok else 'FAILED'} — {what}")
        if ok:
            continue
        if step.on_failure == "stop":
            get_run_logger().error("ESCALATE: runbook %s stopped at %s", name, step.name)
            return Outcome(
                outcome="runbook_failed",
                ok=False,
                message=f"runbook {name} stopped at step {step.name!r}: {what}",
            )
        if step.on_failure == "escalate":
            _escalate_now(ctx, name, step, what)
            escalated.append(step.name)
        else:
            passed_over.append(step.name)
    over = f"; failed and passed over: {', '.join(passed_over)}" if passed_over else ""
    if escalated:
        return Outcome(
            outcome="runbook_partial",
            ok=False,
            message=f"runbook {name} finished; failed and escalated: {', '.join(escalated)}" + over,
        )
    return Outcome(outcome="runbook_completed", ok=True, message=f"runbook {name} completed{over}")


def _approve_again(ctx: IncidentContext, plan: Plan, done: list[str]) -> Outcome | None:
    """A later approval step: sign-off only (the rails were checked at the first). If it
    is not approved, the outcome says which steps had already run."""
    from remediations.context import GATE_OUTCOMES

    ctx.event("gate opened", "waiting for the command center")
    gate = ctx.approve(plan)
    ctx.last_gate = gate
    by = f" by {gate.approver}" if gate.approver else ""
    ctx.event("gate closed", f"{gate.status}{by} after {gate.wait_s:.1f}s")
    if gate.approved:
        return None
    base = GATE_OUTCOMES.get(gate.status) or Outcome(
        outcome="not_approved", ok=False, message=f"gate ended {gate.status}"
    )
    ran = ", ".join(done) or "none"
    message = f"{base.message.split(';')[0]}; the runbook stopped here (steps already run: {ran})"
    return base.model_copy(update={"message": message})
