"""Several reconcilers at once (the stack's own and two more in this process, as on
three machines): a run that died unreported gets exactly one report, one page and one
successor."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.states import Crashed, Scheduled

from contingency.lab.inbox import read
from contingency.runtime.reconciler import Reconciler
from inventory.alert import Alert
from tests.fixtures_stack import Stack, wait_for


def test_three_reconcilers_finish_a_dead_run_once(lab_stack: Stack) -> None:
    fingerprint = uuid.uuid4().hex[:16]
    alert = Alert(
        fingerprint=fingerprint,
        labels={"alertname": "ServiceDown", "service": "web", "test": fingerprint},
        source="alertmanager",
    )
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("incident/incident-response")
        run = client.create_flow_run_from_deployment(
            dep.id,
            parameters={"alert": alert.model_dump(mode="json")},
            idempotency_key=f"replicas-{fingerprint}",
            tags=["incident", f"fingerprint:{fingerprint}"],
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1)),
        )
        client.set_flow_run_state(run.id, Crashed(message="injected: lost at submission"))
    stop = threading.Event()

    def replica() -> None:
        rec = Reconciler()
        rec.api_up_since = time.monotonic() - rec.dead_after_s
        while not stop.is_set():
            rec.run_once()
            time.sleep(0.2)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(replica,), daemon=True)
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    try:
        with get_client(sync_client=True) as client:
            wait_for(
                lambda: "reported" in client.read_flow_run(run.id).tags, 60, "the run reported"
            )
            time.sleep(5)  # let every replica make a few more passes
            successors = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[f"successor-of:{run.id}"])
                )
            )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert len(successors) == 1
    pages = [
        m
        for m in read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")
        if str(run.id) in str(m.get("message", "")) and "INTERRUPTED" in str(m.get("title"))
    ]
    assert len(pages) == 1, pages
    report = lab_stack.state_dir / "reports" / f"incident-{run.id}.md"
    assert "before it started" in report.read_text()
