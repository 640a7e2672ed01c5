"""The security-incident plan, pure: the isolation command, the plan's order (evidence
before any change, two approvals, an undo), and what it refuses to do."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from inventory.alert import Alert
from inventory.errors import InventoryError
from inventory.loader import load_inventory
from inventory.models import Host, PlanName
from inventory.routing import route
from inventory.security import SecurityPolicy
from remediations.context import IncidentContext
from remediations.security_incident import build_plan, prepare

LAB = Path(__file__).parents[2] / "inventory" / "examples" / "lab"
LOCATION = {
    "bucket": "evidence", "prefix": "sec", "endpoint": "http://127.0.0.1:9",
    "key_id_ref": "k-id", "key_ref": "k",
}  # fmt: skip


def test_isolation_drops_everything_but_loopback_and_the_management_network() -> None:
    policy = SecurityPolicy(allow_from=["10.0.0.5", "2001:db8::/64"])
    words = shlex.split(policy.isolate_command())
    assert words[0] == "nft" and len(words) == 2
    script = words[1]
    assert "policy drop" in script and script.count("hook input") == 1
    assert "iif lo accept" in script and "oif lo accept" in script
    assert "ip saddr { 10.0.0.5/32 } accept" in script
    assert "ip6 daddr { 2001:db8::/64 } accept" in script
    assert policy.release_command() == "nft delete table inet contingency_isolation"


def test_a_bad_address_or_path_is_refused_when_the_inventory_loads(tmp_path: Path) -> None:
    (tmp_path / "sec.yaml").write_text(
        yaml.safe_dump(
            {"security": {"default": {"allow_from": ["10.0.0.300"], "hash_files": ["etc/x;rm"]}}}
        )
    )
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    text = str(err.value)
    assert "'10.0.0.300' is not an IP address or network" in text and "hash_files" in text


def test_evidence_comes_first_then_two_approvals_then_an_isolation_that_can_be_undone() -> None:
    host = Host(name="hw-a", address="192.0.2.19", user="root", key_secret="k")
    policy = SecurityPolicy(allow_from=["192.0.2.17/32"], evidence_location=LOCATION)
    plan = build_plan(host, policy)
    assert plan.plan is PlanName.security_incident
    first, isolate = plan.actions
    assert first.kind == "evidence" and not first.changes  # runs before the gate
    assert [name for name, _ in first.items][-1] == "file-hashes"  # type: ignore[union-attr]
    assert isolate.changes and isolate.rollback[0].shown == policy.release_command()
    assert plan.destructive and plan.requires_approval  # two different approvers
    assert plan.verify[0].shown == policy.check_command() and not plan.verify[0].changes
    assert plan.after[0].role == "security_monitoring"  # type: ignore[union-attr]
    assert plan.success == "contained" and plan.success.needs_human


@pytest.mark.parametrize(
    ("section", "why"),
    [
        ({}, "allow_from is empty"),
        ({"allow_from": ["127.0.0.1"]}, "evidence_location is not set"),
    ],
)
def test_without_a_management_network_or_an_evidence_store_nothing_is_done(
    tmp_path: Path, section: dict, why: str
) -> None:
    inv = load_inventory(LAB)
    if section:
        inv = inv.model_copy(update={"security": {"default": SecurityPolicy(**section)}})
    alert = Alert(fingerprint="t", labels={"alertname": "IntrusionDetected", "host": "app1"})
    decision = route(alert, inv).model_copy(
        update={"routed": True, "plan": PlanName.security_incident, "target": "app1",
                "target_kind": "host"}
    )  # fmt: skip
    ctx = IncidentContext(alert=alert, inv=inv, decision=decision, approve=lambda p: None)  # type: ignore[arg-type,return-value]
    verdict = prepare(ctx)
    assert getattr(verdict, "outcome", None) == "bad_parameters"
    assert why in verdict.message  # type: ignore[union-attr]
    assert "hold" not in ctx.facts  # nothing held, nothing asked
