"""Game-day fault plans (pure): commands from the inventory, drill hosts only."""

from __future__ import annotations

import pytest

from inventory.loader import load_inventory
from tasks.actions.faults import FaultRefused, plan_fault

INV = load_inventory("inventory/examples/lab")


def test_service_stop_uses_the_inventory_commands() -> None:
    fault = plan_fault("service-stop", "web", INV)
    assert fault.inject == ["labctl stop web"] and fault.undo == ["labctl start web"]
    assert fault.alert == {"alertname": "ServiceDown", "service": "web"}


def test_dataset_corrupt_keeps_a_copy_and_can_put_it_back() -> None:
    fault = plan_fault("dataset-corrupt", "report-db", INV, tag="T")
    path = INV.datasets["report-db"].path
    assert fault.inject[0] == f"cp -a {path} {path}.gameday-T"
    assert fault.undo == [f"rm -rf {path} && mv {path}.gameday-T {path}"]
    assert fault.alert["dataset"] == "report-db"


def test_refusals() -> None:
    with pytest.raises(FaultRefused, match="unknown scenario"):
        plan_fault("rm-rf", "web", INV)
    with pytest.raises(FaultRefused, match="is not one"):
        plan_fault("service-stop", "$(reboot)", INV)
    prod = INV.model_copy(
        update={"hosts": {**INV.hosts, "web1": INV.hosts["web1"].model_copy(update={"labels": {}})}}
    )
    with pytest.raises(FaultRefused, match="not a drill host"):
        plan_fault("service-stop", "web", prod)


LABS = load_inventory("inventory/examples/lab/netns")  # the network and hardware labs


def test_link_cut_drops_what_leaves_through_the_primary_on_its_router() -> None:
    fault = plan_fault("link-cut", "uplink-a", LABS)
    assert fault.host == "lab-router"  # the link's router, from the inventory
    assert "oifname up1 drop" in fault.inject[1]  # the link's interface
    assert all("table inet contingency_gameday" in c for c in fault.inject + fault.undo)
    assert fault.undo == fault.cleanup  # the rules go; the routes were never touched
    assert fault.alert == {"alertname": "LinkDown", "link": "uplink-a"}
    with pytest.raises(FaultRefused, match="primary link"):
        plan_fault("link-cut", "uplink-b", LABS)  # the backup: no plan to drill
    with pytest.raises(FaultRefused, match="needs a link"):
        plan_fault("link-cut", "hw-a", LABS)


def test_host_stop_ends_by_itself_after_the_window() -> None:
    fault = plan_fault("host-stop", "hw-a", LABS, window_s=90)
    assert fault.host == "hw-a" and fault.alert == {"alertname": "HostDown", "host": "hw-a"}
    script = fault.inject[1]
    assert script.startswith("nohup sh -c ") and script.endswith("</dev/null &")
    assert "policy drop" in script and "sleep 90; nft delete table" in script
    with pytest.raises(FaultRefused, match="no host_failover"):
        plan_fault("host-stop", "hw-b", LABS)
    prod = LABS.model_copy(update={"hosts": {**LABS.hosts, "hw-a": LABS.hosts["hw-a"].model_copy(
        update={"labels": {"site": "production"}})}})  # fmt: skip
    with pytest.raises(FaultRefused, match="not a drill host"):
        plan_fault("host-stop", "hw-a", prod)
