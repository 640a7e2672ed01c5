"""Alert storms: acknowledgement of a 200-alert post, one incident per cause, kill -9.

Starts the embedded stack (`contingency up`: Prefect server on SQLite, the real intake
process, the supervisor) on an inventory that adds a branch site behind one link to the
lab's: ``--hosts`` hosts labelled ``site: branch``, one service on each, and the link
``branch-uplink`` with ``behind_sites: [branch]``. The worker is stopped first, so the
incidents created here wait as Scheduled (open) instead of running on the same 2 cores:
this measures the intake, the outbox and Prefect's API, not the plans.

1. ack: ``--posts`` posts of 200 new unrelated alerts each (unroutable: no plan would
   act), one after the other, answered as soon as they are stored (``?wait=0``, the
   default); then as many again with ``--busy`` (2) CPU-busy processes beside the stack.
   Baseline, in the same run: one such post with ``?wait=25`` — the answer
   waits for every incident, which is what the intake did before the outbox. Then the
   time until every stored alert is an incident (dispatch throughput), and the peak RSS
   of the whole stack against its idle RSS.
2. correlation: one post of 500 distinct alerts caused by one cut link — ``LinkDown``
   for the link (in the middle of the post) and ``ServiceDown`` with distinct labels for
   the services behind it. Expected: exactly 1 incident, 499 alerts absorbed into it.
3. kill -9: a post of 200 new alerts, the intake killed with SIGKILL right after its
   202, restarted by the supervisor: every alert ends as exactly one incident.

    .venv/bin/python -m benchmarks.storm [--posts 5] [--busy 2] [--hosts 40]
        [--phases ack,correlation,kill]

Each figure is printed as soon as it is known, and all of them again at the end.

What this does not measure: pages per role and the link incident's first action (the
worker is stopped); ``benchmarks/alert_to_action.py`` measures alert → first command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from rich.console import Console

from benchmarks.common import cpu_busy, incidents_labelled
from benchmarks.intake_load import pct
from contingency.cli.alerts import alertmanager_payload
from contingency.intake.schemas import fingerprint_of
from contingency.runtime.processes import free_port, processes_with_env, stop_pid
from contingency.runtime.stack import down, stack_client, stack_marks, up, webhook_token
from inventory.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "inventory" / "examples" / "lab"
PATH = "/webhook/alertmanager"


def branch_inventory(dest: Path, hosts: int) -> Path:
    """The lab's inventory plus a branch site behind ``branch-uplink``."""
    shutil.copytree(LAB, dest, ignore=shutil.ignore_patterns("netns"))
    storm = {
        "hosts": {
            "branch-router": {"address": "192.0.2.1", "user": "root", "key_secret": "k"},
            **{
                f"br-{i}": {
                    "address": f"10.9.{i // 250}.{i % 250 + 1}",
                    "user": "root",
                    "key_secret": "k",
                    "labels": {"site": "branch"},
                }
                for i in range(hosts)
            },
        },
        "services": {
            f"brsvc-{i}": {
                "host": f"br-{i}",
                "health": {"kind": "tcp", "port": 80, "address": f"10.9.{i // 250}.{i % 250 + 1}"},
                "manager": {"kind": "systemd", "unit": "app.service"},
            }
            for i in range(hosts)
        },
        "links": {
            "branch-uplink": {
                "router": "branch-router",
                "interface": "eth1",
                "gateway": "198.51.100.1",
                "role": "primary",
                "probe_targets": ["203.0.113.1"],
                "behind_sites": ["branch"],
            }
        },
        "routing": [
            {
                "name": "link-down",
                "match": {"alertname": "LinkDown"},
                "plan": "network_outage",
                "target_label": "link",
            }
        ],
    }
    (dest / "zz-branch.yaml").write_text(yaml.safe_dump(storm, sort_keys=False))
    return dest


