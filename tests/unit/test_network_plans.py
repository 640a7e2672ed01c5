"""Pure parts of the network and hardware plans: inventory in → commands out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from inventory.alert import Alert
from inventory.loader import InventoryError, load_inventory
from inventory.models import Host, Inventory
from inventory.network import Link
from inventory.routing import route
from remediations import network_outage
from remediations.hardware_failure import build_plan as hw_plan
from tasks.actions.failover import driver_for
from tasks.facts.network import ping_command

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab" / "netns"


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load_inventory(EXAMPLE)


def test_example_lab_inventory_has_links_and_failover(inv: Inventory) -> None:
    assert {lk.role for lk in inv.links.values()} == {"primary", "backup"}
    assert inv.host_failover["hw-a"].fence is not None


def test_link_alert_routes_to_the_network_plan(inv: Inventory) -> None:
    d = route(Alert(fingerprint="f", labels={"alertname": "LinkDown", "link": "uplink-a"}), inv)
    assert (d.plan, d.target, d.target_kind) == ("network_outage", "uplink-a", "link")


def test_probe_and_route_commands_are_built_from_the_inventory(inv: Inventory) -> None:
    a = inv.links["uplink-a"]
    cmd = ping_command(a)
    assert "ping -n -q -i 0.2 -c 2 -W 1 -I up1 203.0.113.1" in cmd and cmd.endswith("wait")
    assert " -I " not in ping_command(a, bind=False)
    host, what = driver_for(inv.links["uplink-b"]).describe(inv.links["uplink-b"])
    assert (host, what) == ("lab-router", "ip route replace default via 198.51.100.6 dev up2")


def test_failover_plan_is_destructive_and_gated(inv: Inventory) -> None:
    plan = network_outage.build_plan(inv.links["uplink-b"], "primary down")
    assert plan.destructive and plan.requires_approval
    assert [a.where for a in plan.actions] == ["lab-router"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("gateway", "198.51.100.6; reboot"),
        ("interface", "eth0 && id"),
        ("probe_targets", ["203.0.113.1 -c 100000"]),
    ],
)
def test_link_values_that_could_smuggle_shell_are_rejected(field: str, value: object) -> None:
    raw = {"name": "x", "router": "r", "interface": "eth1", "gateway": "198.51.100.1",
           "role": "backup", "probe_targets": ["203.0.113.1"]}  # fmt: skip
    with pytest.raises(ValidationError):
        Link(**{**raw, field: value})


def test_hardware_plan_fences_then_starts_then_moves(inv: Inventory) -> None:
    fo = inv.host_failover["hw-a"]
    plan = hw_plan(inv.host("hw-a"), fo, [inv.service("portal")], inv)
    assert [(a.where, a.shown) for a in plan.actions] == [
        ("lab-switch", "ip link set dev pa down"),
        ("hw-b", "labctl restart portal"),
        ("hw-b", "ip addr replace 192.0.2.21/28 dev eth0"),
        ("hw-b", "arping -q -U -c 2 -I eth0 192.0.2.21"),
    ]
    assert plan.destructive and plan.requires_approval


def test_dns_address_is_planned_as_an_api_call(inv: Inventory) -> None:
    dns = {"kind": "dns", "api_url": "https://dns.example/v1", "zone": "example.org",
           "record": "portal"}  # fmt: skip
    base = inv.host_failover["hw-a"]
    fo = type(base).model_validate({**base.model_dump(), "addresses": [dns]})
    plan = hw_plan(inv.host("hw-a"), fo, [], inv)
    assert plan.actions[-1].kind == "dns" and plan.actions[-1].where == "dns portal.example.org"
    assert plan.actions[-1].shown == (
        "PUT https://dns.example/v1/zones/example.org/records/portal A 192.0.2.20 ttl 60"
    )


def test_auth_secret_names_a_secret_and_a_value_is_refused(tmp_path: Path) -> None:
    doc = {"hosts": {"r": Host(name="r", address="192.0.2.1", user="root",
                               key_secret="k").model_dump(exclude={"name"})},
           "links": {"l": {"router": "r", "interface": "eth1", "gateway": "198.51.100.1",
                           "role": "primary", "probe_targets": ["203.0.113.1"],
                           "driver": {"kind": "http-controller", "url": "https://ctl/x",
                                      "auth_secret": "ctl-token"}}}}  # fmt: skip
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc))
    assert load_inventory(tmp_path).links["l"].driver.kind == "http-controller"
    doc["links"]["l"]["driver"]["token"] = "s3cr3t-value"
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    assert "s3cr3t-value" not in str(err.value)


def test_unknown_router_standby_and_fence_hosts_are_reported_with_lines(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "hosts:\n"
        "  r: {address: 192.0.2.1, user: root, key_secret: k}\n"
        "links:\n"
        "  l: {router: r9, interface: eth1, gateway: 198.51.100.1, role: primary,\n"
        "      probe_targets: [203.0.113.1]}\n"
        "host_failover:\n"
        "  r:\n"
        "    standby: s9\n"
        "    fence: {kind: command, host: pdu9, command: 'off'}\n"
    )
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    text = str(err.value)
    assert ":4: links.l.router: unknown host 'r9'" in text
    assert ":8: host_failover.r.standby: unknown host 's9'" in text
    assert "fence.host: unknown host 'pdu9'" in text
