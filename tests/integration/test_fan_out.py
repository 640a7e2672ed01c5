"""A service on a group of hosts, through the real stack: the lab's ``edge`` runs on
web1, web2 and web3 (real sshd hosts, one instance each). An alert naming one instance
restarts that instance only; the rolling-restart runbook restarts them one batch at a
time after sign-off, and stops with partial results when a host's restart fails."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import read
from contingency.lab.launcher import labctl
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import (
    Stack,
    approval_code,
    run_whereabouts,
    service_pid,
    wait_for,
)

pytestmark = pytest.mark.integration
WEB = {"web1": "127.0.0.2", "web2": "127.0.0.5", "web3": "127.0.0.6"}


def _url(stack: Stack, host: str) -> str:
    from inventory.loader import load_inventory

    return str(load_inventory(Path(stack.inventory)).service(f"edge.{host}").health.url)


def _pids(stack: Stack) -> dict[str, int | None]:
    return {host: service_pid(_url(stack, host)) for host in WEB}


def _report(stack: Stack, run_id: str) -> str:
    return (stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()


def test_an_alert_for_one_instance_restarts_only_that_instance(lab_stack: Stack) -> None:
    before = _pids(lab_stack)
    assert all(before.values()), before
    labctl(lab_stack.settings, "web2", "kill", "edge")
    port = _url(lab_stack, "web2").rsplit(":", 1)[1].split("/")[0]
    labels = {"alertname": "ServiceDown", "service": "edge", "instance": f"{WEB['web2']}:{port}",
              "test": uuid.uuid4().hex}  # fmt: skip
    try:  # an incident still open at the end is cancelled by _no_incident_left_open
        resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
        run_id = resp.json()["incidents"][0]["flow_run_id"]
        run = wait_for_run(run_id, timeout_s=180)
        assert run.state is not None and run.state.name == "Completed", run_whereabouts(run_id)
    finally:
        labctl(lab_stack.settings, "web2", "start", "edge")
    after = _pids(lab_stack)
    assert after["web2"] and after["web2"] != before["web2"]  # restarted, answers
    assert after["web1"] == before["web1"] and after["web3"] == before["web3"]  # untouched
    report = _report(lab_stack, run_id)
    assert "edge.web2" in report and "web2: `labctl restart edge` → exit 0" in report
    assert "web1: `labctl" not in report and "web3: `labctl" not in report


@pytest.fixture
def web2_edge_broken(lab_stack: Stack):  # type: ignore[no-untyped-def]
    """``labctl restart edge`` fails on web2: its service manager stops edge, then no
    longer knows how to start it. Put back and started afterwards."""
    cfg = lab_stack.state_dir / "lab" / "hosts" / "web2" / "services.json"
    saved = cfg.read_text()
    services = json.loads(saved)
    services.pop("edge")
    cfg.write_text(json.dumps(services))
    yield
    cfg.write_text(saved)
    labctl(lab_stack.settings, "web2", "start", "edge")


def test_a_rolling_restart_that_fails_on_a_batch_stops_with_partial_results(
    lab_stack: Stack, web2_edge_broken: None
) -> None:
    before = _pids(lab_stack)
    labels = {"alertname": "EdgeRollout", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    try:
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 150, "gate")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run_whereabouts(run_id)}") from None
    decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "roll it")
    run = wait_for_run(run_id, timeout_s=180)
    assert run.state is not None and run.state.name == "Escalated", run_whereabouts(run_id)
    after = _pids(lab_stack)
    assert after["web1"] != before["web1"]  # batch 1 restarted web1
    assert after["web2"] is None  # stopped, then its start failed: web2's edge is down
    assert after["web3"] == before["web3"]  # never reached: the rollout stopped
    report = _report(lab_stack, run_id)
    # the plan the approver saw (the gate's description is the same markdown)
    assert "Hosts affected (blast radius): 3 — web1, web2, web3" in report
    assert "## Rollout" in report, report
    assert "| 1 | web1 | edge.web1 | 1 | ok |" in report
    assert "| 2 | web2 | edge.web2 | 2 | FAILED |" in report
    assert "| 3 | web3 | edge.web3 | — | not run |" in report
    assert "1 of 3 failed (33% > 0%)" in report
    pages = read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")
    assert any(run_id in str(p) and "restart-edge" in str(p) for p in pages), pages[-3:]


def test_the_lab_edge_service_is_one_instance_per_web_host(lab_stack: Stack) -> None:
    from inventory.loader import load_inventory

    inv = load_inventory(Path(lab_stack.inventory))
    assert inv.instances["edge"] == ["edge.web1", "edge.web2", "edge.web3"]
    assert {inv.service(f"edge.{h}").host for h in WEB} == set(WEB)
    assert inv.host("web3").groups == ["web"]
    assert all(_pids(lab_stack).values())
