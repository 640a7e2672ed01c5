"""Network-namespace labs for tests (root only; a test fails when they cannot be built).

``network_lab`` and ``hardware_lab`` build a fresh topology per test, with sshd
servers accepting ``ssh_client_key``, and destroy it in a finalizer even when the
test fails. ``approver`` makes an approve callback that records the plans it saw.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from contingency.lab.hwlab import HardwareLab
from contingency.lab.netlab import NetworkLab
from contingency.lab.netns import can_build
from inventory.alert import Alert
from inventory.loader import load_inventory
from inventory.models import Inventory
from inventory.routing import route
from remediations.context import IncidentContext
from remediations.plan import Plan
from tests.fixtures_ssh import ClientKey

ROUTING = [
    {"name": "link-down", "match": {"alertname": "LinkDown"}, "plan": "network_outage",
     "target_label": "link"},
    {"name": "link-up", "match": {"alertname": "LinkUp"}, "plan": "network_outage",
     "target_label": "link"},
    {"name": "host-down", "match": {"alertname": "HostDown"}, "plan": "hardware_failure",
     "target_label": "host"},
]  # fmt: skip


def _need_root() -> None:
    """CI runs as root with iproute2 installed by scripts/setup.sh: a machine that cannot
    build namespaces is a failure to fix, never a skip."""
    ok, why = can_build()
    if not ok:
        pytest.fail(f"network namespaces cannot be built here: {why}")


@pytest.fixture
def netns_capable() -> None:
    _need_root()


def write_inventory(path: Path, sections: dict[str, Any]) -> Inventory:
    path.mkdir(parents=True, exist_ok=True)
    # the session's one Prefect server holds every other test's remediations: no rate
    # cap or cooldown from those here (tests/faults/test_rails.py covers the rails)
    rails = {"default": {"cooldown_s": 0, "flap_count": 100, "max_runs_per_window": 100000}}
    doc = {"rails": rails, **sections, "routing": ROUTING}
    (path / "lab.yaml").write_text(yaml.safe_dump(doc))
    return load_inventory(path)


@pytest.fixture
def network_lab(
    tmp_path: Path, ssh_client_key: ClientKey, ssh_home: Path
) -> Iterator[tuple[NetworkLab, Inventory]]:
    """A router with two uplinks and its inventory (hosts, links, routing)."""
    _need_root()
    from tasks.ssh.run import close_all

    lab = NetworkLab.create(tmp_path / "net", ssh_client_key.public)
    try:
        sections = lab.inventory(ssh_client_key.secret_name, getpass.getuser())
        yield lab, write_inventory(tmp_path / "inv", sections)
    finally:
        close_all()
        lab.destroy()


@pytest.fixture
def hardware_lab(
    tmp_path: Path, ssh_client_key: ClientKey, ssh_home: Path
) -> Iterator[tuple[HardwareLab, Inventory]]:
    """A LAN with a switch, hw-a (running ``portal`` at the VIP) and standby hw-b."""
    _need_root()
    from tasks.ssh.run import close_all

    lab = HardwareLab.create(tmp_path / "hw", ssh_client_key.public)
    try:
        sections = lab.inventory(ssh_client_key.secret_name, getpass.getuser())
        yield lab, write_inventory(tmp_path / "inv", sections)
    finally:
        close_all()
        lab.destroy()


@dataclass
class Decision:
    status: str
    approver: str | None = "zhang.wei"
    wait_s: float = 0.0

    @property
    def approved(self) -> bool:
        return self.status == "approved"


@dataclass
class Approver:
    """An approve callback: answers ``status`` and keeps every plan it was shown."""

    status: str = "approved"
    seen: list[Plan] = field(default_factory=list)

    def __call__(self, plan: Plan) -> Decision:
        self.seen.append(plan)
        return Decision(self.status)


def make_ctx(
    inv: Inventory, labels: dict[str, str], approve: Callable[[Plan], Decision], dry: bool = False
) -> IncidentContext:
    alert = Alert(fingerprint="test", labels=labels)
    return IncidentContext(
        alert=alert, inv=inv, decision=route(alert, inv), approve=approve, dry_run=dry
    )
