"""Fault: the Prefect worker is killed (kill -9) while an incident waits at its gate.

The run's process lives in the fork server, not in the worker, so the gate keeps
waiting; the supervisor starts a new worker; an approval runs the plan exactly once.
(The run's *own* process killed at the gate: tests/faults/test_reliability.py.)
"""

from __future__ import annotations

import os
import signal
import time

from contingency.cli.gates import decide, open_gates
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from tests.faults.test_reliability import _alert, _cancel_open, _lock_free, _restarts, _run
from tests.fixtures_stack import Stack, approval_code, wait_for


def _worker_pid(stack: Stack) -> int:
    return int((stack.state_dir / "run" / "worker.pid").read_text().strip())


def test_killed_worker_leaves_the_gate_waiting_and_is_replaced(lab_stack: Stack) -> None:
    crash_service(lab_stack.settings, "report")
    try:
        run_id = _alert(lab_stack, "report")
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 60, what="gate")
        old = _worker_pid(lab_stack)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: _worker_pid(lab_stack) != old, 30, "a new worker")
        time.sleep(3)
        assert _run(run_id).state.is_paused()
        assert next(g for g in open_gates() if g.flow_run_id == run_id).live
        before = _restarts(lab_stack, "report")
        decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "go")
        run = wait_for_run(run_id, timeout_s=90)
        assert run.state is not None and run.state.is_completed(), run.state
        assert _restarts(lab_stack, "report") == before + 1
        wait_for(lambda: _lock_free("report"), 30, "lock released")
    finally:
        _cancel_open()
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")
