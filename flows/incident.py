"""The incident lifecycle: route → facts → plan → gate → apply → verify → report.

One flow run per incident. Alert labels only select a plan and a target by name; every
command comes from the inventory. The plan itself lives in ``remediations/``.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from inventory.alert import Alert
from inventory.loader import InventoryError, load_inventory
from inventory.routing import RouteDecision, route
from inventory.secrets import redact
from inventory.settings import get_settings
from remediations import handler_for
from remediations.context import IncidentContext, Outcome
from remediations.plan import Plan
from tasks.approval import GateResult, request_approval
from tasks.errors import ContingencyError
from tasks.report import Timeline, publish_report, render_report
from tasks.ssh import close_all, current_run_id


class IncidentResult(BaseModel):
    outcome: str
    route: RouteDecision
    plan: Plan | None = None
    report_path: str | None = None


def _run_name() -> str:
    alert = (flow_run.parameters or {}).get("alert")
    labels = alert.labels if isinstance(alert, Alert) else (alert or {}).get("labels") or {}
    target = labels.get("service") or labels.get("host") or labels.get("link") or "?"
    return f"{labels.get('alertname', 'alert')}-{target}"[:80]


def _gate_section(gates: list[GateResult]) -> str:
    lines = []
    for gate in gates:
        lines += [
            f"- {a.at.isoformat()} {a.approver}: {a.decision} "
            f"({'accepted' if a.accepted else 'refused: ' + a.reason})"
            for a in gate.attempts
        ]
        lines.append(f"- waited {gate.wait_s:.1f}s; approved: {gate.approved}")
    return "\n".join(lines)


def _report(
    alert: Alert,
    decision: RouteDecision,
    timeline: Timeline,
    ctx: IncidentContext | None,
    gates: list[GateResult],
    outcome: Outcome,
) -> State:
    timeline.add("outcome", f"{outcome.outcome}: {outcome.message}")
    run_id = str(flow_run.id or "local")
    summary = {
        "outcome": outcome.outcome,
        "alert": f"{alert.name} ({alert.source}, fingerprint {alert.fingerprint})",
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())),
        "routing": decision.reason,
        "flow run": run_id,
    }
    sections = dict(ctx.sections) if ctx else {}
    if ctx and ctx.plan:
        sections["Plan"] = ctx.plan.as_markdown()
    if gates:
        sections["Approval"] = _gate_section(gates)
    markdown = render_report(
        f"Incident {alert.name} — {outcome.outcome}",
        summary,
        timeline,
        ctx.commands if ctx else [],
        sections,
    )
    message = redact(outcome.message)
    path = publish_report(
        markdown,
        f"incident-{run_id}",
        get_settings().reports_path,
        description=f"{outcome.outcome}: {message}"[:500],
    )
    result = IncidentResult(
        outcome=outcome.outcome,
        route=decision,
        plan=ctx.plan if ctx else None,
        report_path=str(path),
    )
    if outcome.ok:
        return Completed(message=message, data=result)
    return Failed(name="Escalated", message=f"{outcome.outcome}: {message}", data=result)


@flow(name="incident", flow_run_name=_run_name, retries=0)
def incident(alert: Alert, dry_run: bool = False) -> State:
    """Handle one alert end to end and write the incident report.

    Example:
        >>> incident(Alert(fingerprint="x", labels={"alertname": "ServiceDown",
        ...                                        "service": "web"}), dry_run=True)
    """
    logger = get_run_logger()
    timeline = Timeline()
    timeline.add("alert received", f"{alert.name} {alert.labels}", at=alert.received_at)
    decision = RouteDecision(routed=False, reason="not routed yet")
    gates: list[GateResult] = []
    ctx: IncidentContext | None = None

    def approve(plan: Plan) -> GateResult:
        gate = request_approval(plan.as_markdown() + f"\n\nAlert: `{alert.labels}`", inv)
        gates.append(gate)
        return gate

    try:
        inv = load_inventory(get_settings().inventory_path())
        decision = route(alert, inv)
        timeline.add("routed" if decision.routed else "unroutable", decision.reason)
        if not decision.routed or decision.plan is None:
            logger.error("ESCALATE: unroutable alert: %s", decision.reason)
            outcome = Outcome(outcome="unroutable", ok=False, message=decision.reason)
        elif (handle := handler_for(decision.plan)) is None:
            outcome = Outcome(
                outcome="unsupported", ok=False, message=f"plan {decision.plan} is not available"
            )
        else:
            logger.info("routed: %s", decision.reason)
            ctx = IncidentContext(
                alert=alert,
                inv=inv,
                decision=decision,
                approve=approve,
                dry_run=dry_run,
                timeline=timeline,
            )
            outcome = handle(ctx)
    except (ContingencyError, InventoryError, KeyError) as exc:
        logger.error("ESCALATE: incident failed: %s", redact(str(exc)))
        outcome = Outcome(outcome="failed", ok=False, message=f"{type(exc).__name__}: {exc}")
    finally:
        close_all(current_run_id())
    return _report(alert, decision, timeline, ctx, gates, outcome)
