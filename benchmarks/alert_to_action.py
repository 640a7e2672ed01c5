"""Alert-to-action latency: from the webhook POST to the start of the first SSH command.

Starts two embedded stacks with the lab, one after the other: one with Contingency's
poll intervals (the default of ``contingency up``) and one with Prefect's defaults
(10 s), crashes the lab's ``web`` service, posts an Alertmanager alert and reads the
start time of the incident's first ``ssh`` task run from the Prefect API.

    .venv/bin/python -m benchmarks.alert_to_action [--alerts 20] [--baseline-alerts 6]

Prints p50/p95 for both and the ratio (default / fast). Targets: p50 ≤ 2.5 s, p95 ≤ 4 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

from rich.console import Console

from benchmarks.common import first_ssh_start, start_lab_stack
from contingency.cli.alerts import alertmanager_payload, post_alert
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import FAST_POLLING, down, stack_client, webhook_token
from contingency.runtime.waiting import wait_for_run

PREFECT_DEFAULTS = {
    "PREFECT_WORKER_QUERY_SECONDS": "10",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
    "PREFECT_RUNNER_POLL_FREQUENCY": "10",
}


def measure(polling: dict[str, str], n: int, console: Console) -> list[float]:
    settings, info = start_lab_stack("bench-a2a-", console, polling)
    token = webhook_token(settings)
    samples = []
    try:
        with stack_client(settings):
            for i in range(n):
                crash_service(settings, "web")
                labels = {
                    "alertname": "ServiceDown",
                    "service": "web",
                    "bench": str(i),
                    "run": uuid.uuid4().hex[:8],
                }
                sent = datetime.now(UTC)
                answer = post_alert(info.intake_url, token, alertmanager_payload(labels), wait=25)
                run_id = answer["incidents"][0]["flow_run_id"]
                if not run_id:
                    raise RuntimeError(f"the answer names no incident: {answer}")
                run = wait_for_run(run_id, timeout_s=120, poll_s=0.2)
                if not (run.state and run.state.is_completed()):
                    raise RuntimeError(f"incident {run_id} ended {run.state}")
                latency = (first_ssh_start(run_id) - sent).total_seconds()
                samples.append(latency)
                console.print(f"  alert {i + 1}/{n}: {latency:.2f}s")
                time.sleep(0.5)
    finally:
        down(settings)
    return samples


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--baseline-alerts", type=int, default=6)
    args = parser.parse_args()
    console = Console(stderr=True)
    console.print(f"contingency poll intervals {FAST_POLLING}")
    fast = measure(FAST_POLLING, args.alerts, console)
    console.print(f"Prefect default poll intervals {PREFECT_DEFAULTS}")
    slow = measure(PREFECT_DEFAULTS, args.baseline_alerts, console)
    f50, f95 = statistics.median(fast), pct(fast, 0.95)
    s50, s95 = statistics.median(slow), pct(slow, 0.95)
    print(
        f"alert→first SSH command, contingency intervals ({len(fast)} alerts): "
        f"p50 {f50:.2f}s p95 {f95:.2f}s (targets p50 ≤ 2.5s, p95 ≤ 4s)"
    )
    print(
        f"alert→first SSH command, Prefect defaults ({len(slow)} alerts): "
        f"p50 {s50:.2f}s p95 {s95:.2f}s"
    )
    print(f"ratio (default / contingency): p50 {s50 / f50:.1f}x, p95 {s95 / f95:.1f}x")


if __name__ == "__main__":
    main()
