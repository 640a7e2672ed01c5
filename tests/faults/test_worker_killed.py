"""Fault: the process running an incident is killed (kill -9) mid-remediation, while it
holds the target's lock and waits at the sign-off gate. The fork server's post-mortem
marks the run Crashed, releases the lock at once (not after the lease) and escalates."""

from __future__ import annotations

import os
import re
import signal
import uuid

from prefect.client.orchestration import get_client

from contingency.alerts import alertmanager_payload
from contingency.gates import open_gates
from contingency.lab.inbox import read
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.waiting import wait_for_run
from tests.fixtures_stack import Stack, wait_for


def _incident(stack: Stack) -> str:
    labels = {"alertname": "ServiceDown", "service": "report", "test": uuid.uuid4().hex}
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    return resp.json()["incidents"][0]["flow_run_id"]


def test_killed_incident_is_crashed_unlocked_and_escalated(lab_stack: Stack) -> None:
    crash_service(lab_stack.settings, "report")
    try:
        run_id = _incident(lab_stack)
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 60, what="gate")
        pidfile = lab_stack.state_dir / "run" / "flows" / f"{run_id}.pid"
        os.kill(int(pidfile.read_text()), signal.SIGKILL)  # mid-remediation, lock held
        run = wait_for_run(run_id, timeout_s=60)
        assert run.state is not None and run.state.is_crashed(), run.state
        # the worker (launcher) or the post-mortem, whichever sees the exit first
        assert re.search(r"killed by signal 9|status code: 137", run.state.message or "")
        report = lab_stack.state_dir / "reports" / f"incident-{run_id}.md"
        text = wait_for(lambda: report.exists() and report.read_text(), 30, what="report")
        assert "crashed" in text and "had not acted yet" in text and "lock of report" in text

        def escalated() -> bool:
            msgs = read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")
            return any(
                "ESCALATION" in str(m.get("title", "")) + str(m.get("message", ""))
                and "killed by signal 9" in str(m.get("message", ""))
                for m in msgs
            )

        wait_for(escalated, 30, what="escalation to the command center")
        # The lock is free at once: the next incident for the target acts (reaches its
        # own gate) instead of joining the dead one (lease would take 120 s).
        second = _incident(lab_stack)
        wait_for(lambda: any(g.flow_run_id == second for g in open_gates()), 60, what="gate 2")
    finally:
        with get_client(sync_client=True) as client:
            for g in open_gates():
                client.set_flow_run_state(uuid.UUID(g.flow_run_id), _cancelled(), force=True)
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")


def _cancelled():  # type: ignore[no-untyped-def]
    from prefect.states import Cancelled

    return Cancelled(message="test cleanup")
