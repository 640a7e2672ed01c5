"""The incident lifecycle: route → facts → plan → gate → apply → verify → report.

One flow run per incident. Alert labels only select a plan and a target by name; every
command comes from the inventory.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from inventory.alert import Alert
from inventory.loader import InventoryError, load_inventory
from inventory.models import Inventory, PlanName
from inventory.routing import RouteDecision, route
from inventory.secrets import redact
from inventory.settings import get_settings
from remediations.plan import Plan
from remediations.software_crash import CrashOutcome, apply_plan, build_plan, verify_recovery
from tasks.approval import GateResult, request_approval
from tasks.errors import ContingencyError
from tasks.probes import probe_health
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
    target = labels.get("service") or labels.get("host") or "?"
    return f"{labels.get('alertname', 'alert')}-{target}"[:80]


class _Incident:
    """Collects what happened, for the report."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        self.timeline = Timeline()
        self.timeline.add("alert received", f"{alert.name} {alert.labels}", at=alert.received_at)
        self.commands: list[dict[str, object]] = []
        self.gate: GateResult | None = None
        self.plan: Plan | None = None

    def finish(self, outcome: str, decision: RouteDecision, ok: bool, message: str) -> State:
        self.timeline.add("outcome", f"{outcome}: {message}")
        run_id = str(flow_run.id or "local")
        summary = {
            "outcome": outcome,
            "alert": f"{self.alert.name} ({self.alert.source}, "
            f"fingerprint {self.alert.fingerprint})",
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(self.alert.labels.items())),
            "routing": decision.reason,
            "flow run": run_id,
        }
        sections = {"Plan": self.plan.as_markdown()} if self.plan else {}
        if self.gate:
            sections["Approval"] = (
                "\n".join(
                    f"- {a.at.isoformat()} {a.approver}: {a.decision} "
                    f"({'accepted' if a.accepted else 'refused: ' + a.reason})"
                    for a in self.gate.attempts
                )
                + f"\n\nWaited {self.gate.wait_s:.1f}s."
            )
        markdown = render_report(
            f"Incident {self.alert.name} — {outcome}",
            summary,
            self.timeline,
            self.commands,
            sections,
        )
        key = f"incident-{run_id}"
        path = publish_report(
            markdown, key, get_settings().reports_path, description=f"{outcome}: {message}"[:500]
        )
        result = IncidentResult(
            outcome=outcome, route=decision, plan=self.plan, report_path=str(path)
        )
        if ok:
            return Completed(message=message, data=result)
        return Failed(name="Escalated", message=f"{outcome}: {message}", data=result)


def _software_crash(
    inc: _Incident, inv: Inventory, target: str, decision: RouteDecision, dry_run: bool
) -> State:
    logger = get_run_logger()
    svc = inv.service(target)
    before = probe_health(svc, inv)
    inc.timeline.add(
        "probe", f"{target}: {'healthy' if before.healthy else 'unhealthy'} ({before.detail})"
    )
    rule_gate = any(r.requires_approval for r in inv.routing if r.name == decision.rule)
    plan = build_plan(svc, requires_approval=rule_gate)
    inc.plan = plan
    inc.timeline.add("planned", "; ".join(f"{a.host}: {a.command}" for a in plan.actions))
    if dry_run:
        return inc.finish("dry_run", decision, True, "plan only, nothing changed")
    if before.healthy:
        return inc.finish("healthy", decision, True, f"{target} is healthy; nothing to do")
    if plan.requires_approval:
        inc.timeline.add("gate opened", "waiting for the command center")
        gate = request_approval(plan.as_markdown() + f"\n\nAlert: `{inc.alert.labels}`", inv)
        inc.gate = gate
        inc.timeline.add(
            "gate closed",
            f"{'approved' if gate.approved else 'rejected'} by "
            f"{gate.approver} after {gate.wait_s:.1f}s",
        )
        if not gate.approved:
            return inc.finish(
                "rejected", decision, True, "the command center rejected the plan; nothing was run"
            )
    for res in apply_plan(plan, inv):
        inc.commands.append(res.model_dump(mode="json"))
        inc.timeline.add(
            "command",
            f"{res.host}: `{res.command}` → exit {res.exit_code} in {res.duration_s:.3f}s",
        )
    verify = verify_recovery(svc, inv)
    inc.timeline.add(
        "verified",
        f"{'healthy' if verify.recovered else 'still unhealthy'} after "
        f"{len(verify.attempts)} checks, {verify.waited_s:.1f}s",
    )
    if not verify.recovered:
        logger.error("ESCALATE: %s did not recover; stopping (no further restarts)", target)
        return inc.finish(
            "not_recovered",
            decision,
            False,
            f"{target} still unhealthy after restart; escalated to a human",
        )
    return inc.finish("recovered", decision, True, f"{target} recovered")


@flow(name="incident", flow_run_name=_run_name, retries=0)
def incident(alert: Alert, dry_run: bool = False) -> State:
    """Handle one alert end to end and write the incident report.

    Example:
        >>> incident(Alert(fingerprint="x", labels={"alertname": "ServiceDown",
        ...                                        "service": "web"}), dry_run=True)
    """
    logger = get_run_logger()
    inc = _Incident(alert)
    decision = RouteDecision(routed=False, reason="not routed yet")
    try:
        inv = load_inventory(get_settings().inventory_path())
        decision = route(alert, inv)
        inc.timeline.add("routed" if decision.routed else "unroutable", decision.reason)
        if not decision.routed or decision.target is None:
            logger.error("ESCALATE: unroutable alert: %s", decision.reason)
            return inc.finish("unroutable", decision, False, decision.reason)
        logger.info("routed: %s", decision.reason)
        if decision.plan is PlanName.software_crash and decision.target_kind == "service":
            return _software_crash(inc, inv, decision.target, decision, dry_run)
        return inc.finish(
            "unsupported",
            decision,
            False,
            f"plan {decision.plan} is not available yet for {decision.target}",
        )
    except (ContingencyError, InventoryError, KeyError) as exc:
        logger.error("ESCALATE: incident failed: %s", redact(str(exc)))
        return inc.finish("failed", decision, False, f"{type(exc).__name__}: {exc}")
    finally:
        close_all(current_run_id())


__all__ = ["incident", "IncidentResult", "CrashOutcome"]
