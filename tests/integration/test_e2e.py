"""End to end on the real embedded stack: an alert restarts a crashed lab service."""

from __future__ import annotations

import uuid

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.launcher import crash_service
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tests.fixtures_stack import Stack, service_pid, wait_for


def _health_url(stack: Stack, service: str) -> str:
    return load_inventory(stack.inventory).service(service).health.url  # type: ignore[union-attr]


def _artifact_keys(run_id: str) -> list[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])
            )
        )
    return [a.key for a in arts if a.key]


def test_alert_restarts_crashed_service(lab_stack: Stack) -> None:
    url = _health_url(lab_stack, "web")
    old_pid = wait_for(lambda: service_pid(url), what="web up")
    crash_service(lab_stack.settings, "web")
    assert service_pid(url) is None

    labels = {"alertname": "ServiceDown", "service": "web", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    assert resp.status_code == 202, resp.text
    refs = resp.json()["incidents"]
    assert len(refs) == 1 and refs[0]["flow_run_id"] and not refs[0]["deduplicated"]
    run_id = refs[0]["flow_run_id"]

    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    new_pid = wait_for(lambda: service_pid(url), what="web answering again")
    assert new_pid != old_pid
    report = lab_stack.state_dir / "reports" / f"incident-{run_id}.md"
    text = report.read_text()
    assert "recovered" in text and "labctl restart web" in text and "| 0 |" in text
    assert f"incident-{run_id}" in _artifact_keys(run_id)


def test_resent_alert_starts_nothing_new(lab_stack: Stack) -> None:
    labels = {"alertname": "ServiceDown", "service": "api", "test": uuid.uuid4().hex}
    payload = alertmanager_payload(labels)
    first = lab_stack.post("/webhook/alertmanager", payload).json()["incidents"][0]
    again = lab_stack.post("/webhook/alertmanager", payload).json()["incidents"][0]
    assert again["flow_run_id"] == first["flow_run_id"]
    assert again["deduplicated"] is True and first["deduplicated"] is False
    run = wait_for_run(first["flow_run_id"], timeout_s=120)
    # api was healthy: nothing to do, nothing run
    assert run.state is not None and run.state.is_completed()
    report = (lab_stack.state_dir / "reports" / f"incident-{first['flow_run_id']}.md").read_text()
    assert "healthy" in report and "No command was run." in report


def test_resolved_alert_starts_no_incident(lab_stack: Stack) -> None:
    labels = {"alertname": "ServiceDown", "service": "web", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels, status="resolved"))
    assert resp.status_code == 202
    ref = resp.json()["incidents"][0]
    assert ref["flow_run_id"] is None and ref["status"] == "resolved"


def test_unknown_service_is_unroutable_and_escalated(lab_stack: Stack) -> None:
    labels = {
        "alertname": "ServiceDown",
        "service": "no-such-svc; rm -rf /",
        "test": uuid.uuid4().hex,
    }
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_failed()
    assert run.state.name == "Escalated"
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "unroutable" in report and "No command was run." in report
    assert "| unroutable |" in report  # the timeline says why, in its own words


def test_bad_token_and_malformed_body_are_refused(lab_stack: Stack) -> None:
    payload = alertmanager_payload({"alertname": "ServiceDown", "service": "web"})
    assert lab_stack.post("/webhook/alertmanager", payload, token="wrong").status_code == 401
    import requests

    bad = requests.post(
        f"{lab_stack.intake_url}/webhook/alertmanager",
        data="{not json",
        headers={"Authorization": f"Bearer {lab_stack.token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 422 and "invalid body" in bad.text
    missing = lab_stack.post("/webhook/alertmanager", {"version": "4", "status": "firing"})
    assert missing.status_code == 422 and "alerts" in missing.text
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["incident"]))
        )
    assert all("wrong" not in str(r.parameters) for r in runs)
