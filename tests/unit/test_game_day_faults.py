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
