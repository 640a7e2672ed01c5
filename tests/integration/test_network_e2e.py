"""The network-outage plan through the real stack: intake → worker → incident flow → SSH
into the router namespace of the lab that `contingency up --lab` built (root only)."""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.intake.schemas import fingerprint_of
from contingency.lab.inbox import read
from contingency.lab.netlab import NetworkLab
from contingency.lab.netlab_launch import running_network_lab
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, person_codes, wait_for
from tests.integration.test_intake_readiness import intake_process

pytestmark = pytest.mark.usefixtures("netns_capable")


@pytest.fixture
def both_uplinks_cut(lab_stack: Stack) -> Iterator[NetworkLab]:
    lab = running_network_lab(lab_stack.settings)
    try:
        lab.cut("uplink-a")
        lab.cut("uplink-b", "down")
        yield lab
    finally:
        lab.restore("uplink-a")
        lab.restore("uplink-b")


def test_alert_with_both_uplinks_down_escalates_without_change(
    lab_stack: Stack, both_uplinks_cut: NetworkLab
) -> None:
    labels = {"alertname": "LinkDown", "link": "uplink-a", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.is_failed() and run.state.name == "Escalated"
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "no_healthy_backup" in report and "no change" in report
    assert "No command was run." in report
    assert "via 198.51.100.2 dev up1" in both_uplinks_cut.default_route()


@pytest.fixture
def primary_cut(lab_stack: Stack) -> Iterator[NetworkLab]:
    lab = running_network_lab(lab_stack.settings)
    try:
        lab.cut("uplink-a")
        yield lab
    finally:
        lab.restore("uplink-a")
        route = ["ip", "route", "replace", "default", "via", "198.51.100.2", "dev", "up1"]
        lab.topo.run("router", *route)


def _latest_code(stack: Stack, run_id: str, person: str = "zhang.wei") -> str | None:
    """The newest code ``person``'s own channel got for the run (codes are per person)."""
    return (person_codes(stack, run_id, person)[-1:] or [None])[0]


def test_alerts_fail_over_and_back_after_two_person_sign_off(
    lab_stack: Stack, primary_cut: NetworkLab
) -> None:
    run_id = _signed_off_incident(lab_stack, "LinkDown")
    assert "via 198.51.100.6 dev up2" in primary_cut.default_route()
    assert primary_cut.reachable()
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "failed_over" in report and "ip route replace default via 198.51.100.6 dev up2" in report

    primary_cut.restore("uplink-a")  # the primary is back: LinkUp → failback, signed off
    run_id = _signed_off_incident(lab_stack, "LinkUp")
    assert "via 198.51.100.2 dev up1" in primary_cut.default_route()
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "failed_back" in report and "ip route replace default via 198.51.100.2 dev up1" in report


def _signed_off_incident(stack: Stack, alertname: str) -> str:
    """Post the alert, approve its gate as two command-center members, wait for the end."""
    labels = {"alertname": alertname, "link": "uplink-a", "test": uuid.uuid4().hex}
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = str(resp.json()["incidents"][0]["flow_run_id"])
    sign_off(stack, run_id)
    run = wait_for_run(run_id, timeout_s=90)
    assert run.state is not None and run.state.is_completed(), run.state
    return run_id


def sign_off(stack: Stack, run_id: str) -> None:
    """Approve the run's gate as two command-center members, each with a fresh code."""
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "gate open")
    first = wait_for(lambda: _latest_code(stack, run_id), 20, "first code")
    opening = wait_for(lambda: _latest_code(stack, run_id, "li.na"), 20, "li.na's code")
    decide(run_id, "approve", "zhang.wei", first, "go")
    second = wait_for(  # after the first approval li.na gets a fresh code of her own
        lambda: (c := _latest_code(stack, run_id, "li.na")) != opening and c, 20, "2nd code"
    )
    # the code is sent before the gate pauses again: wait for it to wait
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 30, "gate open again")
    decide(run_id, "approve", "li.na", second, "agreed")


