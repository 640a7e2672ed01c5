"""Hardware-failure plan against real hosts: sshd servers in namespaces on one LAN.

hw-a runs ``portal`` at a VIP; it "dies" (sshd and service stop); the plan confirms
over a window, asks the gate, fences hw-a at the switch, starts portal on hw-b, moves
the VIP and checks the service answers there.
"""

from __future__ import annotations

import requests

from inventory.models import PlanName
from remediations import handler_for
from tasks.facts.hosts import confirm_host_down
from tests.fixtures_netns import Approver, make_ctx

handle = handler_for(PlanName.hardware_failure)

LABELS = {"alertname": "HostDown", "host": "hw-a"}


def _pid(url: str) -> int:
    return int(requests.get(url, timeout=3).json()["pid"])


def test_dead_host_fails_over_to_standby_through_the_gate(hardware_lab, caplog) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    assert _pid(lab.url)  # the worker has talked to hw-a at the VIP (ARP cache warm)
    lab.kill_host("hw-a")
    approve = Approver()
    with caplog.at_level("ERROR"):
        outcome = handle(make_ctx(inv, LABELS, approve))
    assert outcome.outcome == "failed_over", outcome.message
    plan = approve.seen[0]
    assert plan.destructive and plan.actions[0].host == "lab-switch"  # fence first
    assert not lab.port_up("hw-a")
    assert "hw-b" in lab.vip_holders()
    pid = _pid(lab.url)
    assert str(pid) in lab.topo.run("hwb", "ip", "netns", "pids", lab.topo.ns("hwb"))
    assert any("HARDWARE TICKET hw-a" in r.getMessage() for r in caplog.records)


def test_rejected_gate_fences_nothing(hardware_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    lab.kill_host("hw-a")
    outcome = handle(make_ctx(inv, LABELS, Approver("rejected")))
    assert outcome.outcome == "rejected"
    assert lab.port_up("hw-a") and lab.vip_holders() == ["hw-a"]


def test_single_failed_probe_does_not_fence(hardware_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    lab.kill_host("hw-a")
    fo = inv.host_failover["hw-a"]

    def flap_back(i, probe):  # type: ignore[no-untyped-def]
        if i == 0:
            assert not probe.up  # the first round really failed
            lab.revive_host("hw-a")

    seen = confirm_host_down(inv.host("hw-a"), fo.confirm, on_probe=flap_back)
    assert not seen.down and len(seen.rounds) == 2


def test_flapping_host_is_not_failed_over(hardware_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    approve = Approver()
    outcome = handle(make_ctx(inv, LABELS, approve))  # alert fired, host answers
    assert outcome.outcome == "not_confirmed" and outcome.ok
    assert approve.seen == [] and lab.port_up("hw-a") and lab.vip_holders() == ["hw-a"]


def test_dry_run_shows_fence_start_and_move(hardware_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    lab.kill_host("hw-a")
    ctx = make_ctx(inv, LABELS, Approver(), dry=True)
    assert handle(ctx).outcome == "dry_run"
    assert ctx.plan is not None
    cmds = [(a.where, a.shown) for a in ctx.plan.actions]
    assert cmds == [
        ("lab-switch", "ip link set dev pa down"),
        ("hw-b", "labctl restart portal"),
        ("hw-b", f"ip addr replace {lab.vip}/28 dev eth0"),
        ("hw-b", f"arping -q -U -c 2 -I eth0 {lab.vip}"),
    ]
    assert lab.port_up("hw-a")


def test_reset_puts_the_lab_back_after_a_failover(hardware_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = hardware_lab
    lab.kill_host("hw-a")
    assert handle(make_ctx(inv, LABELS, Approver())).outcome == "failed_over"
    lab.reset()
    assert lab.port_up("hw-a") and lab.vip_holders() == ["hw-a"]
    pid = _pid(lab.url)
    assert str(pid) in lab.topo.run("hwa", "ip", "netns", "pids", lab.topo.ns("hwa"))
