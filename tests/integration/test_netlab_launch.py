"""The namespace labs as `contingency up --lab` makes them: isolated, rendered, removable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from contingency.lab.netlab import NetworkLab
from contingency.lab.netlab_launch import start_netlabs, stop_netlabs
from contingency.lab.netns import MGMT_RANGE, leftover_namespaces
from inventory.loader import load_inventory
from inventory.settings import Settings
from tests.fixtures_ssh import ClientKey

needs_root = pytest.mark.usefixtures("netns_capable")


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def _root_routes() -> str:
    return subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout


@needs_root
def test_only_one_management_link_reaches_the_root_namespace(
    tmp_path: Path, ssh_client_key: ClientKey
) -> None:
    links, routes = _root_links(), _root_routes()
    with NetworkLab.create(tmp_path, ssh_client_key.public) as lab:
        added = _root_links() - links
        assert added == set(lab.topo.root_links) and len(added) == 1
        new_routes = set(_root_routes().splitlines()) - set(routes.splitlines())
        assert len(new_routes) == 1 and str(lab.topo.mgmt) in new_routes.pop()
        assert lab.topo.mgmt is not None and lab.topo.mgmt.subnet_of(MGMT_RANGE)
    assert _root_links() == links
    assert not set(lab.topo.namespaces.values()) & set(leftover_namespaces())


@needs_root
def test_up_renders_the_lab_inventory_and_down_removes_everything(
    tmp_path: Path, ssh_client_key: ClientKey
) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    inv_dir = tmp_path / "inv"
    inv_dir.mkdir()
    settings.lab_dir.mkdir(parents=True)
    before = set(leftover_namespaces())
    try:
        notes = start_netlabs(settings, inv_dir, ssh_client_key.public, "test-ssh-key")
        assert any(n.startswith("network lab: router 192.0.2.") for n in notes)
        made = set(leftover_namespaces()) - before
        assert len(made) == 7  # router, isp1, isp2, inet; sw, hwa, hwb
        inv = load_inventory(inv_dir)
        assert set(inv.links) == {"uplink-a", "uplink-b"}
        assert inv.host("lab-router").host_key and inv.host_failover["hw-a"].standby == "hw-b"
        names = {r.name for r in inv.routing}
        assert names == {"link-down", "link-up", "host-down", "security-incident"}
        assert inv.security == {}  # no lab S3 here (no datasets.yaml): nothing to keep evidence in
    finally:
        gone = stop_netlabs(settings)
    assert made <= set(gone)
    assert not made & set(leftover_namespaces())
    assert stop_netlabs(settings) == []  # idempotent


def test_without_root_the_labs_are_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv_dir = tmp_path / "inv"
    inv_dir.mkdir()
    (inv_dir / "network.yaml").write_text("links: {}\n")  # stale from an earlier root run
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    notes = start_netlabs(Settings(state_dir=tmp_path), inv_dir, "ssh-ed25519 AAAA", "k")
    assert notes == [
        "skipped the network and hardware labs: network namespaces need root "
        "(run `contingency up --lab` as root)"
    ]
    assert not (inv_dir / "network.yaml").exists()
