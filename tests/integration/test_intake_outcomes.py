"""Incident outcomes, remediation durations and gate waits on the stack intake's /metrics,
read from the real Prefect server after real incidents ran on the lab stack."""

from __future__ import annotations

import time
import uuid

import requests

from contingency.alerts import alertmanager_payload
from contingency.gates import decide, open_gates
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.waiting import wait_for_run
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
    waited = samples['contingency_gate_wait_seconds_sum{decision="rejected",plan="software_crash"}']
    assert waited >= 2.0
    # the remediation time excludes the gate wait: far less than the whole run
    assert samples['contingency_remediation_duration_seconds_sum{plan="software_crash"}'] > 0
