"""Fan-out: batches, max unavailable, the stop percentage and partial results (the
rollout's logic, each restart a stand-in function: the real restarts over SSH are in
tests/integration/test_fan_out.py); rolling steps and fleet targets in the inventory;
the blast radius counted over the whole rollout."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import yaml

from inventory.errors import InventoryError
from inventory.loader import load_inventory
from inventory.models import Inventory
from remediations.fan_out import InstanceResult, roll, rollout_sizes
from remediations.plan import RollingAction
from remediations.rails import blast_radius
from remediations.runbook import build_plan

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"


def _action(n: int, **kw: object) -> RollingAction:
    hosts = [f"web{i}" for i in range(1, n + 1)]
    return RollingAction(
        service="edge", instances=[(f"edge.{h}", h) for h in hosts],
        commands=["systemctl restart edge"], **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _restarts(failing: set[str], down: bool = True):  # type: ignore[no-untyped-def]
    """A stand-in restart: the hosts in ``failing`` fail (and stay down if ``down``)."""

    def restart(a: RollingAction, inv: Inventory, instance: str, host: str) -> InstanceResult:
        bad = host in failing
        return InstanceResult(
            instance=instance, host=host, outcome="failed" if bad else "ok",
            detail="exit 1" if bad else "healthy", still_down=bad and down,
        )  # fmt: skip

    return restart


def test_batch_sizes_never_exceed_max_unavailable() -> None:
    assert rollout_sizes(5, batch_size=2, max_unavailable=3) == [2, 2, 1]
    assert rollout_sizes(5, batch_size=10, max_unavailable=2) == [2, 2, 1]
    assert rollout_sizes(1, batch_size=4, max_unavailable=4) == [1]


def test_every_instance_in_batches_when_all_succeed() -> None:
    said: list[str] = []
    out = roll(_action(5, batch_size=2, max_unavailable=2), Inventory(), said.append,
               restart=_restarts(set()))  # fmt: skip
    assert out.ok and out.named("ok") == ["web1", "web2", "web3", "web4", "web5"]
    assert [r.batch for r in out.results] == [1, 1, 2, 2, 3]
    assert len(said) == 3 and said[-1].startswith("edge batch 3 (5/5)")
    assert out.summary().startswith("5/5 restarted and healthy")


def test_the_first_failure_stops_the_rollout_with_partial_results() -> None:
    out = roll(_action(4, batch_size=1), Inventory(), restart=_restarts({"web2"}))
    assert not out.ok
    assert out.named("ok") == ["web1"] and out.named("failed") == ["web2"]
    assert out.named("not_run") == ["web3", "web4"]
    assert out.stopped == "1 of 4 failed (25% > 0%)"
    table = out.as_markdown()
    assert "| 2 | web2 | edge.web2 | 2 | FAILED | exit 1 |" in table
    assert "| 4 | web4 | edge.web4 | — | not run |" in table
    assert "not run: web3, web4" in out.summary()


def test_failures_under_the_stop_percentage_go_on() -> None:
    out = roll(
        _action(4, batch_size=1, max_unavailable=2, stop_failure_pct=30),
        Inventory(),
        restart=_restarts({"web2"}),
    )
    assert out.named("failed") == ["web2"] and out.named("ok") == ["web1", "web3", "web4"]
    assert out.stopped == ""


def test_instances_left_down_use_up_max_unavailable() -> None:
    """Two failed restarts left their instances down: with at most 2 unavailable, no
    batch may start, whatever the stop percentage."""
    out = roll(
        _action(5, batch_size=1, max_unavailable=2, stop_failure_pct=100),
        Inventory(),
        restart=_restarts({"web1", "web2"}),
    )
    assert out.named("failed") == ["web1", "web2"]
    assert out.named("not_run") == ["web3", "web4", "web5"]
    assert out.stopped == "2 instances down, at most 2 may be"


def test_a_failed_restart_that_left_the_instance_up_does_not_count_as_down() -> None:
    out = roll(
        _action(3, batch_size=1, max_unavailable=1, stop_failure_pct=100),
        Inventory(),
        restart=_restarts({"web1", "web2"}, down=False),
    )
    assert out.named("failed") == ["web1", "web2"] and out.named("ok") == ["web3"]


def test_a_batch_runs_at_once() -> None:
    """Both restarts of a batch of two wait for each other at a barrier: run one
    after the other, the first would time out there."""
    barrier = threading.Barrier(2, timeout=5)

    def restart(a: RollingAction, inv: Inventory, instance: str, host: str) -> InstanceResult:
        barrier.wait()
        return InstanceResult(instance=instance, host=host, outcome="ok")

    out = roll(_action(4, batch_size=2, max_unavailable=2), Inventory(), restart=restart)
    assert out.ok and [r.batch for r in out.results] == [1, 1, 2, 2]


def test_the_lab_rolling_runbook_acts_on_every_web_host() -> None:
    inv = load_inventory(LAB)
    plan = build_plan(inv.runbooks["rolling-restart-edge"], "edge", {}, inv)
    step = plan.actions[1]
    assert isinstance(step, RollingAction)
    assert step.instances == [("edge.web1", "web1"), ("edge.web2", "web2"), ("edge.web3", "web3")]
    assert step.commands == ["labctl restart edge"]  # from the inventory's manager
    assert plan.hosts == ["web1", "web2", "web3"]
    shown = plan.as_markdown()  # what the gate shows
    assert "Hosts affected (blast radius): 3 — web1, web2, web3" in shown
    assert "labctl restart edge on web1, web2, web3: batches of 1" in shown


def test_the_blast_radius_is_counted_over_the_whole_rollout() -> None:
    inv = load_inventory(LAB)
    plan = build_plan(inv.runbooks["rolling-restart-edge"], "edge", {}, inv)
    assert blast_radius(plan, inv, max_hosts=5, max_percent=100) is None
    assert "touches 3 hosts, more than the cap of 2" in str(blast_radius(plan, inv, 2, 100))
    why = str(blast_radius(plan, inv, max_hosts=10, max_percent=50))
    assert "3 of 3 hosts of group 'web' (100% > 50%)" in why


def _copy(tmp_path: Path) -> Path:
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("netns"))
    return inv


def test_a_step_other_than_rolling_must_name_one_instance(tmp_path: Path) -> None:
    inv = _copy(tmp_path)
    path = inv / "runbooks.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["runbooks"]["rolling-restart-edge"]["steps"][1] = {
        "name": "restart-edge", "kind": "ssh", "service": "edge", "command": "labctl restart edge",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    assert "'edge' runs on many hosts; name one instance (edge.<host>) or use a rolling step" in (
        str(err.value)
    )
    assert "runbooks.yaml:" in str(err.value)


def test_rolling_fields_are_checked(tmp_path: Path) -> None:
    inv = _copy(tmp_path)
    path = inv / "runbooks.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["runbooks"]["rolling-restart-edge"]["steps"][1]["batch_size"] = 0
    doc["runbooks"]["clear-tmp"]["steps"][0]["max_unavailable"] = 2
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    text = str(err.value)
    assert "batch_size" in text and "greater than or equal to 1" in text
    assert "the ssh step takes no max_unavailable" in text


def test_only_a_runbook_rule_may_target_a_service_on_many_hosts(tmp_path: Path) -> None:
    inv = _copy(tmp_path)
    path = inv / "routing.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["routing"].append({"name": "edge-down", "match": {"alertname": "EdgeDown"},
                           "plan": "software_crash", "target": "edge"})  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    assert "unknown target 'edge'" in str(err.value)
