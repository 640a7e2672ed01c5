"""The incident lifecycle: route → facts → plan → gate → apply → verify → report.

One flow run per incident. Alert labels only select a plan and a target by name; every
command comes from the inventory. The plan itself lives in ``remediations/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from inventory.alert import Alert
from inventory.errors import ContingencyError
from inventory.loader import load_inventory
from inventory.models import Inventory, PlanName, RoleName
from inventory.outcomes import INTERRUPTED, Outcome
from inventory.routing import RouteDecision, route, target_kind
from inventory.secrets import install_redaction, redact
from inventory.settings import get_settings
from inventory.severity import SeverityLevel, classify
from remediations import handler_for, rails
from remediations.context import IncidentContext, Verdict
from remediations.plan import Plan
from tasks.escalation import AWAIT_ACK
from tasks.facts.liveness import Beat
from tasks.gate.approval import GateResult, request_approval
from tasks.gate.triage import (
    AWAIT_TRIAGE,
    TRIAGED,
    Triage,
    request_triage,
    triage_description,
)
from tasks.gate.wait import GateInterrupted
from tasks.notify import Pager
from tasks.prefect_api import retry_api
from tasks.report.copies import ReportCopy, copy_report
from tasks.report.lang import word
from tasks.report.related import RelatedAlert, read_related, related_markdown
from tasks.report.render import Timeline, publish_report, render_report
from tasks.report.summary import IncidentSummary, publish_summary
from tasks.report.times import IncidentTimes, incident_times
from tasks.ssh.run import close_all, current_run_id

Handler = Callable[[IncidentContext], Verdict]
REPORTED = "reported"
"""Tag of a run that published its own report and pages (the reconciler skips it)."""


class IncidentResult(BaseModel):
    outcome: Outcome
    route: RouteDecision
    plan: Plan | None = None
    report_path: str | None = None
    times: IncidentTimes | None = None
    report_copy: ReportCopy | None = None


def _run_name() -> str:
    alert = (flow_run.parameters or {}).get("alert")
    labels = alert.labels if isinstance(alert, Alert) else (alert or {}).get("labels") or {}
    target = (
        labels.get("service")
        or labels.get("host")
        or labels.get("link")
        or labels.get("dataset")
        or labels.get("target")
        or "?"
    )
    return f"{labels.get('alertname', 'alert')}-{target}"[:80]


def _ui_link() -> str:
    from prefect.utilities.urls import url_for

    return url_for("flow-run", obj_id=str(flow_run.id)) or "" if flow_run.id else ""


def _gate_section(gates: list[GateResult]) -> str:
    lines = []
    for i, gate in enumerate(gates, 1):
        lines += [
            f"### Gate {i}: {gate.status}",
            "",
            f"- opened {gate.opened_at:%Y-%m-%d %H:%M:%S} UTC, closed "
            f"{gate.closed_at:%H:%M:%S} UTC, waited {gate.wait_s:.1f}s",
            f"- approvers: {gate.approver or '—'}; comment: {gate.comment or '—'}",
            "",
        ]
        if gate.signoffs:
            lines += [
                "| approver | decision | code sent to (channel) | code sent (UTC) | "
                "decided (UTC) |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {s.person} | {s.decision} | {', '.join(s.channels) or '—'} | "
                f"{s.sent_at:%Y-%m-%d %H:%M:%S} | {s.decided_at:%Y-%m-%d %H:%M:%S} |"
                for s in gate.signoffs
            ]
            lines += [""]
        lines += [
            "| time (UTC) | who | decision | code valid | accepted |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {a.at:%H:%M:%S} | {a.approver} | {a.decision} | {a.code_valid} | "
            f"{'yes' if a.accepted else 'no: ' + a.reason} |"
            for a in gate.attempts
        ]
        lines += [
            "",
            "<details><summary>What the approver was shown</summary>",
            "",
            gate.description,
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def _gate_description(alert: Alert, plan: Plan, timeline: Timeline) -> str:
    notes = "\n".join(f"- **{k}**: {v}" for k, v in sorted(alert.annotations.items()))
    so_far = "\n".join(f"- {e.at:%H:%M:%S} {e.kind}: {e.text}" for e in timeline.events)
    source = f"[source]({alert.generator_url})" if alert.generator_url else "no source link"
    if get_settings().language == "zh":  # the gate form, in the plan's own terms
        so_far = "\n".join(
            f"- {e.at:%H:%M:%S} {word(e.kind, 'zh')}: {e.text}" for e in timeline.events
        )
        return (
            f"## 指挥中心审批：对 `{plan.target}` 执行 `{plan.plan}`\n\n{plan.as_markdown()}\n\n"
            f"**风险：** {max((a.risk for a in plan.actions), default='low')}。"
            "请填写您在清单中的姓名和发送给您本人的一次性验证码（仅发往您本人的通知渠道，"
            "指挥中心群组渠道从不发送验证码），然后批准或驳回。验证码只对收到它的人有效，"
            "且只能使用一次；没有个人通知渠道的成员无法审批。\n\n"
            f"### 告警\n\n`{alert.labels}` ({alert.source}, {source})\n\n{notes}\n\n"
            f"### 事件经过\n\n{so_far}\n"
        )
    return (
        f"## Sign-off: `{plan.plan}` on `{plan.target}`\n\n{plan.as_markdown()}\n\n"
        f"**Risk:** {max((a.risk for a in plan.actions), default='low')}. "
        "Enter your inventory name and the one-time code sent to you personally (your "
        "own channel in the inventory; the command-center channel never carries a code), "
        "then approve or reject. A code works only for the person it was sent to, once; "
        "a member without a personal channel cannot sign off.\n\n"
        f"### Alert\n\n`{alert.labels}` ({alert.source}, {source})\n\n{notes}\n\n"
        f"### Incident so far\n\n{so_far}\n"
    )


def _report(
    alert: Alert,
    decision: RouteDecision,
    timeline: Timeline,
    ctx: IncidentContext | None,
    gates: list[GateResult],
    outcome: Verdict,
    pager: Pager | None,
    handling_start: datetime,
    related: list[RelatedAlert] | None = None,
    level: SeverityLevel | None = None,
    early: dict[str, str] | None = None,
) -> State:
    timeline.add("outcome", f"{outcome.outcome}: {outcome.message}")
    run_id = str(flow_run.id or "local")
    times = incident_times(
        alert.starts_at,
        handling_start,
        [(g.opened_at, g.closed_at, g.status) for g in gates],
        outcome.outcome,
        datetime.now(UTC),
    )
    summary = {
        "outcome": outcome.outcome,
        "severity": _severity_row(level),
        "alert": f"{alert.name} ({alert.source}, fingerprint {alert.fingerprint})",
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())),
        "routing": decision.reason,
        "related alerts": str(len(related or [])),
        **(
            {
                "reported by": f"{alert.labels.get('reported_by', '?')}: "
                f"{alert.annotations.get('summary', '')}"
            }
            if alert.source == "human"
            else {}
        ),
        "flow run": run_id,
        **times.as_rows(),
    }
    sections = dict(ctx.sections) if ctx else dict(early or {})
    if ctx and ctx.plan:
        sections["Plan"] = ctx.plan.as_markdown()
    if related:
        sections["Related alerts"] = related_markdown(related)
    if gates:
        sections["Approval"] = _gate_section(gates)
    if pager is not None:
        sections["Notifications"] = pager.as_markdown()
    if (ladder := _ladder(level, pager.inv if pager else None)) is not None:
        sections["Acknowledgement and escalation"] = ladder
    lang = get_settings().language
    markdown = render_report(
        f"{word('Incident', lang)} {alert.name} — {word(str(outcome.outcome), lang)}",
        summary,
        timeline,
        ctx.commands if ctx else [],
        sections,
        lang=lang,
    )
    message = redact(outcome.message)
    copy = copy_report(f"incident-{run_id}.md", markdown, get_settings())
    path = publish_report(
        markdown + (copy.as_markdown() if copy else ""),
        f"incident-{run_id}",
        get_settings().reports_path,
        description=f"{outcome.outcome}: {message}"[:500],
    )
    facts = IncidentSummary(
        run_id=run_id,
        plan=str(decision.plan.value) if decision.plan else "unroutable",
        target=decision.target or "",
        outcome=outcome.outcome,
        message=message[:500],
        recover_s=times.recover_s,
        acknowledge_s=times.acknowledge_s,
        approve_s=times.approve_s,
        gates=[g.status for g in gates],
        steps=len(ctx.steps) if ctx else 0,
        steps_failed=sum(not st.ok for st in ctx.steps) if ctx else 0,
        drill=alert.labels.get("drill") == "true",
        dry_run=bool(ctx and ctx.dry_run),
        severity=level.name if level else "",
    )
    if flow_run.id:  # what stats and /metrics read (never the markdown)
        retry_api(lambda: publish_summary(facts), "publish the incident summary")
    result = IncidentResult(
        outcome=outcome.outcome,
        route=decision,
        plan=ctx.plan if ctx else None,
        report_path=str(path),
        times=times,
        report_copy=copy,
    )
    # The reconciler knows this run told its own story (report and pages): nothing to
    # finish for it. Retried through an API outage (a server restart at this moment).
    retry_api(lambda: rails.tag_run(REPORTED), "tag the run reported")
    if outcome.ok:
        return Completed(message=message, data=result)
    name = INTERRUPTED if outcome.outcome is Outcome.interrupted else "Escalated"
    return Failed(name=name, message=f"{outcome.outcome}: {message}", data=result)


def _ladder(level: SeverityLevel | None, inv: Inventory | None) -> str | None:
    """The acknowledgement section from the run's tags as they are now (an ack or an
    escalation step may have come while the incident ran); ``inv``: the incident's."""
    if level is None or inv is None or not flow_run.id:
        return None
    from tasks.escalation import ladder_markdown
    from tasks.prefect_api import get_client

    try:
        with get_client(sync_client=True) as client:
            run = retry_api(lambda: client.read_flow_run(flow_run.id), "read the run's tags")
            steps = retry_api(lambda: _step_deliveries(client), "read the escalation steps")
        return ladder_markdown(run, inv, steps)
    except Exception as exc:  # noqa: BLE001 - the report matters more than this section
        get_run_logger().warning("acknowledgement section not read: %s", type(exc).__name__)
        return None


