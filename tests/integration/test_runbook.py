"""Runbooks through the real stack: an alert routes to a YAML runbook, which runs over
real SSH on a lab host, probes a real service and calls a real HTTP endpoint; its
Prefect tasks carry the step names; a failing step stops, is passed over or pages the
command center; a sign-off step waits for the command center's one-time code."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import read
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tests.fixtures_stack import Stack, approval_code, run_whereabouts, wait_for

pytestmark = pytest.mark.integration


def _post(stack: Stack, alertname: str) -> str:
    labels = {"alertname": alertname, "test": uuid.uuid4().hex}
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    return str(resp.json()["incidents"][0]["flow_run_id"])


def _run(stack: Stack, alertname: str) -> tuple[str, str, list[str]]:
    return _finish(_post(stack, alertname), stack)


def _finish(run_id: str, stack: Stack) -> tuple[str, str, list[str]]:
    run = wait_for_run(run_id, timeout_s=120)
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run_id)]))
        )
    report = (stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    return run.state.name if run.state else "?", report, [t.name for t in tasks]


def test_disk_full_alert_runs_the_lab_runbook(lab_stack: Stack) -> None:
    tmp = lab_stack.state_dir / "lab" / "hosts" / "app1" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    old = tmp / "old.log"
    old.write_text("x" * 1000)
    os.utime(old, (1_000_000_000, 1_000_000_000))  # 2001: older than any max age
    fresh = tmp / "fresh.log"
    fresh.write_text("keep")
    state, report, tasks = _run(lab_stack, "DiskFull")
    assert state == "Completed", report
    assert not old.exists() and fresh.exists()
    assert {"show-usage", "delete-old-files", "api-still-healthy", "tell-operations"} <= set(tasks)
    assert "runbook_completed" in report and "-mmin +60 -print -delete" in report
    assert "| app1 |" in report and "api-still-healthy (probe): ok" in report
    # the report lists each step's command with its exit code, and the notice's delivery
    assert 'app1: `find "$LAB_HOST_DIR/tmp" -type f -mmin +60 -print -delete` → exit 0' in report
    assert "delete-old-files (ssh): ok — exit 0" in report
    assert "| runbook_notice | operations | ops-channel | yes |" in report


@pytest.fixture
def extra_runbooks(lab_stack: Stack) -> Iterator[Path]:
    """Two more runbooks and their rules, in a file of the stack's inventory (removed after)."""
    web = load_inventory(lab_stack.inventory).service("web").health.url  # type: ignore[union-attr]
    doc = {
        "runbooks": {
            "passes-over": {"steps": [
                {"name": "web-answers", "kind": "http", "url": web},
                {"name": "breaks", "kind": "ssh", "host": "web1", "command": "exit 3",
                 "on_failure": "continue"},
                {"name": "pause", "kind": "wait", "seconds": 0.2},
            ]},
            "escalates": {"steps": [
                {"name": "breaks", "kind": "ssh", "host": "web1", "command": "exit 5",
                 "on_failure": "escalate"},
                {"name": "goes-on", "kind": "ssh", "host": "web1", "command": "echo still-here"},
            ]},
            "stops": {"steps": [
                {"name": "breaks", "kind": "ssh", "host": "web1", "command": "exit 4"},
                {"name": "never", "kind": "ssh", "host": "web1", "command": "touch /tmp/never-ran"},
            ]},
        },
        "routing": [
            {"name": "t-passes-over", "match": {"alertname": "RbPassesOver"}, "plan": "runbook",
             "runbook": "passes-over", "target": "web1"},
            {"name": "t-stops", "match": {"alertname": "RbStops"}, "plan": "runbook",
             "runbook": "stops", "target": "web1"},
            {"name": "t-escalates", "match": {"alertname": "RbEscalates"}, "plan": "runbook",
             "runbook": "escalates", "target": "web1"},
        ],
    }  # fmt: skip
    path = lab_stack.inventory / "zz-test-runbooks.yaml"
    path.write_text(yaml.safe_dump(doc))
    yield path
    path.unlink()


def test_failing_steps_continue_escalate_or_stop(lab_stack: Stack, extra_runbooks: Path) -> None:
    state, report, tasks = _run(lab_stack, "RbPassesOver")
    assert state == "Completed" and "runbook_completed" in report
    assert "failed and passed over: breaks" in report and "breaks (ssh): FAILED — exit 3" in report
    assert "web-answers (http): ok" in report and "pause (wait): ok" in report
    assert {"web-answers", "breaks", "pause"} <= set(tasks)
    state, report, tasks = _run(lab_stack, "RbEscalates")
    assert state == "Escalated" and "runbook_partial" in report
    assert "failed and escalated: breaks" in report and "goes-on (ssh): ok — exit 0" in report
    assert "| escalation | command_center | cc-channel | yes |" in report
    assert {"breaks", "goes-on"} <= set(tasks)
    state, report, tasks = _run(lab_stack, "RbStops")
    assert state == "Escalated" and "stopped at step 'breaks'" in report
    assert "never" not in tasks and not Path("/tmp/never-ran").exists()


def test_dry_run_of_a_runbook_from_the_cli(lab_stack: Stack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    res = subprocess.run(
        [sys.executable, "-m", "contingency", "plan", "runbook:clear-tmp", "--target", "app1",
         "--dry-run", "--param", "max_age_min=5", "--state-dir", str(lab_stack.state_dir)],
        env={**env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dry_run" in res.stdout and "-mmin +5 -print" in res.stdout


def test_sign_off_step_waits_for_the_command_center(lab_stack: Stack) -> None:
    """The lab's restart-report runbook: status (fails, passed over: the service is
    stopped), sign-off with the one-time code, restart, wait until healthy, notice."""
    from contingency.lab.launcher import labctl, service_host

    host = service_host(lab_stack.settings, "report")
    labctl(lab_stack.settings, host, "stop", "report")
    try:  # an incident still open at the end is cancelled by _no_incident_left_open
        run_id = _post(lab_stack, "ReportStuck")
        try:  # the worker starts the run, `report-status` runs over SSH, then the gate
            wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 150, "gate")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{run_whereabouts(run_id)}") from None
        code = _code(lab_stack, run_id)
        decide(run_id, "approve", "zhang.wei", code, "restart it")
        state, report, tasks = _finish(run_id, lab_stack)
    finally:
        labctl(lab_stack.settings, host, "start", "report")
    assert state == "Completed", report
    assert {"report-status", "restart-report", "report-healthy", "tell-users"} <= set(tasks)
    assert "report-status (ssh): FAILED" in report and "sign-off: approved" in report
    assert "db1: `labctl restart report` → exit 0" in report
    assert "report-healthy (wait): ok — report healthy" in report
    notices = read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/users")
    assert any(
        "The reporting service is back: restarted after sign-off." in str(m) for m in notices
    )


def _code(stack: Stack, run_id: str) -> str:
    return approval_code(stack, run_id)  # zhang.wei's own channel
