"""Alert-to-action latency: from the webhook POST to the start of the first SSH command.

Starts two embedded stacks with the lab, one after the other: one with Contingency's
poll intervals (the default of ``contingency up``) and one with Prefect's defaults
(10 s). For each alert it crashes the lab's ``web`` service, posts an Alertmanager
alert and reads the start time of the incident's first ``ssh`` task run from the
Prefect API, and where the time went: the run created in Prefect, taken by the worker
(Pending), running (the engine), the first ``ssh`` task. On the first stack the alerts
are sent twice: on the idle machine, then with ``--busy`` (2) CPU-busy processes beside
the stack — both figures and their ratio come from the same run.

    .venv/bin/python -m benchmarks.alert_to_action [--alerts 20] [--busy 2]
        [--baseline-alerts 6]

Targets (#15): p50 ≤ 1 s idle; busy p50 ≤ 2x idle.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import uuid
from datetime import UTC, datetime

from prefect.client.orchestration import get_client
from rich.console import Console

from benchmarks.common import cpu_busy, first_ssh_start, start_lab_stack
from contingency.cli.alerts import alertmanager_payload, post_alert
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import FAST_POLLING, down, stack_client, webhook_token
from contingency.runtime.waiting import wait_for_run
from inventory.settings import Settings

PREFECT_DEFAULTS = {
    "PREFECT_WORKER_QUERY_SECONDS": "10",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
    "PREFECT_RUNNER_POLL_FREQUENCY": "10",
}
STAGES = ("post→created", "created→taken", "taken→running", "running→first ssh")
"""Where the time goes: the post to the run's creation in Prefect (intake, outbox,
dispatcher), the worker taking it (Pending), the engine running it (Running), the
flow's first ssh task."""

Samples = tuple[list[float], list[list[float]]]


def _stages(run_id: str, sent: datetime, first: datetime) -> list[float]:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
        states = client.read_flow_run_states(uuid.UUID(run_id))
    pending = min((st.timestamp for st in states if st.type.value == "PENDING"), default=None)
    marks = [sent, run.created, pending, run.start_time, first]
    if any(m is None for m in marks):
        return [math.nan] * len(STAGES)
    return [(b - a).total_seconds() for a, b in zip(marks, marks[1:], strict=False)]  # type: ignore[operator]


def _alerts(settings: Settings, url: str, n: int, console: Console, tag: str) -> Samples:
    token = webhook_token(settings)
    samples: list[float] = []
    stages: list[list[float]] = []
    for i in range(n):
        crash_service(settings, "web")
        labels = {"alertname": "ServiceDown", "service": "web", "bench": f"{tag}-{i}",
                  "run": uuid.uuid4().hex[:8]}  # fmt: skip
        sent = datetime.now(UTC)
        answer = post_alert(url, token, alertmanager_payload(labels), wait=25)
        run_id = answer["incidents"][0]["flow_run_id"]
        if not run_id:
            raise RuntimeError(f"the answer names no incident: {answer}")
        run = wait_for_run(run_id, timeout_s=120, poll_s=0.2)
        if not (run.state and run.state.is_completed()):
            raise RuntimeError(f"incident {run_id} ended {run.state}")
        first = first_ssh_start(run_id)
        samples.append((first - sent).total_seconds())
        stages.append(_stages(run_id, sent, first))
        parts = ", ".join(f"{s} {v:.2f}" for s, v in zip(STAGES, stages[-1], strict=True))
        console.print(f"  alert {i + 1}/{n}: {samples[-1]:.2f}s ({parts})")
        time.sleep(0.5)
    return samples, stages


def measure(polling: dict[str, str], n: int, console: Console, busy: int = 0) -> dict[str, Samples]:
    """``n`` alerts on a fresh lab stack (idle), then ``n`` more beside ``busy``
    CPU-busy processes if ``busy``."""
    settings, info = start_lab_stack("bench-a2a-", console, polling)
    out: dict[str, Samples] = {}
    try:
        with stack_client(settings):
            console.print("  idle:")
            out["idle"] = _alerts(settings, info.intake_url, n, console, "idle")
            if busy:
                console.print(f"  with {busy} CPU-busy processes beside the stack:")
                with cpu_busy(busy):
                    out["busy"] = _alerts(settings, info.intake_url, n, console, "busy")
    finally:
        down(settings)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(what: str, samples: Samples) -> str:
    values, stages = samples
    medians = ", ".join(
        f"{name} {statistics.median(col):.2f}s"
        for name, col in zip(STAGES, zip(*stages, strict=True), strict=True)
    )
    return (
        f"alert→first SSH command, {what} ({len(values)} alerts): p50 "
        f"{statistics.median(values):.2f}s p95 {pct(values, 0.95):.2f}s; stage medians: {medians}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2, help="CPU-busy processes (0: none)")
    parser.add_argument("--baseline-alerts", type=int, default=6)
    args = parser.parse_args()
    console = Console(stderr=True)
    console.print(f"contingency poll intervals {FAST_POLLING}")
    fast = measure(FAST_POLLING, args.alerts, console, args.busy)
    print(_line("contingency intervals, idle", fast["idle"]) + " (target p50 ≤ 1 s)", flush=True)
    idle50 = statistics.median(fast["idle"][0])
    if "busy" in fast:
        busy50 = statistics.median(fast["busy"][0])
        print(
            _line(f"contingency intervals, {args.busy} CPU-busy processes beside", fast["busy"])
            + f"; ratio to idle p50 {busy50 / idle50:.2f} (target ≤ 2)",
            flush=True,
        )
    if args.baseline_alerts:
        console.print(f"Prefect default poll intervals {PREFECT_DEFAULTS}")
        slow = measure(PREFECT_DEFAULTS, args.baseline_alerts, console)["idle"]
        print(_line("Prefect defaults, idle", slow))
        print(f"ratio (default / contingency): p50 {statistics.median(slow[0]) / idle50:.1f}x")


if __name__ == "__main__":
    main()
