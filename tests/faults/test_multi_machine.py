"""The production topology on three "machines" (network, mount and UTS namespaces; see
tests/fixtures_machines.py): A runs PostgreSQL-backed Prefect — two API replicas with
``--no-services``, one services process, Redis between them — and the reconciler; B and
C each run a fork server, a worker and an alert intake, B on API replica 1, C on
replica 2. No machine sees another's state directory.

What a person would check: the same alert sent to both intakes is one incident; twenty
alerts are spread over both workers, each report written on the machine that ran it;
the intakes' counters add up across the replicas; and when machine B dies with an
incident waiting at its gate, the reconciler on A reports and pages the interrupted
incident, and C handles the re-sent alert (the successor runs on C and asks again).

The tests share one cluster and do not depend on their order: the machine-B test brings
B back (empty, provisioned again) when it is done.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prometheus_client.parser import text_string_to_metric_families

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.inbox import codes_for as lab_codes
from contingency.lab.inbox import read
from contingency.runtime.stack import api_settings
from inventory.outcomes import INTERRUPTED, Outcome
from tasks.report.summary import read_summaries
from tests.fixtures_machines import POOL, Cluster, start_cluster
from tests.fixtures_stack import wait_for

WORKER = "prefect.worker.name"
"""The flow-run label where Prefect records the worker that ran it."""
DEAD_AFTER_S = 45  # tasks/facts/liveness.DEAD_AFTER_S: the reconciler runs with its default


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(tmp_path_factory.mktemp("machines")) as c:
        env = {"PREFECT_API_URL": c.api_urls[0], "PREFECT_API_AUTH_STRING": c.auth}
        with api_settings(env):  # this process's Prefect client: A's replica 1
            yield c


# -- helpers -----------------------------------------------------------------------------
def probe_alert(tag: str) -> dict[str, Any]:
    """An alert that routes to no plan: its incident escalates at once, runs nothing."""
    return alertmanager_payload({"alertname": "MachineProbe", "probe": tag})


def run(run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def runs_tagged(tag: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
        )


def final(run_id: str, timeout_s: float = 180) -> FlowRun:
    def done() -> FlowRun | None:
        r = run(run_id)
        return r if r.state is not None and r.state.is_final() else None

    return wait_for(done, timeout_s, f"run {run_id} final")  # type: ignore[no-any-return]


def paused(run_id: str, timeout_s: float = 120) -> FlowRun:
    def at_gate() -> FlowRun | None:
        r = run(run_id)
        return r if r.state is not None and r.state.is_paused() else None

    return wait_for(at_gate, timeout_s, f"run {run_id} at its gate")  # type: ignore[no-any-return]


def report_on(cluster: Cluster, machine: str, run_id: str) -> Path:
    """Where the incident's report file would be on ``machine``."""
    return cluster.machines[machine].state / "reports" / f"incident-{run_id}.md"


def report_artifact(run_id: str) -> str:
    from contingency.cli.reports import read_report_artifact

    with get_client(sync_client=True) as client:
        found = read_report_artifact(client, run_id)
    assert found is not None, f"no report artifact for {run_id}"
    return found


def codes_for(cluster: Cluster, run_id: str, person: str = "zhang.wei") -> list[str]:
    """One-time sign-off codes ``person``'s own channel got for a run."""
    return lab_codes(cluster.inbox, run_id, person)


def counter(text: str, family: str) -> float:
    """The sum of a counter family's ``_total`` samples in a /metrics answer."""
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == family
        for s in fam.samples
        if s.name.endswith("_total")
    )


# -- the tests ---------------------------------------------------------------------------
def test_each_machine_has_its_own_state_and_the_pool_names_no_machine_path(
    cluster: Cluster,
) -> None:
    machines = cluster.machines
    assert len({m.state_dir for m in machines.values()}) == 3
    mount = machines["a"].state_dir.parent
    assert not any(mount.iterdir()), "the test's own view of the mount point is empty"
    for m in machines.values():
        others = [o for o in machines.values() if o is not m]
        assert all(not m.path(o.state_dir).exists() for o in others), m.name
        assert (m.state / "inventory" / "routing.yaml").is_file()
        # the machine's processes run with its own state dir
        for name, proc in m.procs.items():
            if name == "redis" or proc.poll() is not None:  # (the migration has ended)
                continue
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            assert f"CONTINGENCY_STATE_DIR={m.state_dir}".encode() in environ, (m.name, name)
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(POOL)
        dep = client.read_deployment_by_name("incident/incident-response")
    job = pool.base_job_template["job_configuration"]
    assert job["command"] == "contingency-flow-run"
    assert not job.get("working_dir")
    assert not dep.pull_steps


def test_the_same_alert_sent_to_both_intakes_is_one_incident(cluster: Cluster) -> None:
    payload = probe_alert(f"same-{uuid.uuid4().hex[:8]}")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda m: cluster.post(m, payload), ["b", "c"]))
    ids = {a["flow_run_id"] for a in answers}
    assert len(ids) == 1, answers
    run_id = ids.pop()
    fingerprint = answers[0]["fingerprint"]
    assert [str(r.id) for r in runs_tagged(f"fingerprint:{fingerprint}")] == [run_id]
    done = final(run_id)
    worker = done.labels.get(WORKER)
    assert worker in ("worker-b", "worker-c"), done.labels
    # the report is on the machine whose worker ran it, and only there
    ran_on, other = ("b", "c") if worker == "worker-b" else ("c", "b")
    wait_for(lambda: report_on(cluster, ran_on, run_id).exists(), 30, "the report file")
    assert not report_on(cluster, other, run_id).exists()


