"""What people do to incidents, shared by the CLI and the board: acknowledge one (接警)
and report one by hand (发现异常). Sync: call from a thread in async code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contingency.lang import msg
from inventory.errors import Refused
from inventory.models import Inventory, PlanName
from inventory.routing import target_kind
from inventory.severity import levels_of
from tasks.escalation import ACKED_AT, ACKED_BY, AWAIT_ACK, acknowledged
from tasks.prefect_api import resume_with_input


def acknowledge(
    client: Any, run_id: str, person: str, inv: Inventory, reports: Path, lang: str = "en"
) -> str:
    """Mark incident ``run_id`` acknowledged by ``person``; the answer to show (in
    ``lang``). A second acknowledgement says who was first and changes nothing."""

    from contingency.runtime.escalation import append_section

    uid = _run_id(run_id, lang)
    if person not in inv.people:
        raise Refused(msg(lang, "{person!r} is not a person in the inventory", person=person[:64]))
    run = _read_run(client, uid, lang)
    if "incident" not in run.tags:
        raise Refused(msg(lang, "run {run_id} is not an incident", run_id=run_id))
    if (done := acknowledged(list(run.tags))) is not None:
        who, when = done
        stamp = f"{when:%Y-%m-%d %H:%M:%S}"
        return msg(lang, "already acknowledged by {who} at {when} UTC", who=who, when=stamp)
    now = datetime.now(UTC)
    mark = {f"{ACKED_BY}{person}", f"{ACKED_AT}{now.timestamp():.0f}"}
    client.update_flow_run(uid, tags=sorted((set(run.tags) - {AWAIT_ACK}) | mark))
    if run.state is not None and run.state.is_final():  # its report is written: add to it
        append_section(
            client, client.read_flow_run(uid), "Acknowledged", f"By **{person}**.", reports
        )
    return msg(lang, "incident {run_id} acknowledged by {person}", run_id=run_id, person=person)


def _read_run(client: Any, uid: uuid.UUID, lang: str) -> Any:
    """The flow run, or Refused naming the id Prefect does not know."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_flow_run(uid)
    except ObjectNotFound:
        raise Refused(
            msg(lang, "unknown run {run_id}: Prefect has no such flow run", run_id=str(uid))
        ) from None


def _run_id(run_id: str, lang: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise Refused(
            msg(lang, "{run_id!r} is not a flow run id (a UUID)", run_id=run_id[:64])
        ) from None


def human_alert(
    inv: Inventory,
    summary: str,
    person: str,
    plan: str | None = None,
    target: str | None = None,
    severity: str | None = None,
    lang: str = "en",
) -> dict[str, Any]:
    """The alert of a problem reported by ``person``; Refused lists every problem."""
    problems = []
    if person not in inv.people:
        problems.append(
            msg(lang, "{person!r} is not a person in the inventory", person=person[:64])
        )
    if not summary.strip():
        problems.append(msg(lang, "say what you see (summary)"))
    if plan is not None and target is None:
        problems.append(msg(lang, "--plan and --target go together (--target alone is a hint)"))
    if plan is not None and plan.partition(":")[0] not in {p.value for p in PlanName}:
        names = ", ".join(p.value for p in PlanName)
        problems.append(
            msg(lang, "plan {plan!r} is not a plan ({names})", plan=plan[:40], names=names)
        )
    if target is not None and target_kind(target, inv) is None:
        problems.append(msg(lang, "target {target!r} is not in the inventory", target=target[:64]))
    levels = [lv.name for lv in levels_of(inv)]
    if severity is not None and severity not in levels:
        problems.append(
            msg(lang, "severity {level!r} is not a level ({levels})", level=severity[:16],
                levels=", ".join(levels))
        )  # fmt: skip
    if problems:
        raise Refused("; ".join(problems))
    labels = {"alertname": "HumanReport", "reported_by": person}
    if target is not None:
        labels["target"] = target
    if severity is not None:
        labels["severity"] = severity
    return {
        "fingerprint": f"human-{uuid.uuid4().hex}",
        "source": "human",
        "labels": labels,
        "annotations": {"summary": summary.strip()[:2000]},
    }


def open_incident(
    deployment: str, alert: dict[str, Any], plan: str | None, target: str | None
) -> str:
    """Start the incident flow for a reported problem (the caller's Prefect API); its id."""
    from typing import cast

    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(
        "FlowRun",
        run_deployment(
            deployment,
            timeout=0,
            parameters={"alert": alert, "plan": plan, "target": target},
            tags=["incident", "source:human", f"fingerprint:{alert['fingerprint']}"],
        ),
    )
    return str(run.id)


def triage(
    client: Any, run_id: str, answer: dict[str, str], inv: Inventory, lang: str = "en"
) -> str:
    """Submit tech support's triage (``TriageInput`` fields) to an incident waiting for
    it; what happened. Checked here first (the flow checks again), then waits up to 30 s
    for the incident to take it."""
    import time

    from tasks.gate.triage import AWAIT_TRIAGE, TRIAGED, TriageInput, triage_refusal

    uid = _run_id(run_id, lang)
    form = TriageInput(**answer)
    if reason := triage_refusal(form, inv):
        raise Refused(reason)
    run = _read_run(client, uid, lang)
    if AWAIT_TRIAGE not in run.tags or run.state is None or not run.state.is_paused():
        state = run.state.name if run.state else "unknown"
        raise Refused(
            msg(lang, "incident {run_id} is not waiting for triage (state {state})",
                run_id=run_id, state=state)
        )  # fmt: skip
    key = run.state.state_details.pause_key
    result = resume_with_input(client, uid, form.model_dump(exclude={"code"}))
    if str(getattr(result.status, "value", result.status)).upper() != "ACCEPT":
        why = getattr(result.details, "reason", "") or str(result.status)
        raise Refused(msg(lang, "Prefect refused the answer: {why}", why=why))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        run = client.read_flow_run(uid)
        if TRIAGED in run.tags:
            what = (
                msg(lang, "plan {plan} on {target}", plan=form.plan, target=form.target)
                if form.plan
                else msg(lang, "by hand (no plan)")
            )
            return msg(lang, "incident {run_id} triaged by {person}: {what}",
                       run_id=run_id, person=form.person, what=what)  # fmt: skip
        state = run.state
        if state is not None and state.is_paused() and state.state_details.pause_key != key:
            raise Refused(
                msg(lang, "incident {run_id} refused the triage: its form says why", run_id=run_id)
            )
        if state is not None and state.is_final():
            raise Refused(
                msg(lang, "incident {run_id} ended ({state}) before taking the triage",
                    run_id=run_id, state=state.name)
            )  # fmt: skip
    raise Refused(msg(lang, "incident {run_id} did not take the triage within 30 s", run_id=run_id))