def _triage(
    alert: Alert,
    inv: Inventory,
    pager: Pager,
    timeline: Timeline,
    level: SeverityLevel,
    dry_run: bool,
) -> tuple[Triage, RouteDecision, SeverityLevel]:
    """Tech support's first judgement of a reported problem: the plan, the target and
    the level it gets (tasks/gate/triage.py). No plan: a person handles it by hand."""
    lang = get_settings().language
    reporter = alert.labels.get("reported_by", "?")
    summary = alert.annotations.get("summary", "")
    rails.tag_run(f"severity:{level.name}", AWAIT_TRIAGE, *([] if dry_run else [AWAIT_ACK]))
    pager.event("triage_needed")
    try:
        triage = request_triage(
            triage_description(summary, reporter, alert.labels.get("target", ""), inv, lang),
            inv,
            send=lambda event: pager.event(event),
        )
    finally:
        retry_api(lambda: rails.tag_run(drop=(AWAIT_TRIAGE,)), "untag the triage")
    if triage.status == "triaged":
        decision = forced_route(triage.plan, triage.target, inv)
        decision = decision.model_copy(
            update={"reason": f"triaged by {triage.person}: {decision.reason}"}
        )
    elif triage.status == "by_hand":
        decision = RouteDecision(
            routed=False,
            reason=f"triaged by {triage.person}: no plan fits; a person handles it by hand",
        )
    else:
        decision = RouteDecision(
            routed=False,
            reason=f"nobody triaged it ({triage.status}); a person must take it over",
        )
    timeline.add("triaged" if triage.person else "triage " + triage.status, decision.reason)
    asked = triage.severity or alert.labels.get("severity")
    plan_name = decision.plan.value if decision.plan else None
    new = classify(alert.labels, plan_name, decision.target_kind, decision.target, inv, asked)
    if new.name != level.name:
        timeline.add("severity", _severity_row(new))
    rails.tag_run(TRIAGED, f"severity:{new.name}", drop=("severity:",))
    return triage, decision, new


