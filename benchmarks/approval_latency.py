"""Decision-to-resumed-flow latency at an approval gate.

Starts the embedded stack with the lab, opens a gate (the lab's `report` service needs
sign-off), reads the one-time code from the lab inbox, approves through the API (as
`contingency approve` does) and measures from the decision to the start of the first
command after the gate. Then the same with Prefect's default pause poll interval
(10 s) set as the lab's gate policy, as the baseline.

    .venv/bin/python -m benchmarks.approval_latency [--decisions 10] [--baseline 3]

Target: ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from benchmarks.common import first_ssh_start, start_lab_stack
from contingency.cli.alerts import alertmanager_payload, post_alert
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import codes_for
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import StackInfo, down, stack_client, webhook_token
from contingency.runtime.waiting import wait_for_run
from inventory.settings import Settings


def wait(check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise TimeoutError("benchmark step timed out")


def one(settings: Settings, info: StackInfo) -> float:
    crash_service(settings, "report")
    labels = {"alertname": "ServiceDown", "service": "report", "bench": uuid.uuid4().hex}
    answer = post_alert(info.intake_url, webhook_token(settings), alertmanager_payload(labels))
    run_id = answer["incidents"][0]["flow_run_id"]
    wait(lambda: any(g.flow_run_id == run_id for g in open_gates()))
    inbox = settings.lab_dir / "inbox.jsonl"

    def code() -> str | None:  # codes go to each approver only
        return next(iter(codes_for(inbox, run_id, "zhang.wei")), None)

    otp = wait(code)
    decided = datetime.now(UTC)
    decide(run_id, "approve", "zhang.wei", otp)
    run = wait_for_run(run_id, timeout_s=60, poll_s=0.2)
    if not (run.state and run.state.is_completed()):
        raise RuntimeError(f"incident {run_id} ended {run.state}")
    return (first_ssh_start(run_id) - decided).total_seconds()


def measure(
    settings: Settings, info: StackInfo, n: int, poll_s: float, console: Console
) -> list[float]:
    policy = Path(info.inventory) / "gates.yaml"
    policy.write_text(f"gate_policies:\n  default: {{poll_s: {poll_s}}}\n")
    out = []
    for i in range(n):
        out.append(one(settings, info))
        console.print(f"  poll {poll_s}s, decision {i + 1}/{n}: {out[-1]:.2f}s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=3)
    args = parser.parse_args()
    console = Console(stderr=True)
    settings, info = start_lab_stack("bench-gate-", console)
    try:
        with stack_client(settings):
            fast = measure(settings, info, args.decisions, 0.5, console)
            slow = measure(settings, info, args.baseline, 10, console)
    finally:
        down(settings)
    f50, s50 = statistics.median(fast), statistics.median(slow)
    print(
        f"decision→resumed flow (first command after the gate), contingency gate "
        f"({len(fast)} decisions): p50 {f50:.2f}s max {max(fast):.2f}s (target ≤ 1.5s)"
    )
    print(
        f"same with Prefect's default 10 s pause poll ({len(slow)} decisions): "
        f"p50 {s50:.2f}s max {max(slow):.2f}s"
    )
    print(f"ratio (default / contingency): p50 {s50 / f50:.1f}x")


if __name__ == "__main__":
    main()