def test_twenty_alerts_run_on_both_workers(cluster: Cluster) -> None:
    tag = uuid.uuid4().hex[:8]
    answers = [cluster.post("bc"[i % 2], probe_alert(f"{tag}-{i}")) for i in range(20)]
    ids = [a["flow_run_id"] for a in answers]
    assert len(set(ids)) == 20 and not any(a["deduplicated"] for a in answers), answers
    runs = [final(i) for i in ids]
    workers = Counter(r.labels.get(WORKER) for r in runs)
    assert set(workers) == {"worker-b", "worker-c"}, workers
    for r in runs:
        ran_on, other = ("b", "c") if r.labels[WORKER] == "worker-b" else ("c", "b")
        wait_for(lambda r=r: report_on(cluster, ran_on, str(r.id)).exists(), 30, "report file")
        assert not report_on(cluster, other, str(r.id)).exists()
    with get_client(sync_client=True) as client:
        summaries = read_summaries(client, ids)
    assert {s.outcome for s in summaries.values()} == {Outcome.unroutable}
    assert len(summaries) == 20


def test_intake_counters_add_up_across_the_replicas(cluster: Cluster) -> None:
    payload = probe_alert(f"count-{uuid.uuid4().hex[:8]}")
    cluster.post("b", payload)
    cluster.post("c", payload)  # a re-send through the other replica
    cluster.post("c", probe_alert(f"count-{uuid.uuid4().hex[:8]}"))
    texts = {m: cluster.metrics(m) for m in ("b", "c")}
    received = {m: counter(t, "contingency_alerts_received") for m, t in texts.items()}
    assert received == {m: float(n) for m, n in cluster.posted.items()}, received
    assert sum(received.values()) == sum(cluster.posted.values())
    for m, text in texts.items():  # every alert received was started or answered
        started = counter(text, "contingency_incidents_started")
        deduplicated = counter(text, "contingency_alerts_deduplicated")
        assert started + deduplicated == received[m], (m, started, deduplicated)


def test_machine_b_dies_at_a_gate_and_c_handles_the_resent_alert(cluster: Cluster) -> None:
    from tasks.facts.liveness import heartbeats_since

    b, c = cluster.machines["b"], cluster.machines["c"]
    # `report` needs sign-off: the incident waits at its gate (its host has no SSH here,
    # so the probe finds the service down)
    payload = alertmanager_payload(
        {"alertname": "ServiceDown", "service": "report", "probe": uuid.uuid4().hex[:8]}
    )
    began = datetime.now(UTC)
    os.kill(c.procs["worker"].pid, signal.SIGSTOP)  # so that B's worker takes it
    try:
        dead_id = cluster.post("b", payload)["flow_run_id"]
        paused(dead_id)
    finally:
        os.kill(c.procs["worker"].pid, signal.SIGCONT)
    assert run(dead_id).labels.get(WORKER) == "worker-b"
    wait_for(lambda: codes_for(cluster, dead_id), 30, "a sign-off code sent from B")
    # B's liveness beats reach the database through replica 1, Redis and A's services
    with get_client(sync_client=True) as client:
        wait_for(lambda: heartbeats_since(client, [dead_id], began), 40, "B's incident beating")

    b.kill()  # every process of machine B, the run at its gate included
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{cluster.intake_url('b')}/healthz", timeout=5)
        _the_dead_incident_is_reported_and_c_takes_over(cluster, payload, dead_id)
    finally:
        cluster.revive("b")  # the other tests need B, whatever order they run in
        cluster.posted["b"] = 0  # a new intake: its counters start again


def _the_dead_incident_is_reported_and_c_takes_over(
    cluster: Cluster, payload: dict[str, Any], dead_id: str
) -> None:

    def reported() -> FlowRun | None:
        r = run(dead_id)
        return r if r.state is not None and r.state.is_final() and "reported" in r.tags else None

    dead = wait_for(reported, DEAD_AFTER_S + 90, "the reconciler on A reporting B's incident")
    assert dead.state.is_crashed() and dead.state.name == INTERRUPTED, dead.state
    successors = [t.split(":", 1)[1] for t in dead.tags if t.startswith("successor:")]
    assert len(successors) == 1, dead.tags
    successor_id = successors[0]

    # the alert is re-sent, to C: C answers with the successor, and runs it
    again = cluster.post("c", payload)
    assert again["flow_run_id"] == successor_id, again
    successor = paused(successor_id)
    assert successor.labels.get(WORKER) == "worker-c", successor.labels
    assert f"successor-of:{dead_id}" in successor.tags
    wait_for(lambda: codes_for(cluster, successor_id), 30, "a new sign-off code, sent from C")
    assert len(runs_tagged(f"fingerprint:{again['fingerprint']}")) == 2

    # the killed incident's story: report (artifact, and the file on A where the
    # reconciler ran), typed summary, page to the command center
    text = report_artifact(dead_id)
    assert "interrupted" in text and successor_id in text, text
    assert report_on(cluster, "a", dead_id).read_text().strip() == text.strip()
    assert not report_on(cluster, "c", dead_id).exists()
    with get_client(sync_client=True) as client:
        summary = read_summaries(client, [dead_id])[dead_id]
    assert summary.outcome == Outcome.interrupted
    pages = [
        msg
        for msg in read(cluster.inbox, "/cc")
        if dead_id in str(msg.get("message", "")) and "INTERRUPTED" in str(msg.get("title"))
    ]
    assert len(pages) == 1, pages
