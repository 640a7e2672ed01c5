"""Severity levels (确定问题性质): classification over labels, plan and blast radius."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inventory.loader import InventoryError, load_inventory
from inventory.models import Inventory
from inventory.severity import DEFAULT_LEVELS, blast_radius, classify

HOST = {"address": "10.0.0.1", "user": "ops", "key_secret": "k"}


def _inv(tmp_path: Path, hosts: int, extra: dict | None = None) -> Inventory:
    doc = {
        "hosts": {f"h{i}": {**HOST, "labels": {"site": "branch"}} for i in range(hosts)},
        "services": {
            f"s{i}": {
                "host": f"h{i}",
                "health": {"kind": "tcp", "port": 80},
                "manager": {"kind": "systemd", "unit": f"s{i}.service"},
            }
            for i in range(hosts)
        },
        "links": {
            "wan": {
                "router": "h0", "interface": "eth1", "gateway": "10.0.0.254",
                "role": "primary", "probe_targets": ["10.0.9.9"], "behind_sites": ["branch"],
            }
        },
        **(extra or {}),
    }  # fmt: skip
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_inventory(path)


def test_blast_radius_counts_hosts_behind_a_link_and_their_services(tmp_path: Path) -> None:
    inv = _inv(tmp_path, 6)
    assert blast_radius("link", "wan", inv) == 12
    assert blast_radius("host", "h1", inv) == 2
    assert blast_radius("service", "s1", inv) == 1
    assert blast_radius(None, None, inv) == 0


@pytest.mark.parametrize(
    ("hosts", "labels", "plan", "kind", "target", "level"),
    [
        (30, {}, "network_outage", "link", "wan", "I"),  # 60 hosts and services
        (6, {}, "network_outage", "link", "wan", "II"),  # 12
        (2, {}, "network_outage", "link", "wan", "III"),  # a plan of grave kind
        (2, {}, "software_crash", "service", "s1", "IV"),
        (2, {"severity": "critical"}, "software_crash", "service", "s1", "III"),
        (2, {"severity": "I"}, None, None, None, "I"),  # unroutable, but said so
        (2, {}, None, None, None, "IV"),
    ],
)
def test_default_levels(
    tmp_path: Path,
    hosts: int,
    labels: dict[str, str],
    plan: str | None,
    kind: str | None,
    target: str | None,
    level: str,
) -> None:
    inv = _inv(tmp_path, hosts)
    got = classify(labels, plan, kind, target, inv)
    assert got.name == level
    assert got.activation == (level in {"I", "II"})
    assert got.label("zh").startswith(level) and got.label("zh") != got.label("en")


def test_the_inventorys_own_levels_replace_the_defaults(tmp_path: Path) -> None:
    levels = {
        "sev1": {"rank": 1, "when": [{"labels": {"team": "payments"}, "plans": ["data_loss"]}],
                 "activation": True, "page": ["command_center"]},
        "sev2": {"rank": 2},
    }  # fmt: skip
    inv = _inv(tmp_path, 40, {"severity": levels})
    assert classify({"team": "payments"}, "data_loss", "host", "h1", inv).name == "sev1"
    assert classify({"team": "payments"}, "software_crash", "service", "s1", inv).name == "sev2"
    assert classify({}, "network_outage", "link", "wan", inv).name == "sev2"  # no radius rule
    assert classify({}, None, None, None, inv, asked="sev1").name == "sev1"
    assert [lv.name for lv in DEFAULT_LEVELS] == ["I", "II", "III", "IV"]


def test_bad_levels_are_refused_with_their_place(tmp_path: Path) -> None:
    levels = {
        "a": {"rank": 1, "page": ["janitors"], "when": [{"plans": ["reboot_everything"]}]},
        "b": {"rank": 1},
        "c d": {"rank": 3},
    }
    with pytest.raises(InventoryError) as exc:
        _inv(tmp_path, 1, {"severity": levels})
    text = str(exc.value)
    assert "severity.a.page.0: 'janitors' is not a role" in text
    assert "severity.a.when.0.plans.0: 'reboot_everything' is not a plan" in text
    assert "severity.b.rank: rank 1 is also level 'a'" in text
    assert "severity.c d.name" in text