def _step_deliveries(client: object) -> list[str]:
    """The escalation steps the reconciler took while this run was running (their
    notification tables, kept as artifacts on the run), oldest first."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from tasks.escalation import STEP_ARTIFACT

    found = client.read_artifacts(  # type: ignore[attr-defined]
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]),
            key=ArtifactFilterKey(like_=f"{STEP_ARTIFACT}%"),
        )
    )
    return [str(a.data) for a in sorted(found, key=lambda a: a.key or "")]


def _severity_row(level: SeverityLevel | None) -> str:
    if level is None:
        return "not classified (the incident ended before routing)"
    lang = get_settings().language
    minutes = f"{level.tell_command_center_min:g}"
    if lang == "zh":
        demands = [f"{minutes} 分钟内报告应急指挥中心"]
        if level.activation:
            demands.insert(0, "须经应急指挥中心启动预案")
        return f"{level.label(lang)}（{'；'.join(demands)}）"
    demands = [f"command center told within {minutes} min"]
    if level.activation:
        demands.insert(0, "the command center activates the plan")
    return f"{level.label(lang)} ({'; '.join(demands)})"


def _run_locked(ctx: IncidentContext, handle: Handler, dry_run: bool, *tags: str) -> Verdict:
    """One remediation per target at a time: a second incident for a target that a
    *live* incident is handling joins it (records and stops) instead of acting in
    parallel. A lock that cannot be taken with no live holder is escalated."""
    target = ctx.target
    rails.tag_run(f"plan:{ctx.decision.plan}", f"target:{rails.tag_value(target)}", *tags)
    if dry_run:
        return handle(ctx)
    with rails.target_lock(target) as lock:
        if not lock.held:
            return Verdict(
                outcome=Outcome.joined,
                message=(
                    f"incident {lock.holder} is handling {target} and is alive; this alert "
                    "joined it and nothing was run twice"
                ),
            )
        return handle(ctx)


def _related() -> list[RelatedAlert]:
    """Alerts the intake joined to this incident (same cause); [] outside a run or if
    Prefect does not answer (the report says 0 rather than failing the incident)."""
    if not flow_run.id:
        return []
    try:
        return retry_api(lambda: read_related(str(flow_run.id)), "read the related alerts")
    except Exception as exc:  # noqa: BLE001 - the incident's own report matters more
        get_run_logger().warning("related alerts not read: %s", type(exc).__name__)
        return []


def forced_route(plan: str, target: str | None, inv: Inventory) -> RouteDecision:
    """Route to a named plan and target (the dry-run CLI); both must be in the inventory."""
    kind = target_kind(target, inv) if target is not None else None
    plan, _, runbook = plan.partition(":")  # "runbook:NAME" names a runbook
    if plan not in {p.value for p in PlanName}:
        return RouteDecision(routed=False, reason=f"unknown plan {plan[:80]!r}")
    if (plan == PlanName.runbook.value) != bool(runbook) or (
        runbook and runbook not in inv.runbooks
    ):
        return RouteDecision(
            routed=False,
            reason=f"plan runbook needs a known runbook: runbook:NAME ({runbook[:80]!r})",
        )
    if target is None or kind is None:
        return RouteDecision(routed=False, reason=f"unknown target {str(target)[:80]!r}")
    return RouteDecision(
        routed=True,
        rule=None,
        plan=PlanName(plan),
        target=target,
        target_kind=kind,
        runbook=runbook or None,
        reason=f"asked for plan {plan}{':' + runbook if runbook else ''} on {target}",
    )


@flow(name="incident", flow_run_name=_run_name, retries=0)
def incident(
    alert: Alert,
    dry_run: bool = False,
    plan: str | None = None,
    target: str | None = None,
    options: dict[str, str] | None = None,
) -> State:
    """Handle one alert end to end and write the incident report.

    Example (against a running stack; see ``contingency plan --dry-run``)::

        incident(Alert(fingerprint="x", labels={"alertname": "ServiceDown",
                                                "service": "web"}), dry_run=True)
    """
    handling_start = datetime.now(UTC)
    beat = Beat(flow_run.id).__enter__() if flow_run.id else None  # liveness, to the end
    install_redaction()
    logger = get_run_logger()
    timeline = Timeline()
    timeline.add("alert received", f"{alert.name} {alert.labels}", at=alert.received_at)
    decision = RouteDecision(routed=False, reason="not routed yet")
    gates: list[GateResult] = []
    ctx: IncidentContext | None = None
    pager: Pager | None = None
    level: SeverityLevel | None = None
    ctx_sections: dict[str, str] = {}
    started = time.monotonic()

    def approve(plan: Plan) -> GateResult:
        if pager is None:
            raise RuntimeError("a gate before the incident's pager exists")
        paging: Pager = pager
        pager.fields.update(plan=plan.plan.value, target=plan.target, summary=plan.reason)
        gate = request_approval(
            _gate_description(alert, plan, timeline),
            inv,
            policy=inv.gate_policy(plan.plan.value),
            two_person=plan.destructive,
            choices=plan.choices or None,
            notify=lambda event, extra, codes: paging.event(event, extra, codes=codes),
        )
        gates.append(gate)
        paging.event(
            "gate_decided",
            {"decision": gate.status, "approver": gate.approver or "—", "comment": gate.comment},
        )
        return gate

    try:
        inv = load_inventory(get_settings().inventory_path())
        decision = route(alert, inv) if plan is None else forced_route(plan, target, inv)
        to_triage = alert.source == "human" and plan is None  # a person reported it
        if to_triage:
            decision = RouteDecision(
                routed=False,
                reason=(
                    f"reported by {alert.labels.get('reported_by', 'a person')}; tech support "
                    "triages it (plan, target, severity)"
                ),
            )
        kind = "routed" if decision.routed else "reported" if to_triage else "unroutable"
        timeline.add(kind, decision.reason)
        plan_name = decision.plan.value if decision.plan else None
        asked = alert.labels.get("severity") if alert.source == "human" else None
        level = classify(
            alert.labels, plan_name, decision.target_kind, decision.target, inv, asked=asked
        )
        lang = get_settings().language
        timeline.add("severity", _severity_row(level))
        pager = Pager(
            inv,
            get_settings().language,
            {
                "alert": alert.name,
                "severity": level.label(lang),
                "target": decision.target or "?",
                "plan": decision.plan or "none",
                "summary": alert.annotations.get("summary", decision.reason),
                "link": _ui_link(),
                "run_id": str(flow_run.id or "local"),
            },
            drill=alert.labels.get("drill") == "true",
            dry_run=dry_run,
        )
        if alert.labels.get("drill") == "true":
            rails.tag_run("drill")  # a game day: the report and stats can tell
        pager.event("incident_opened", roles=tuple(RoleName(r) for r in level.page) or None)
        if to_triage:
            triage, decision, level = _triage(alert, inv, pager, timeline, level, dry_run)
            lang_level = level.label(lang)
            pager.fields.update(
                severity=lang_level, target=decision.target or "?", plan=decision.plan or "none"
            )
            ctx_sections["Triage"] = triage.as_markdown()
        if not decision.routed or decision.plan is None:
            rails.tag_run(f"severity:{level.name}", AWAIT_ACK)
            logger.error("ESCALATE: unroutable alert: %s", decision.reason)
            outcome = Verdict(outcome=Outcome.unroutable, message=decision.reason)
        elif (handle := handler_for(decision.plan)) is None:
            outcome = Verdict(
                outcome=Outcome.unsupported, message=f"plan {decision.plan} is not available"
            )
        else:
            logger.info("routed: %s", decision.reason)
            ctx = IncidentContext(
                sections=ctx_sections,
                alert=alert,
                inv=inv,
                decision=decision,
                approve=approve,
                dry_run=dry_run,
                timeline=timeline,
                options=dict(options or {}),
                pager=pager,
                activation=f"severity {level.label(lang)}" if level.activation else "",
            )
            outcome = _run_locked(
                ctx, handle, dry_run, f"severity:{level.name}", *([] if dry_run else [AWAIT_ACK])
            )
    except GateInterrupted as exc:
        logger.error("ESCALATE: the gate was interrupted: %s", redact(str(exc)))
        outcome = Verdict(
            outcome=Outcome.interrupted,
            message=(
                f"the gate was interrupted ({exc}); nothing was run. Re-ask the command "
                f"center with `contingency gates reopen {flow_run.id}`"
            ),
        )
    except ContingencyError as exc:  # the one root of every error raised on purpose
        logger.error("ESCALATE: incident failed: %s", redact(str(exc)))
        outcome = Verdict(outcome=Outcome.failed, message=f"{type(exc).__name__}: {exc}")
    finally:
        close_all(current_run_id())
    related = _related()
    if pager is not None:
        elapsed = f"{time.monotonic() - started:.1f}s"
        more = f" (+{len(related)} related alerts)" if related else ""
        pager.event(
            outcome.outcome.page_event,
            {
                "outcome": outcome.outcome,
                "duration": elapsed,
                "summary": outcome.message + more,
                "status": outcome.outcome,
                "related": len(related),
            },
        )
    try:
        return _report(
            alert, decision, timeline, ctx, gates, outcome, pager, handling_start, related, level,
            ctx_sections,
        )  # fmt: skip
    finally:
        if beat is not None:
            beat.__exit__()
