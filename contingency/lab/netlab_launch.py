"""`contingency up --lab` / `down`: the namespace labs (network and hardware), when root.

``start_netlabs`` builds both topologies, renders ``network.yaml`` and ``hardware.yaml``
into the lab inventory (generated addresses and pinned host keys, routing rules from
``inventory/examples/lab/netns``) and records what it made in ``<lab_dir>/netns.json`` so
``stop_netlabs`` deletes exactly that, even from another process. Without root it
says what it skipped and why, and changes nothing::

    notes = start_netlabs(settings, inv_dir, pub)   # ["network lab: router 192.0.2.34", ...]
    stop_netlabs(settings)                           # ["cg-router-1a2b3c", ...]
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import yaml

from contingency.lab.hwlab import HardwareLab
from contingency.lab.netlab import NetworkLab
from contingency.lab.netns import Topology, can_build
from inventory.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "inventory" / "examples" / "lab" / "netns"
HEADER = "# Rendered by `contingency up --lab` from inventory/examples/lab/netns/{}; edit that.\n"


def _state(settings: Settings) -> Path:
    return settings.lab_dir / "netns.json"


def _render(name: str, inv_dir: Path, sections: dict[str, Any]) -> None:
    example = yaml.safe_load((EXAMPLE / name).read_text(encoding="utf-8"))
    data = {**sections, "routing": example.get("routing", [])}
    if example.get("runbooks"):
        data["runbooks"] = example["runbooks"]
    (inv_dir / name).write_text(HEADER.format(name) + yaml.safe_dump(data, sort_keys=False))


def _evidence_location(inv_dir: Path) -> dict[str, Any] | None:
    """The lab's S3 (as the rendered datasets use it), prefix ``security-evidence``."""
    try:
        doc = yaml.safe_load((inv_dir / "datasets.yaml").read_text(encoding="utf-8"))
        first = next(iter(doc["datasets"].values()))
        return {**first["location"], "prefix": "security-evidence"}
    except (OSError, KeyError, StopIteration, TypeError, AttributeError):
        return None


def start_netlabs(settings: Settings, inv_dir: Path, pub: str, key_secret: str) -> list[str]:
    """Build the labs and render their inventory; return one line per thing done/skipped."""
    ok, why = can_build()
    if not ok:
        for name in ("network.yaml", "hardware.yaml"):
            (inv_dir / name).unlink(missing_ok=True)
        return [f"skipped the network and hardware labs: {why}"]
    stop_netlabs(settings)
    base, user = _base(settings), getpass.getuser()
    made: list[Topology] = []
    try:
        net = NetworkLab.create(base / "net", pub)
        made.append(net.topo)
        _render("network.yaml", inv_dir, net.inventory(key_secret, user))
        hw = HardwareLab.create(base / "hw", pub)
        made.append(hw.topo)
        extra = {"vip": hw.vip, "addresses": hw.addresses}
        hardware = hw.inventory(key_secret, user)
        if (evidence := _evidence_location(inv_dir)) is not None:
            hardware["security"] = hw.security(evidence)
        _render("hardware.yaml", inv_dir, hardware)
    finally:
        records = [_dump(t) for t in made]
        if len(records) == 2:
            records[1].update(extra)
        _state(settings).write_text(json.dumps(records, indent=2))
    names = ", ".join(net.topo.namespaces.values())
    return [
        f"network lab: router {net.router_address} (namespaces {names})",
        f"hardware lab: portal at http://{hw.vip}:8080/ on hw-a, standby hw-b",
    ]


def _base(settings: Settings) -> Path:
    return settings.lab_dir / "netns"


def _dump(topo: Topology) -> dict[str, Any]:
    return {"namespaces": topo.namespaces, "root_links": topo.root_links}


def stop_netlabs(settings: Settings) -> list[str]:
    """Delete the namespaces and root links recorded by `start_netlabs` (and their
    processes); return their names."""
    path = _state(settings)
    if not path.exists():
        return []
    gone: list[str] = []
    for rec in json.loads(path.read_text()):
        topo = Topology(namespaces=dict(rec["namespaces"]), root_links=list(rec["root_links"]))
        gone += topo.destroy()
    path.unlink(missing_ok=True)
    return gone


def running_network_lab(settings: Settings) -> NetworkLab:
    """The network lab that `start_netlabs` recorded (to inject faults from tests/drills)."""
    path = _state(settings)
    for rec in json.loads(path.read_text()) if path.exists() else []:
        if "router" in rec["namespaces"]:
            return NetworkLab(Topology(namespaces=dict(rec["namespaces"])))
    raise LookupError(f"no network lab recorded in {path} (is `contingency up --lab` root?)")


def running_hardware_lab(settings: Settings) -> HardwareLab:
    """The hardware lab that `start_netlabs` recorded (to inject faults and reset)."""
    path = _state(settings)
    for rec in json.loads(path.read_text()) if path.exists() else []:
        if "sw" in rec["namespaces"]:
            lab = HardwareLab(Topology(namespaces=dict(rec["namespaces"])), _base(settings) / "hw")
            lab.vip, lab.addresses = rec["vip"], dict(rec["addresses"])
            return lab
    raise LookupError(f"no hardware lab recorded in {path} (is `contingency up --lab` root?)")
