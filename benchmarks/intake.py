"""Alert intake under load: duplicate acknowledgements, steady-rate latency, an alert storm.

Starts the embedded stack (`contingency up`: Prefect server on SQLite, the real uvicorn
intake process as the stack starts it) with the per-source rate limit off
(``CONTINGENCY_INTAKE_RATE_PER_SECOND=0``). The stack's worker is stopped first so the
incidents created here wait as Scheduled instead of running on the same 2 cores: this
measures the intake and Prefect's API, not the plans. Alertmanager webhooks go over
keep-alive connections (``benchmarks/intake_load.py``):

1. duplicates: one firing alert re-posted as fast as the intake answers (acks/s);
2. storm: 10,000 posts over 100 fingerprints on 8 connections at once; the Prefect API
   must then hold exactly 100 incident flow runs for them;
3. steady: 200 alerts/s for ``--seconds``: re-sends of the storm's alerts (Alertmanager's
   repeat notifications) plus ``--new-per-second`` new alerts.

Then the stack's intake is restarted with the fast path off
(``CONTINGENCY_INTAKE_DEDUP_CACHE=0``: every re-send asks Prefect) and 1 and 3 run again
as the baseline. Targets: ≥ 2,000 duplicate acks/s; p99 ≤ 25 ms at 200 alerts/s; storm →
exactly 100 incidents.

    .venv/bin/python -m benchmarks.intake [--dup-posts 20000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from prefect.client.orchestration import get_client
from rich.console import Console

from benchmarks.common import incidents_labelled
from benchmarks.intake_load import Answers, blast, http_post, paced, pct
from contingency.cli.alerts import alertmanager_payload
from contingency.runtime.processes import free_port, stop_pid
from contingency.runtime.stack import down, restart, stack_client, up, webhook_token
from inventory.settings import Settings

PATH = "/webhook/alertmanager"


def body_of(labels: dict[str, str], starts_at: datetime) -> bytes:
    return json.dumps(alertmanager_payload(labels, starts_at=starts_at)).encode()


@dataclass
class Target:
    url: str
    token: str

    def request(self, body: bytes) -> bytes:
        return http_post(self.url, PATH, self.token, body)


def duplicates(t: Target, posts: int, conns: int) -> Answers:
    """One alert: the first post creates its incident, then ``posts`` re-sends."""
    body = body_of({"alertname": "BenchDup", "run": uuid.uuid4().hex[:8]}, datetime.now(UTC))
    first = blast(t.url, [t.request(body)], 1)
    if first.statuses != [202]:
        raise RuntimeError(f"first post answered {first.statuses}")
    return checked(blast(t.url, [t.request(body)] * posts, conns), "duplicates")


def storm(t: Target, posts: int, fingerprints: int) -> tuple[str, list[bytes], Answers]:
    """``posts`` posts cycling over ``fingerprints`` alerts, 8 connections at once."""
    run, starts = uuid.uuid4().hex[:8], datetime.now(UTC)
    bodies = [
        body_of({"alertname": "BenchStorm", "run": run, "n": str(i)}, starts)
        for i in range(fingerprints)
    ]
    reqs = [t.request(bodies[k % fingerprints]) for k in range(posts)]
    return run, bodies, checked(blast(t.url, reqs, 8), "storm")


def steady(
    t: Target, rate: float, seconds: float, new_per_s: float, resend: list[bytes]
) -> tuple[Answers, list[int]]:
    """``rate`` posts/s: re-sends, and every ``rate / new_per_s``-th post a new alert."""
    total, nonce, starts = int(rate * seconds), uuid.uuid4().hex[:8], datetime.now(UTC)
    every = int(rate / new_per_s) if new_per_s > 0 else 0
    new = [k for k in range(total) if every and k % every == every - 1]
    bodies = [resend[k % len(resend)] for k in range(total)]
    for k in new:
        bodies[k] = body_of({"alertname": "BenchSteady", "run": nonce, "n": str(k)}, starts)
    return checked(paced(t.url, PATH, t.token, bodies, rate), "steady"), new


def checked(answers: Answers, phase: str) -> Answers:
    if set(answers.statuses) != {202}:
        raise RuntimeError(f"{phase}: answers {answers.codes()}")
    return answers


def incidents_of(run: str) -> set[str]:
    """Incident flow runs whose alert carries the label run=``run`` (from the Prefect API)."""
    return {str(r.id) for r in incidents_labelled("run", run)}


def cancel(run_ids: set[str]) -> None:
    """Cancel runs the stopped worker will never start, so the server's late-runs service
    does not work through them while latency is measured. Their idempotency keys stay."""
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            client.set_flow_run_state(uuid.UUID(run_id), Cancelled(), force=True)


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("the intake did not come back")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def print_steady(name: str, rate: float, answers: Answers, new: list[int]) -> float:
    lat = answers.latencies
    resent = [x for k, x in enumerate(lat) if k not in set(new)]
    new_lat = [lat[k] for k in new]
    p99 = pct(lat, 0.99)
    print(
        f"steady {rate:.0f} alerts/s for {len(lat) / rate:.0f}s, {name}: p50 "
        f"{ms(statistics.median(lat))}, p99 {ms(p99)}, max {ms(max(lat))} "
        f"(re-sends p99 {ms(pct(resent, 0.99))}; {len(new)} new alerts p50 "
        f"{ms(statistics.median(new_lat) if new_lat else 0)}, max {ms(max(new_lat, default=0))})"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dup-posts", type=int, default=20_000)
    parser.add_argument("--baseline-dup-posts", type=int, default=1_000)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--storm-posts", type=int, default=10_000)
    parser.add_argument("--fingerprints", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--new-per-second", type=float, default=1.0)
    args = parser.parse_args()
    console = Console(stderr=True)
    os.environ["CONTINGENCY_INTAKE_RATE_PER_SECOND"] = "0"  # no per-source limit here
    os.environ.pop("CONTINGENCY_INTAKE_DEDUP_CACHE", None)
    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix="bench-intake-")))
    info = up(settings, api_port=free_port(), intake_port=free_port(), console=console)
    worker = settings.state_dir / "run" / "worker.pid"
    pid = int(worker.read_text())
    worker.unlink()  # first: the supervisor restarts only what is recorded
    stop_pid(pid)  # incidents stay Scheduled: the plans do not run here
    t = Target(info.intake_url, webhook_token(settings))
    try:
        with stack_client(settings):
            console.print(f"fast path: {args.dup_posts} duplicates")
            fast_dup = duplicates(t, args.dup_posts, args.conns)
            console.print(f"fast path: storm of {args.storm_posts}")
            run, bodies, storm_answers = storm(t, args.storm_posts, args.fingerprints)
            storm_runs = incidents_of(run)
            started = len(storm_runs)
            cancel(storm_runs)
            console.print(f"fast path: {args.rate:.0f}/s for {args.seconds:.0f}s")
            fast_steady = steady(t, args.rate, args.seconds, args.new_per_second, bodies)
            os.environ["CONTINGENCY_INTAKE_DEDUP_CACHE"] = "0"
            restart(settings, "intake")
            wait_healthy(t.url)
            console.print(f"no fast path: {args.baseline_dup_posts} duplicates")
            base_dup = duplicates(t, args.baseline_dup_posts, args.conns)
            console.print(f"no fast path: {args.rate:.0f}/s for {args.baseline_seconds:.0f}s")
            base_steady = steady(t, args.rate, args.baseline_seconds, args.new_per_second, bodies)
    finally:
        os.environ.pop("CONTINGENCY_INTAKE_DEDUP_CACHE", None)
        down(settings)
    print(
        f"duplicate acks/s, fast path: {fast_dup.per_second:,.0f} "
        f"(p99 {ms(pct(fast_dup.latencies, 0.99))}, {args.conns} connections; target ≥ 2,000/s)"
    )
    print(
        f"duplicate acks/s, no fast path (baseline): {base_dup.per_second:,.0f} "
        f"(p99 {ms(pct(base_dup.latencies, 0.99))})"
    )
    print(f"ratio (fast path / baseline): {fast_dup.per_second / base_dup.per_second:.1f}x")
    print(
        f"storm: {args.storm_posts:,} posts over {args.fingerprints} fingerprints in "
        f"{storm_answers.seconds:.1f}s ({storm_answers.per_second:,.0f}/s, p99 "
        f"{ms(pct(storm_answers.latencies, 0.99))}) → {started} incidents in Prefect "
        f"(must be exactly {args.fingerprints})"
    )
    p_fast = print_steady("fast path", args.rate, *fast_steady)
    p_base = print_steady("no fast path", args.rate, *base_steady)
    print(f"ratio p99 (baseline / fast path): {p_base / p_fast:.1f}x (target p99 ≤ 25 ms)")
    if base_dup.per_second < args.rate:
        print(
            f"  (without the fast path the intake answers at most ~{base_dup.per_second:.0f} "
            f"re-sends/s, below {args.rate:.0f}/s: its queue and latency grow for as long "
            "as the load lasts)"
        )
    if started != args.fingerprints:
        raise SystemExit(f"the storm started {started} incidents, not {args.fingerprints}")


if __name__ == "__main__":
    main()
