"""Incident outcomes, remediation durations and gate waits on the stack intake's /metrics,
and `contingency stats` records, read from the real Prefect server: after real incidents
ran on the lab stack (their typed summaries), and for runs whose markdown report says
something else or is missing (only the summary counts)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import requests
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.states import Completed, Paused, Pending, Running

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.cli.stats import collect
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from inventory.outcomes import Outcome
from tasks.report.summary import IncidentSummary, publish_summary, read_summaries
from tests.fixtures_stack import Stack, approval_code, wait_for


def _samples(stack: Stack) -> dict[str, float]:
    text = requests.get(f"{stack.intake_url}/metrics", timeout=30).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _run(stack: Stack, labels: dict[str, str]) -> str:
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    assert resp.status_code == 202, resp.text
    return resp.json()["incidents"][0]["flow_run_id"]


def test_outcomes_durations_and_gate_waits_come_from_prefect(lab_stack: Stack) -> None:
    tag = uuid.uuid4().hex
    healthy = _run(lab_stack, {"alertname": "ServiceDown", "service": "api", "t": tag})
    unroutable = _run(lab_stack, {"alertname": "NoRuleForThis", "t": tag})
    crash_service(lab_stack.settings, "report")  # its restart needs sign-off: a gate
    try:
        gated = _run(lab_stack, {"alertname": "ServiceDown", "service": "report", "t": tag})
        wait_for(lambda: any(g.flow_run_id == gated for g in open_gates()), what="gate open")
        time.sleep(2)  # a measurable wait at the gate
        code = approval_code(lab_stack, gated, person="li.na")
        decide(gated, "reject", "li.na", code, "metrics test")
        for run_id in (healthy, unroutable, gated):
            wait_for_run(run_id, timeout_s=120)
    finally:
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")

    wanted = {
        'contingency_incidents_outcome_total{outcome="healthy",plan="software_crash"}',
        'contingency_incidents_outcome_total{outcome="unroutable",plan="unroutable"}',
        'contingency_incidents_outcome_total{outcome="rejected",plan="software_crash"}',
        'contingency_gate_wait_seconds_count{decision="rejected",plan="software_crash"}',
        'contingency_remediation_duration_seconds_count{plan="software_crash"}',
    }

    # the intake reads Prefect at most every 15 s: poll until this test's runs are in
    def complete() -> dict[str, float] | None:
        samples = _samples(lab_stack)
        return samples if all(samples.get(k, 0) >= 1 for k in wanted) else None

    samples = wait_for(complete, timeout_s=40, what=f"outcome metrics {sorted(wanted)}")
    # what the intake counted: the typed summaries the incident flow published
    with get_client(sync_client=True) as client:
        facts = read_summaries(client, [healthy, unroutable, gated])
    assert (facts[healthy].outcome, facts[healthy].plan) == (Outcome.healthy, "software_crash")
    assert (facts[unroutable].outcome, facts[unroutable].plan) == (
        Outcome.unroutable,
        "unroutable",
    )
    assert (facts[gated].outcome, facts[gated].gates) == (Outcome.rejected, ["rejected"])
    waited = samples['contingency_gate_wait_seconds_sum{decision="rejected",plan="software_crash"}']
    assert waited >= 2.0
    # the remediation time excludes the gate wait: far less than the whole run
    assert samples['contingency_remediation_duration_seconds_sum{plan="software_crash"}'] > 0


@flow(name="incident")
def _incident_stand_in() -> None:
    """Only its name: runs of the flow `incident` made through the API, never run."""


def _finished_run(tags: list[str], wait_at_gate_s: float = 0.0) -> str:
    """An incident run taken to Completed through the API (no process): Running, a wait
    Paused if asked, Completed."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(_incident_stand_in, tags=["incident", *tags], state=Pending())
        client.set_flow_run_state(run.id, Running(), force=True)
        time.sleep(0.2)
        if wait_at_gate_s:
            client.set_flow_run_state(run.id, Paused(), force=True)
            time.sleep(wait_at_gate_s)
            client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Completed(), force=True)
    return str(run.id)


def test_stats_and_metrics_read_the_summary_never_the_markdown(lab_stack: Stack) -> None:
    """Two finished runs whose summaries are the only truth: one's markdown report says
    "recovered" (title, description, time to recover, no expired gate) while its summary
    says not_approved after an expired gate; the other has no markdown report at all."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    plan = f"typed_{uuid.uuid4().hex[:8]}"
    lied = _finished_run([f"plan:{plan}", "fingerprint:fp-lied"], wait_at_gate_s=1.5)
    bare = _finished_run([f"plan:{plan}", "fingerprint:fp-bare"])
    markdown = (
        "# Incident ServiceDown — recovered\n\n- **outcome**: recovered\n"
        "- **time to recover**: 1.0s\n\n### Gate 1: approved\n"
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=f"incident-{lied}", type="markdown", data=markdown,
                description="recovered: web answers again", flow_run_id=UUID(lied),
            )
        )  # fmt: skip
    publish_summary(
        IncidentSummary(
            run_id=lied, plan=plan, outcome=Outcome.not_approved, gates=["expired"],
            message="nobody answered the gate",
        ),
        flow_run_id=UUID(lied),
    )  # fmt: skip
    publish_summary(
        IncidentSummary(run_id=bare, plan=plan, outcome=Outcome.restored, recover_s=7.5),
        flow_run_id=UUID(bare),
    )

    records = {r.run_id: r for r in collect(since) if r.plan == plan}
    assert set(records) == {lied, bare}
    r = records[lied]
    assert (r.outcome, r.ok, r.recover_s, r.gates_expired) == (
        Outcome.not_approved, False, None, 1,
    )  # fmt: skip
    r = records[bare]
    assert (r.outcome, r.ok, r.recover_s, r.gates_expired) == (Outcome.restored, True, 7.5, 0)

    wanted = {
        f'contingency_incidents_outcome_total{{outcome="not_approved",plan="{plan}"}}': 1,
        f'contingency_incidents_outcome_total{{outcome="restored",plan="{plan}"}}': 1,
        f'contingency_gate_wait_seconds_count{{decision="not_approved",plan="{plan}"}}': 1,
    }

    def counted() -> dict[str, float] | None:
        samples = _samples(lab_stack)
        return samples if all(samples.get(k) == v for k, v in wanted.items()) else None

    samples = wait_for(counted, timeout_s=40, what=f"typed outcome metrics {sorted(wanted)}")
    mine = {
        k
        for k in samples
        if f'plan="{plan}"' in k and k.startswith("contingency_incidents_outcome_total")
    }
    assert mine == set(list(wanted)[:2]), mine  # nothing counted from the markdown
