"""A re-sent firing alert is never swallowed by a dead incident: real intake processes on
the lab stack's Prefect server.

Each test posts an alert that routes nowhere (a unique label; the run escalates quickly and
runs no command), waits for its run to end, then forces it to ``Crashed`` through the
Prefect API. That stands in for the death of the run's process (the reconciler tests kill
processes for real); what matters here is what the intake does with the dead run when the
sender re-sends the alert.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed

from contingency.intake.schemas import fingerprint_of
from contingency.runtime.incident_runs import INTERRUPTED, MAX_SUCCESSORS, successor_key
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack
from tests.integration.test_intake_readiness import intake_process

TTL = "1"  # the replicas' fast-path TTL: a re-send after 1 s goes to Prefect


def alert_payload() -> dict[str, Any]:
    labels = {"alertname": "ResendProbe", "t": uuid.uuid4().hex}
    return {"alerts": [{"labels": labels, "starts_at": datetime.now(UTC).isoformat()}]}


def post(url: str, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(
        f"{url}/webhook/generic",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert r.status_code == 202, r.text[:500]
    return r.json()["incidents"][0]


def _answered(url: str, token: str, payload: dict[str, Any], tries: int = 3) -> dict[str, Any]:
    """Post until the answer names the incident (at most ``tries`` times, 2 s apart)."""
    for _ in range(tries - 1):
        ans = post(url, token, payload)
        if ans["flow_run_id"] is not None:
            return ans
        assert ans["note"].startswith(("queued", "not started yet")), ans
        time.sleep(2)
    return post(url, token, payload)


def read(run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def crash(run_id: str, name: str = "Crashed") -> None:
    """End the run (it escalates: nothing to route), then force it Crashed: the stand-in
    for its process dying."""
    wait_for_run(run_id, timeout_s=180)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            UUID(run_id), Crashed(name=name, message="test: the process died"), force=True
        )
    assert read(run_id).state.is_crashed()  # type: ignore[union-attr]
    time.sleep(float(TTL) + 0.2)  # the replicas' cached answer for the key has expired


def runs_of(payload: dict[str, Any]) -> list[FlowRun]:
    fp = fingerprint_of(payload["alerts"][0]["labels"])
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"fingerprint:{fp}"]))
        )


@pytest.fixture
def replicas(lab_stack: Stack) -> Iterator[tuple[str, str]]:
    """Two extra intake replicas with a 1 s fast-path TTL."""
    with (
        intake_process(lab_stack, CONTINGENCY_INTAKE_DEDUP_TTL_S=TTL) as a,
        intake_process(lab_stack, CONTINGENCY_INTAKE_DEDUP_TTL_S=TTL) as b,
    ):
        yield a, b


def test_resend_after_a_crash_starts_one_successor_that_every_replica_agrees_on(
    lab_stack: Stack, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    payload = alert_payload()
    first = post(a, lab_stack.token, payload)
    assert not first["deduplicated"]
    dead_id = first["flow_run_id"]
    crash(dead_id)
    dead = read(dead_id)

    # both replicas at once (neither has the key cached): one successor
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda url: post(url, lab_stack.token, payload), [a, b]))
    first_try = [dict(ans) for ans in answers if ans["flow_run_id"] is not None]
    for url, ans in zip([a, b], answers, strict=True):
        # An answer may say "queued" (that replica's start raced the other's and is
        # retried after the ack wait); its alert is stored: a re-send, as Alertmanager
        # would, must name the same successor.
        if ans["flow_run_id"] is None:
            assert ans["note"].startswith(("queued", "not started yet")), ans
            time.sleep(2)
            ans.update(post(url, lab_stack.token, payload))
    ids = {ans["flow_run_id"] for ans in answers}
    assert len(ids) == 1 and dead_id not in ids, answers
    new_id = ids.pop()
    # Usually one replica created it and the other found it. Prefect answers 201 when the
    # run's creation time is after the request began, so two exactly simultaneous creators
    # can both hear 201; the run is still one (the key), which is what matters.
    started = (
        f"the earlier incident {dead_id} ended without handling the alert (Crashed); "
        "a new incident was started"
    )
    creators = [ans for ans in first_try if not ans["deduplicated"]]
    assert all(ans["note"] == started for ans in creators)
    assert creators or len(first_try) < 2  # a queued answer may have been the creator
    assert all(dead_id in ans["note"] for ans in first_try)

    successor = read(new_id)
    assert f"successor-of:{dead_id}" in successor.tags
    assert {"incident", f"fingerprint:{first['fingerprint']}"} <= set(successor.tags)
    assert successor.idempotency_key == successor_key(dead.idempotency_key, dead_id)  # type: ignore[arg-type]
    # the same alert (the successor carries the re-send, so only ``received_at`` differs)
    same = {k: v for k, v in dead.parameters["alert"].items() if k != "received_at"}
    assert {k: successor.parameters["alert"][k] for k in same} == same

    # re-sends: the same successor, never a third run, from every replica (a "queued"
    # answer is sent again, as Alertmanager would: its alert is stored meanwhile)
    again = [_answered(url, lab_stack.token, payload) for url in (a, b, lab_stack.intake_url)]
    assert {ans["flow_run_id"] for ans in again} == {new_id}
    assert all(ans["deduplicated"] for ans in again)
    assert len(runs_of(payload)) == 2


def test_resend_of_a_live_or_normally_ended_incident_is_still_deduplicated(
    lab_stack: Stack, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    payload = alert_payload()
    run_id = post(a, lab_stack.token, payload)["flow_run_id"]
    live = _answered(b, lab_stack.token, payload)  # still scheduled / running
    assert (live["flow_run_id"], live["deduplicated"], live["note"]) == (
        run_id,
        True,
        "already running",
    )
    ended = wait_for_run(run_id, timeout_s=180)
    assert ended.state is not None and ended.state.name == "Escalated"  # a handled end
    for url in (a, b):
        ans = _answered(url, lab_stack.token, payload)
        assert (ans["flow_run_id"], ans["deduplicated"]) == (run_id, True)
    assert len(runs_of(payload)) == 1


def test_a_chain_of_dead_successors_stops_and_asks_for_a_human(
    lab_stack: Stack, replicas: tuple[str, str]
) -> None:
    a, _ = replicas
    payload = alert_payload()
    chain = [post(a, lab_stack.token, payload)["flow_run_id"]]
    for i in range(MAX_SUCCESSORS):
        crash(chain[-1], name=INTERRUPTED if i % 2 else "Crashed")
        ans = post(a, lab_stack.token, payload)
        assert not ans["deduplicated"] and ans["flow_run_id"] not in chain, ans
        assert f"successor-of:{chain[-1]}" in read(ans["flow_run_id"]).tags
        chain.append(ans["flow_run_id"])
    crash(chain[-1])
    stop = post(a, lab_stack.token, payload)
    assert stop["flow_run_id"] == chain[-1] and stop["deduplicated"], stop
    assert "a human must look" in stop["note"]
    assert len(runs_of(payload)) == MAX_SUCCESSORS + 1
