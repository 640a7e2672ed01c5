"""The hardware-failure plan through the real stack: a HostDown alert for hw-a in the
hardware lab that `contingency up --lab` built, signed off by two command-center
members, moves ``portal`` to hw-b (root only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.hwlab import HardwareLab
from contingency.lab.netlab_launch import running_hardware_lab
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, wait_for
from tests.integration.test_network_e2e import game_day, sign_off

pytestmark = pytest.mark.usefixtures("netns_capable")


@pytest.fixture
def dead_host(lab_stack: Stack) -> Iterator[HardwareLab]:
    lab = running_hardware_lab(lab_stack.settings)
    try:
        lab.kill_host("hw-a")
        yield lab
    finally:
        lab.reset()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_host_down_alert_moves_the_service_to_the_standby(
    lab_stack: Stack, dead_host: HardwareLab
) -> None:
    assert not _answers(dead_host.url)
    labels = {"alertname": "HostDown", "host": "hw-a", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = str(resp.json()["incidents"][0]["flow_run_id"])
    sign_off(lab_stack, run_id)
    run = wait_for_run(run_id, timeout_s=90)
    assert run.state is not None and run.state.is_completed(), run.state
    assert wait_for(lambda: _answers(dead_host.url), 10, "portal at the VIP")
    assert "hw-b" in dead_host.vip_holders() and not dead_host.port_up("hw-a")  # hw-a fenced
    report = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "failed_over" in report and "ip link set dev pa down" in report
    assert "HARDWARE TICKET hw-a" in report


def test_host_stop_game_day_moves_the_service_and_passes(lab_stack: Stack) -> None:
    """The weekly host-stop game day: hw-a stops answering (it drops every packet), the
    drill's probe sees portal gone, the hardware plan (signed off) fences hw-a and moves
    portal and its VIP to hw-b; graded PASS."""
    lab = running_hardware_lab(lab_stack.settings)
    try:
        assert _answers(lab.url) and lab.vip_holders() == ["hw-a"]
        text = game_day(lab_stack, "host-stop", "hw-a", "host", 240)
        assert "**PASS**" in text and "put back by the drill itself: no" in text
        assert _answers(lab.url) and "hw-b" in lab.vip_holders()
        assert not lab.port_up("hw-a")  # fenced by the plan
    finally:
        lab.topo.run("hwa", "nft", "delete", "table", "inet", "contingency_gameday",
                     check=False)  # fmt: skip
        lab.reset()