def post(url: str, token: str, alerts: list[dict[str, str]], wait: float = 0) -> tuple[float, dict]:
    starts = datetime.now(UTC)
    payload = alertmanager_payload(alerts[0], starts_at=starts)
    template = payload["alerts"][0]
    payload["alerts"] = [
        {**template, "labels": labels, "fingerprint": fingerprint_of(labels)} for labels in alerts
    ]
    body = json.dumps(payload).encode()
    t0 = time.perf_counter()
    resp = requests.post(
        f"{url}{PATH}?wait={wait:g}",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
    took = time.perf_counter() - t0
    if resp.status_code != 202:
        raise RuntimeError(f"post answered {resp.status_code}: {resp.text[:300]}")
    return took, resp.json()


def metric(url: str, name: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def drained(url: str, timeout_s: float) -> float:
    """Seconds until the intake's outbox is empty (every alert started or absorbed)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if metric(url, "contingency_intake_queue_depth") == 0:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"the outbox did not drain within {timeout_s:.0f} s")


def runs_of(run: str) -> Counter[str]:
    """Incident flow runs whose alert carries ``run=<run>``: fingerprint → count."""
    return Counter(
        str(r.parameters["alert"].get("fingerprint")) for r in incidents_labelled("run", run)
    )


def cancel_all() -> None:
    """Cancel the Scheduled incidents (the stopped worker never runs them)."""
    from prefect.client.schemas.filters import FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
                limit=200,
            )
            if not page:
                return
            for r in page:
                client.set_flow_run_state(r.id, Cancelled(), force=True)


def stack_rss_mb(settings: Settings) -> float:
    total = 0
    for pid in processes_with_env(stack_marks(settings)):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class PeakRss:
    """Samples the stack's total RSS every 0.2 s on a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.peak, self._stop = settings, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, stack_rss_mb(self.settings))
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def unrelated(run: str, n: int, start: int = 0) -> list[dict[str, str]]:
    return [
        {"alertname": "StormProbe", "run": run, "n": str(i), "severity": "warning"}
        for i in range(start, start + n)
    ]


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5, help="200-alert posts for the ack figure")
    parser.add_argument("--hosts", type=int, default=40, help="hosts behind the cut link")
    parser.add_argument(
        "--busy", type=int, default=2, help="CPU-busy processes for the second ack figure"
    )
    parser.add_argument(
        "--phases",
        default="ack,correlation,kill",
        help="which parts to run, comma-separated (default: all three)",
    )
    args = parser.parse_args()
    # stopped (timeout, Ctrl-C from a supervisor): still stop the stack it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not phases or phases - {"ack", "correlation", "kill"}:
        parser.error("--phases: a comma-separated list of ack, correlation, kill")
    console = Console(stderr=True)
    os.environ["CONTINGENCY_INTAKE_RATE_PER_SECOND"] = "0"
    state = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    inventory = branch_inventory(state / "inventory", args.hosts)
    settings = Settings(state_dir=state / "state", inventory=inventory)
    info = up(settings, api_port=free_port(), intake_port=free_port(), console=console)
    worker = settings.state_dir / "run" / "worker.pid"
    pid = int(worker.read_text())
    worker.unlink()  # first: the supervisor restarts only what is recorded
    stop_pid(pid)
    url, token = info.intake_url, webhook_token(settings)
    lines: list[str] = []

    def say(*produced: str) -> None:  # each figure as soon as it is known, and at the end
        for line in produced:
            print(line, flush=True)
        lines.extend(produced)

    try:
        with stack_client(settings):
            time.sleep(2)
            idle = stack_rss_mb(settings)
            if "ack" in phases:
                run = uuid.uuid4().hex[:8]
                console.print(f"ack: {args.posts} posts of 200 new alerts")
                with PeakRss(settings) as peak:
                    acks = [
                        post(url, token, unrelated(run, 200, 200 * k))[0] for k in range(args.posts)
                    ]
                    say(
                        f"ack of a 200-alert post ({args.posts} posts): "
                        f"p50 {ms(statistics.median(acks))}, "
                        f"p99 {ms(pct(acks, 0.99))}, max {ms(max(acks))} (target p99 ≤ 50 ms); "
                        f"all: {', '.join(ms(a) for a in acks)}"
                    )
                    if args.busy:
                        console.print(f"ack again, with {args.busy} CPU-busy processes beside")
                        with cpu_busy(args.busy):
                            busy = [
                                post(url, token, unrelated(run, 200, 200 * (args.posts + k)))[0]
                                for k in range(args.posts)
                            ]
                        say(
                            f"ack with {args.busy} CPU-busy processes beside the stack: "
                            f"p50 {ms(statistics.median(busy))}, p99 {ms(pct(busy, 0.99))} "
                            f"(ratio to idle p99 {pct(busy, 0.99) / pct(acks, 0.99):.2f}); "
                            f"all: {', '.join(ms(a) for a in busy)}"
                        )
                    drain = drained(url, 3600)
                console.print("ack baseline: one post of 200 with ?wait=25")
                base_run = uuid.uuid4().hex[:8]
                base, answer = post(url, token, unrelated(base_run, 200), wait=25)
                known = sum(1 for i in answer["incidents"] if i["flow_run_id"])
                drained(url, 900)
                made = runs_of(run)
                stored = 200 * args.posts * (2 if args.busy else 1)
                say(
                    f"baseline, the answer waiting for the incidents (?wait=25): {base:.2f} s "
                    f"({known}/200 incidents known by then); ratio {base / pct(acks, 0.99):.0f}x",
                    f"dispatch: {stored} stored alerts → incidents in {drain:.1f} s "
                    f"({stored / drain:.0f}/s); incidents in Prefect: {len(made)} "
                    f"(must be {stored}), any twice: {any(c > 1 for c in made.values())}",
                    f"stack RSS: idle {idle:.0f} MB, peak during the posts {peak.peak:.0f} MB "
                    f"(ratio {peak.peak / idle:.2f}, target ≤ 2)",
                )
                cancel_all()
            if "correlation" in phases:
                run = uuid.uuid4().hex[:8]
                alerts = [
                    {"alertname": "ServiceDown", "service": f"brsvc-{i % args.hosts}",
                     "check": str(i), "run": run}
                    for i in range(499)
                ]  # fmt: skip
                alerts.insert(250, {"alertname": "LinkDown", "link": "branch-uplink", "run": run})
                absorbed_before = metric(url, "contingency_alerts_absorbed_total")
                console.print("correlation: 500 alerts behind one cut link")
                took, _ = post(url, token, alerts)
                drain = drained(url, 300)
                made = runs_of(run)
                absorbed = metric(url, "contingency_alerts_absorbed_total") - absorbed_before
                say(
                    f"cut link: 500 distinct alerts (acked in {ms(took)}) "
                    f"→ {len(made)} incident(s) "
                    f"(must be 1), {absorbed:.0f} absorbed (must be 499), in {drain:.1f} s"
                )
                cancel_all()
            if "kill" in phases:  # kill -9 right after the 202
                run = uuid.uuid4().hex[:8]
                console.print("kill -9 of the intake right after a 202 for 200 alerts")
                intake_pid = int((settings.state_dir / "run" / "intake.pid").read_text())
                post(url, token, unrelated(run, 200))
                os.kill(intake_pid, signal.SIGKILL)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        if requests.get(f"{url}/healthz", timeout=1).ok:
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(0.3)
                drained(url, 600)
                made = runs_of(run)
                twice = sum(1 for c in made.values() if c > 1)
                say(
                    f"kill -9 after the 202: {len(made)}/200 alerts became incidents "
                    f"(must be 200), {twice} twice (must be 0)"
                )
                cancel_all()
    finally:
        down(settings)
    print("--- summary", flush=True)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
