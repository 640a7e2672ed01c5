"""A generic sender that omits ``starts_at`` re-sends its alert a minute later: while
the alert's incident is open, the re-send joins it instead of opening a second one (the
intake dates such alerts by the minute, so the idempotency key alone would differ)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.states import Cancelled

from contingency.cli.gates import open_gates
from contingency.lab.launcher import crash_service, labctl, service_host
from tests.fixtures_stack import Stack, run_whereabouts, wait_for


def _post(stack: Stack, fingerprint: str, starts_at: str | None = None) -> dict:
    alert: dict = {"labels": {"alertname": "ServiceDown", "service": "report"}}
    alert["fingerprint"] = fingerprint
    if starts_at:
        alert["starts_at"] = starts_at
    resp = stack.post("/webhook/generic", {"alerts": [alert]})
    assert resp.status_code == 202, resp.text
    return dict(resp.json()["incidents"][0])


def test_undated_resend_in_the_next_minute_joins_the_open_incident(lab_stack: Stack) -> None:
    fingerprint = f"generic-report-{uuid.uuid4().hex[:8]}"
    crash_service(lab_stack.settings, "report")
    first = None
    try:
        first = _post(lab_stack, fingerprint)
        run_id = first["flow_run_id"]
        assert run_id and not first["deduplicated"]
        # the incident stays open: `report` needs sign-off
        try:
            wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 150, "gate")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{run_whereabouts(run_id)}") from None
        minute = datetime.now(UTC).minute
        time.sleep(61 - datetime.now(UTC).second)  # into the next minute: a new key
        assert datetime.now(UTC).minute != minute
        again = _post(lab_stack, fingerprint)
        assert again["flow_run_id"] == run_id, again
        assert again["deduplicated"] and "same fingerprint" in again["note"]
        with get_client(sync_client=True) as client:  # by tag: the stack holds many runs
            mine = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[f"fingerprint:{fingerprint}"])
                )
            )
        assert len(mine) == 1, [r.id for r in mine]
    finally:
        with get_client(sync_client=True) as client:
            if first and first.get("flow_run_id"):
                client.set_flow_run_state(UUID(first["flow_run_id"]), Cancelled(), force=True)
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")


def test_a_dated_alert_keeps_its_own_key(lab_stack: Stack) -> None:
    """With ``starts_at`` the sender says when it fired: the same fingerprint with an
    earlier start is the same firing (a re-send), whatever the minute now."""
    fingerprint = f"generic-dated-{uuid.uuid4().hex[:8]}"
    one = _post(lab_stack, fingerprint, starts_at="2026-01-01T00:00:00Z")
    two = _post(lab_stack, fingerprint, starts_at="2026-01-01T00:00:00Z")
    assert one["flow_run_id"] and two["flow_run_id"] == one["flow_run_id"]
    assert two["deduplicated"] and "same fingerprint" not in two["note"]
    with get_client(sync_client=True) as client:
        wait_for(
            lambda: client.read_flow_run(UUID(one["flow_run_id"])).state.is_final(),
            120,
            "the dated incident to end",
        )
