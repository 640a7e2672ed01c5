"""Routing as data: tests/data/routing_cases.yaml gives labels in → decision out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory.alert import Alert
from inventory.loader import load_inventory
from inventory.models import Inventory, PlanName, RoutingRule
from inventory.routing import MAX_SHOWN, RouteDecision, matches, route

CASES_FILE = Path(__file__).parents[1] / "data" / "routing_cases.yaml"
SPEC = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
EXPECTED_KEYS = ("routed", "rule", "plan", "target", "target_kind")


@pytest.fixture(scope="module")
def inv(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("routing") / "inventory.yaml"
    path.write_text(yaml.safe_dump(SPEC["inventory"]), encoding="utf-8")
    return load_inventory(path)


def _alert(labels: dict[str, str]) -> Alert:
    return Alert(fingerprint="f1", labels=labels)


@pytest.mark.parametrize("case", SPEC["cases"], ids=[c["id"] for c in SPEC["cases"]])
def test_case(inv: Inventory, case: dict[str, Any]) -> None:
    decision = route(_alert(case["labels"]), inv)
    for key in EXPECTED_KEYS:
        if key in case:
            assert getattr(decision, key) == case[key], key
    for fragment in case.get("reason_contains", []):
        assert fragment in decision.reason


def test_cases_file_covers_every_outcome() -> None:
    outcomes = {(c["routed"], c.get("rule") is None) for c in SPEC["cases"]}
    assert outcomes == {(True, False), (False, False), (False, True)}


def test_unrouted_decision_never_carries_plan_or_target(inv: Inventory) -> None:
    for case in SPEC["cases"]:
        decision = route(_alert(case["labels"]), inv)
        if not decision.routed:
            assert (decision.plan, decision.target, decision.target_kind) == (None, None, None)
            assert decision.reason


def test_plan_is_the_enum(inv: Inventory) -> None:
    decision = route(_alert({"alertname": "ServiceDown", "service": "web"}), inv)
    assert decision.plan is PlanName.software_crash


def test_long_label_values_are_truncated_in_reason(inv: Inventory) -> None:
    long = "x" * 5000
    decision = route(_alert({"alertname": "Nope", "note": long}), inv)
    assert not decision.routed
    assert "x" * MAX_SHOWN in decision.reason
    assert "x" * (MAX_SHOWN + 1) not in decision.reason
    assert "+4920 chars" in decision.reason


def test_unknown_long_target_is_truncated(inv: Inventory) -> None:
    decision = route(_alert({"alertname": "ServiceDown", "service": "s" * 200}), inv)
    assert decision.rule == "crash"
    assert "s" * (MAX_SHOWN + 1) not in decision.reason


def test_control_characters_are_escaped_in_reason(inv: Inventory) -> None:
    decision = route(_alert({"alertname": "ServiceDown", "service": "web\nFAKE LOG LINE"}), inv)
    assert not decision.routed
    assert "\n" not in decision.reason
    assert "\\n" in decision.reason


def test_fixed_target_missing_from_inventory_is_unroutable_not_an_error() -> None:
    # Built in code, bypassing the loader's cross-check.
    rule = RoutingRule(name="r", match={"a": "b"}, plan=PlanName.runbook, target="ghost")
    decision = route(_alert({"a": "b"}), Inventory(routing=[rule]))
    assert decision == RouteDecision(
        routed=False,
        rule="r",
        reason="rule 'r' matched but 'ghost' is not a service or host in the inventory",
    )


def test_empty_rule_matches_everything() -> None:
    rule = RoutingRule(name="all", plan=PlanName.runbook)
    assert matches(rule, {})
    assert matches(rule, {"anything": "at all"})


def test_match_requires_presence_even_for_empty_value() -> None:
    rule = RoutingRule(name="r", match={"team": ""}, plan=PlanName.runbook)
    assert not matches(rule, {})
    assert matches(rule, {"team": ""})


def test_service_wins_over_host_of_same_name(inv: Inventory) -> None:
    both = inv.model_copy(update={"hosts": {**inv.hosts, "web": inv.hosts["web1"]}})
    decision = route(_alert({"alertname": "ServiceDown", "service": "web"}), both)
    assert decision.target_kind == "service"


def test_many_labels_are_capped_in_reason() -> None:
    labels = {f"l{i:03d}": "v" for i in range(100)}
    decision = route(_alert(labels), Inventory())
    assert "+80 labels" in decision.reason
    assert "l099" not in decision.reason