def test_a_cut_link_storm_is_one_incident_that_pages_each_role_once(
    lab_stack: Stack, primary_cut: NetworkLab, tmp_path: Path
) -> None:
    """The link is cut and 40 alerts arrive in one post: the link's, and 39 for the
    services on hosts behind it (their site sits behind uplink-a in the intake's
    inventory). One incident fails the link over; the 39 join it; each role is paged
    once; the report lists every absorbed alert."""
    inventory = tmp_path / "inventory"
    shutil.copytree(lab_stack.inventory, inventory)
    network = inventory / "network.yaml"
    doc = yaml.safe_load(network.read_text())
    doc["links"]["uplink-a"]["behind_sites"] = ["lab"]  # web1, app1, db1: site lab
    network.write_text(yaml.safe_dump(doc, sort_keys=False))
    tag = uuid.uuid4().hex
    labels = [
        {"alertname": "ServiceDown", "service": svc, "check": str(i), "test": tag}
        for i in range(13)
        for svc in ("web", "api", "report")
    ]
    labels.insert(20, {"alertname": "LinkDown", "link": "uplink-a", "test": tag})
    payload = alertmanager_payload(labels[0])
    payload["alerts"] = [
        {**payload["alerts"][0], "labels": one, "fingerprint": fingerprint_of(one)}
        for one in labels
    ]
    since = time.time()
    with intake_process(lab_stack, CONTINGENCY_INVENTORY=str(inventory)) as url:
        resp = requests.post(
            f"{url}/webhook/alertmanager?wait=20",
            json=payload,
            headers={"Authorization": f"Bearer {lab_stack.token}"},
            timeout=60,
        )
        assert resp.status_code == 202, resp.text
        refs = resp.json()["incidents"]
    runs = {r["flow_run_id"] for r in refs}
    assert len(runs) == 1 and None not in runs, refs
    run_id = str(runs.pop())
    assert [r["deduplicated"] for r in refs].count(False) == 1
    sign_off(lab_stack, run_id)
    run = wait_for_run(run_id, timeout_s=90)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "via 198.51.100.6 dev up2" in primary_cut.default_route()
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "Related alerts" in report and "39 alert(s) with the same cause" in report
    # one incident for the whole storm: no other run carries the test's label
    with get_client(sync_client=True) as client:
        recent = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["incident"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    mine = [
        r for r in recent if (r.parameters.get("alert") or {}).get("labels", {}).get("test") == tag
    ]
    assert [str(r.id) for r in mine] == [run_id]
    # each role paged once that the incident opened, and the close counts the storm
    pages = [
        m for m in read(lab_stack.state_dir / "lab" / "inbox.jsonl")
        if float(m["at"]) >= since and not str(m["path"]).startswith("/person/")
    ]  # fmt: skip
    opened = Counter(m["path"] for m in pages if "Incident opened" in str(m.get("title")))
    assert opened and set(opened.values()) == {1}, opened
    assert any("+39 related alerts" in str(m.get("message")) for m in pages)


def drill_incident(label: str, value: str, since: float) -> str | None:
    """The drill incident a game day raised for ``label=value`` since ``since`` (epoch)."""
    from datetime import UTC, datetime

    from prefect.client.schemas.filters import FlowRunFilterStartTime

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["incident", "drill"]),
                start_time=FlowRunFilterStartTime(after_=datetime.fromtimestamp(since - 5, UTC)),
            )
        )
    found = [r for r in runs if r.parameters["alert"]["labels"].get(label) == value]
    return str(found[0].id) if found else None


def game_day(stack: Stack, scenario: str, target: str, label: str, timeout_s: float) -> str:
    """Run the deployed game day, sign off its drill incident as the command center would
    (a plan that needs sign-off needs people in a drill too), wait for it; its report."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    began = time.time()
    run = run_deployment(
        "game-day/game-day", timeout=0,
        parameters={"scenario": scenario, "target": target, "detect_target_s": 30,
                    "recover_target_s": timeout_s / 3},
    )  # fmt: skip
    incident = wait_for(lambda: drill_incident(label, target, began), 120, "drill incident")
    sign_off(stack, incident)
    final = wait_for_run(run.id, timeout_s=timeout_s + 120)
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    text = next(str(a.data) for a in arts if a.key == f"game-day-{scenario}-{target}")
    assert final.state is not None and final.state.is_completed(), (final.state, text)
    assert f"- incident: {incident} (Completed)" in text, text
    return text


def test_link_cut_game_day_fails_over_and_passes(lab_stack: Stack) -> None:
    """The weekly link-cut game day: the primary's router drops what leaves through it,
    the drill's probe sees the router lose the internet, the network plan (signed off)
    fails over to the backup; graded PASS, the drill's rules removed."""
    lab = running_network_lab(lab_stack.settings)
    try:
        assert "dev up1" in lab.default_route()
        text = game_day(lab_stack, "link-cut", "uplink-a", "link", 240)
        assert "**PASS**" in text and "put back by the drill itself: no" in text
        assert "via 198.51.100.6 dev up2" in lab.default_route() and lab.reachable()
        assert "contingency_gameday" not in lab.topo.run("router", "nft", "list", "tables")
    finally:
        lab.topo.run("router", "nft", "delete", "table", "inet", "contingency_gameday",
                     check=False)  # fmt: skip
        route = ["ip", "route", "replace", "default", "via", "198.51.100.2", "dev", "up1"]
        lab.topo.run("router", *route)
