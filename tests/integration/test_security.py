"""The security-incident plan (安全事件) through the real stack in the hardware lab that
`contingency up --lab` built (root only): an IntrusionDetected alert for hw-a keeps the
evidence in the lab's S3 before any change, waits for two command-center approvals,
isolates hw-a with nftables (hw-b cannot reach it, the worker's management address
can), and holds it: a crashed service on hw-a is not restarted until the command center
releases the host; then the next alert acts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import open_gates
from contingency.lab.hwlab import HardwareLab
from contingency.lab.netlab_launch import running_hardware_lab
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tasks.prefect_api import get_client
from tasks.security.holds import read, release
from tasks.storage import Store
from tests.fixtures_stack import Stack, cli, wait_for
from tests.integration.test_network_e2e import sign_off

pytestmark = pytest.mark.usefixtures("netns_capable")


@pytest.fixture
def hw(lab_stack: Stack) -> Iterator[HardwareLab]:
    lab = running_hardware_lab(lab_stack.settings)
    try:
        yield lab
    finally:
        for table in ("contingency_isolation", "contingency_block"):
            lab.topo.run("hwa", "nft", "delete", "table", "inet", table, check=False)
        with get_client(sync_client=True) as client:
            release(client, "hw-a")
        lab.reset()


def _pings(lab: HardwareLab, role: str, address: str) -> bool:
    ns = ["ip", "netns", "exec", lab.topo.ns(role)] if role != "root" else []
    done = subprocess.run([*ns, "ping", "-c", "1", "-W", "1", address], capture_output=True)
    return done.returncode == 0


def _fire(stack: Stack, **labels: str) -> str:
    payload = alertmanager_payload({**labels, "test": uuid.uuid4().hex})
    ref = stack.post("/webhook/alertmanager", payload).json()["incidents"][0]
    assert ref["flow_run_id"], ref
    return str(ref["flow_run_id"])


def _report(stack: Stack, run_id: str) -> str:
    return (stack.state_dir / "reports" / f"incident-{run_id}.md").read_text(encoding="utf-8")


def test_evidence_then_two_approvals_then_isolation_and_a_hold_until_released(
    lab_stack: Stack, hw: HardwareLab
) -> None:
    hw_a = hw.addresses["hw-a"]
    assert _pings(hw, "hwb", hw_a)
    inv = load_inventory(lab_stack.inventory)
    location = inv.security_policy("hw-a").evidence_location
    assert location is not None
    store = Store.for_location(location, lab_stack.settings)

    run_id = _fire(lab_stack, alertname="IntrusionDetected", host="hw-a")
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "the sign-off")
    # evidence first: kept before the gate, and nothing changed yet
    base = f"security-evidence/{run_id}/hw-a"
    kept = store.client.get_object(Bucket=location.bucket, Key=f"{base}/manifest.json")
    manifest = json.loads(kept["Body"].read())
    assert _pings(hw, "hwb", hw_a)
    names = {item["name"] for item in manifest["items"]}
    assert {"processes", "connections", "logins", "file-hashes"} <= names
    for item in manifest["items"]:
        body = store.client.get_object(Bucket=location.bucket, Key=item["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item["sha256"] and len(body) == item["size"]
        if item["name"] == "processes":
            assert b"sshd" in body
        if item["name"] == "file-hashes":
            with open("/etc/passwd", "rb") as passwd:
                assert hashlib.sha256(passwd.read()).hexdigest().encode() in body

    sign_off(lab_stack, run_id)  # two different command-center members, each a code
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"  # people investigate
    assert not _pings(hw, "hwb", hw_a)  # isolated from the LAN ...
    assert _pings(hw, "root", hw_a)  # ... but not from the management address
    report = _report(lab_stack, run_id)
    assert "contained" in report and "## Evidence" in report
    assert "| zhang.wei | approve |" in report and "| li.na | approve |" in report
    with get_client(sync_client=True) as client:
        held = read(client, "hw-a")
    assert held is not None and held.run_id == run_id
    assert f'"run_id": "{run_id}"' in cli(lab_stack, "security", "holds", "--json").stdout

    # held: a crashed service on hw-a is not restarted
    hw._labctl("hw-a", "stop")
    crash = _fire(lab_stack, alertname="ServiceDown", service="portal")
    run = wait_for_run(crash, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated", run.state
    crash_report = _report(lab_stack, crash)
    assert "held" in crash_report and f"held by security incident {run_id}" in crash_report
    assert "No command was run." in crash_report

    refused = cli(lab_stack, "security", "release", "hw-a", "--as", "wang.fang")
    assert refused.returncode == 2 and "not a command-center member" in refused.stderr
    done = cli(lab_stack, "security", "release", "hw-a", "--as", "zhang.wei", "--unisolate")
    assert done.returncode == 0, done.stderr
    assert "isolation lifted" in done.stdout
    assert wait_for(lambda: _pings(hw, "hwb", hw_a), 10, "hw-a on the LAN again")

    again = _fire(lab_stack, alertname="ServiceDown", service="portal")
    run = wait_for_run(again, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert "labctl restart portal" in _report(lab_stack, again)

    # then people block an address through a runbook (its own sign-off): hw-b this time
    from prefect.deployments import run_deployment

    from contingency.cli.gates import decide
    from tests.fixtures_stack import approval_code

    block = run_deployment(
        lab_stack.settings.incident_deployment,
        timeout=0,
        parameters={
            "alert": {"fingerprint": uuid.uuid4().hex, "labels": {"alertname": "BlockAddress"}},
            "plan": "runbook:block-address",
            "target": "hw-a",
            "options": {"address": hw.addresses["hw-b"]},
        },
        tags=["incident"],
    )
    block_id = str(block.id)  # type: ignore[union-attr]
    wait_for(lambda: any(g.flow_run_id == block_id for g in open_gates()), 90, "its sign-off")
    decide(block_id, "approve", "zhang.wei", approval_code(lab_stack, block_id), "block it")
    run = wait_for_run(block_id, timeout_s=120)
    assert run.state is not None and run.state.is_completed(), run.state
    assert not _pings(hw, "hwb", hw_a) and _pings(hw, "root", hw_a)
    assert f"ip saddr {hw.addresses['hw-b']} drop" in _report(lab_stack, block_id)
