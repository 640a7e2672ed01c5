"""Sign-off through the real stack: the worker runs the incident, the lab inbox gets
the one-time code, decisions come from the CLI path — and the gate survives a
worker restart and a Prefect server restart while it waits."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import read
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.stack import restart
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, approval_code, wait_for


@pytest.fixture
def report_down(lab_stack: Stack) -> Iterator[str]:
    """The `report` service (restart needs sign-off) crashed; started again afterwards."""
    crash_service(lab_stack.settings, "report")
    yield "report"
    labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")


def _open_incident(stack: Stack, status: str = "firing") -> tuple[str, dict]:
    labels = {"alertname": "ServiceDown", "service": "report", "test": uuid.uuid4().hex}
    payload = alertmanager_payload(labels, status=status)
    run_id = stack.post("/webhook/alertmanager", payload).json()["incidents"][0]["flow_run_id"]
    wait_for(
        lambda: any(g.flow_run_id == run_id for g in open_gates()), timeout_s=60, what="gate open"
    )
    return run_id, payload


def _report(stack: Stack, run_id: str) -> str:
    return (stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()


def _paused(run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(uuid.UUID(run_id)).state
    return bool(state and state.is_paused())


def test_wrong_code_then_approval_restarts_the_service(lab_stack: Stack, report_down: str) -> None:
    run_id, _ = _open_incident(lab_stack)
    code = approval_code(lab_stack, run_id)
    ops = [
        m
        for m in read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/ops")
        if run_id in m.get("message", "")
    ]
    assert ops and all(code not in m["message"] for m in ops), "code leaked to operations"
    decide(run_id, "approve", "zhang.wei", "999999" if code != "999999" else "111111")
    time.sleep(2)
    assert _paused(run_id), "a wrong code must leave the gate open"
    # whoever holds zhang.wei's code cannot sign off as li.na (3/8)
    wait_for(lambda: _paused(run_id), 30, what="gate waiting again")
    decide(run_id, "approve", "li.na", code, "forged")
    time.sleep(2)
    assert _paused(run_id), "a code sent to zhang.wei used by li.na must leave the gate open"
    wait_for(lambda: _paused(run_id), 30, what="gate waiting again")
    decide(run_id, "approve", "zhang.wei", code, "restart it")
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed(), run.state
    text = _report(lab_stack, run_id)
    assert "recovered" in text and "labctl restart report" in text
    assert "wrong or used approval code" in text and "| zhang.wei | approve | True | yes |" in text
    assert "| li.na | approve | False | no: code was not issued to li.na |" in text
    assert code not in text, "the one-time code must not be in the report"
    # the approval section: person, channel (secret name, not URL), code sent, decided
    row = re.search(
        r"\| zhang\.wei \| approve \| person-zhang-wei \| ([\d: -]+) \| ([\d: -]+) \|", text
    )
    assert row and row.group(1) <= row.group(2), text
    assert "json://" not in text
    cc = [m for m in read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")]
    mine = [m for m in cc if run_id in str(m.get("message", ""))]
    assert mine, "the command-center channel still hears that a sign-off is needed"
    assert all(code not in str(m) and "code:" not in str(m["message"]) for m in mine)


def test_rejection_runs_nothing(lab_stack: Stack, report_down: str) -> None:
    run_id, _ = _open_incident(lab_stack)
    code = approval_code(lab_stack, run_id, person="li.na")
    decide(run_id, "reject", "li.na", code, "not during business hours")
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed()
    text = _report(lab_stack, run_id)
    assert "rejected" in text and "No command was run." in text


def test_resolved_alert_cancels_the_gate(lab_stack: Stack, report_down: str) -> None:
    run_id, payload = _open_incident(lab_stack)
    resolved = {
        **payload,
        "status": "resolved",
        "alerts": [{**payload["alerts"][0], "status": "resolved"}],
    }
    answer = lab_stack.post("/webhook/alertmanager", resolved).json()["incidents"][0]
    assert answer["flow_run_id"] is None and "1 open incident" in answer["note"]
    run = wait_for_run(run_id, timeout_s=60)
    assert run.state is not None and run.state.is_completed()
    text = _report(lab_stack, run_id)
    assert "cleared on its own" in text and "No command was run." in text


@pytest.mark.parametrize("component", ["worker", "server"])
def test_gate_survives_a_restart(lab_stack: Stack, report_down: str, component: str) -> None:
    run_id, _ = _open_incident(lab_stack)
    code = approval_code(lab_stack, run_id)
    restart(lab_stack.settings, component)
    time.sleep(3)
    assert _paused(run_id)
    decide(run_id, "approve", "zhang.wei", code)
    run = wait_for_run(run_id, timeout_s=90)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "recovered" in _report(lab_stack, run_id)
