"""Plans as data: tests/data/plan_cases.yaml gives a plan builder's inputs in → the exact
plan out, a plan and a rails policy in → the blast-radius decision out, and every
outcome's properties. This module only interprets that file (see its header)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory.loader import load_inventory
from inventory.models import Inventory
from inventory.outcomes import Outcome
from remediations import (
    data_loss,
    hardware_failure,
    network_outage,
    runbook,
    security_incident,
    software_crash,
)
from remediations.plan import KINDS, Action, Plan
from remediations.rails import blast_radius
from tasks.storage import Manifest, RestorePoint

CASES_FILE = Path(__file__).parents[1] / "data" / "plan_cases.yaml"
SPEC = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
CASES = {c["id"]: c for c in SPEC["cases"]}
BASE = Path(SPEC["inventory"])

BUILDERS: dict[str, Callable[..., Plan]] = {
    "software_crash": software_crash.build_plan,
    "hardware_failure": hardware_failure.build_plan,
    "network_outage": network_outage.build_plan,
    "data_loss": data_loss.build_plan,
    "runbook": runbook.build_plan,
    "security_incident": security_incident.build_plan,
}
ARGS: dict[str, Callable[[Inventory, Any, dict[str, Any]], Any]] = {
    "service": lambda inv, v, a: inv.service(v),
    "host": lambda inv, v, a: inv.host(v),
    "fo": lambda inv, v, a: inv.host_failover[v],
    "services": lambda inv, v, a: [inv.service(s) for s in v],
    "to": lambda inv, v, a: inv.links[v],
    "back": lambda inv, v, a: inv.links[v],
    "success": lambda inv, v, a: Outcome(v),
    "ds": lambda inv, v, a: inv.datasets[v],
    "rb": lambda inv, v, a: inv.runbooks[v],
    "values": lambda inv, v, a: inv.runbooks[a["rb"]].resolve(v),
    "point": lambda inv, v, a: RestorePoint(key=v["key"], manifest=Manifest.model_validate(v)),
    "at": lambda inv, v, a: data_loss.parse_time(v),
    "policy": lambda inv, v, a: inv.security_policy(v),
}
PLAN_KEYS = ("destructive", "requires_approval", "success", "failure", "unrecovered")
REQUIRED = (*PLAN_KEYS, "actions", "verify", "after")
ACTION_KEYS = ("kind", "where", "shown", "risk", "idempotent", "changes")


# --- the inventory: the base directory, included files, then overrides ---------------


def _merge(into: dict[str, Any], layer: dict[str, Any] | None, override: bool) -> None:
    for section, value in (layer or {}).items():
        if section == "routing":
            into.setdefault(section, []).extend(value)
            continue
        entries = into.setdefault(section, {})
        for name, fields in value.items():
            if fields is None:
                entries.pop(name, None)
            elif override:
                merged = {**entries.get(name, {}), **fields}
                entries[name] = {k: v for k, v in merged.items() if v is not None}
            else:
                entries[name] = fields


@pytest.fixture(scope="session")
def inventory_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Inventory]:
    cache: dict[str, Inventory] = {}

    def load(include: list[str], *overrides: dict[str, Any] | None) -> Inventory:
        key = json.dumps([include, overrides], sort_keys=True)
        if key not in cache:
            raw: dict[str, Any] = {}
            for path in [*sorted(BASE.glob("*.yaml")), *(BASE / f for f in include)]:
                _merge(raw, yaml.safe_load(path.read_text(encoding="utf-8")), override=False)
            for layer in overrides:
                _merge(raw, layer, override=True)
            path = tmp_path_factory.mktemp("inventory") / "inventory.yaml"
            path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
            cache[key] = load_inventory(path)
        return cache[key]

    return load


def _build(case: dict[str, Any], inv: Inventory) -> Plan:
    build = BUILDERS[case["build"]]
    raw = case.get("args", {})
    kwargs = {k: ARGS[k](inv, v, raw) if k in ARGS else v for k, v in raw.items()}
    if "inv" in inspect.signature(build).parameters:
        kwargs["inv"] = inv
    return build(**kwargs)


def _plan_of(case: dict[str, Any], load: Callable[..., Inventory]) -> Plan:
    return _build(case, load(case.get("include", []), case.get("inventory")))


# --- what an action looks like to the approver -----------------------------------------


def _seen(action: Action, expected: dict[str, Any]) -> dict[str, Any]:
    """The action's fields the case gives (all of ACTION_KEYS, rollback when any)."""
    seen: dict[str, Any] = {k: getattr(action, k) for k in ACTION_KEYS}
    if action.rollback:
        seen["rollback"] = [r.shown for r in action.rollback]
    seen.update({k: getattr(action, k) for k in expected if k not in (*ACTION_KEYS, "rollback")})
    return seen


def _partial(actions: list[Action], expected: list[str | dict[str, Any]]) -> None:
    """verify/after: each item a kind, or the fields to check."""
    assert [a.kind for a in actions] == [e if isinstance(e, str) else e["kind"] for e in expected]
    for action, want in zip(actions, expected, strict=True):
        if isinstance(want, dict):
            assert {k: _seen(action, want)[k] for k in want} == want


@pytest.mark.parametrize("case", SPEC["cases"], ids=list(CASES))
def test_plan(case: dict[str, Any], inventory_for: Callable[..., Inventory]) -> None:
    expect = case["expect"]
    assert not (missing := [k for k in REQUIRED if k not in expect]), f"expect lacks {missing}"
    plan = _plan_of(case, inventory_for)
    assert len(plan.actions) == len(expect["actions"]), [a.shown for a in plan.actions]
    for i, (action, want) in enumerate(zip(plan.actions, expect["actions"], strict=True), 1):
        assert _seen(action, want) == want, f"action {i}"
    # outcomes are StrEnums: equal to their names
    assert {k: getattr(plan, k) for k in PLAN_KEYS} == {k: expect[k] for k in PLAN_KEYS}
    _partial(plan.verify, expect["verify"])
    _partial(plan.after, expect["after"])
    if "hosts" in expect:
        assert plan.hosts == expect["hosts"]
    if "facts" in expect:
        assert plan.facts == expect["facts"]
    assert plan.as_markdown()  # every plan renders for the approver


@pytest.mark.parametrize("case", SPEC["rails"], ids=[c["id"] for c in SPEC["rails"]])
def test_blast_radius(case: dict[str, Any], inventory_for: Callable[..., Inventory]) -> None:
    if isinstance(case["plan"], str):
        base = CASES[case["plan"]]
        inv = inventory_for(base.get("include", []), base.get("inventory"), case.get("inventory"))
        plan = _build(base, inv)
    else:
        inv = inventory_for(case.get("include", []), case.get("inventory"))
        plan = Plan.model_validate(case["plan"])
    policy = inv.rails_policy(plan.plan.value)
    why = blast_radius(plan, inv, policy.max_hosts_per_run, policy.max_group_percent)
    if case["blocked"] is None:
        assert why is None
    else:
        assert why is not None and case["blocked"] in why, why


@pytest.mark.parametrize("name", list(SPEC["outcomes"]))
def test_outcome_properties(name: str) -> None:
    outcome = Outcome(name)
    seen = {k: getattr(outcome, k) for k in ("ok", "recovers", "ran", "page_event")}
    assert seen == SPEC["outcomes"][name]
    assert outcome.needs_human is not outcome.ok


# --- the cases file covers everything -----------------------------------------------


def _kinds(actions: list[Action]) -> Iterator[str]:
    for a in actions:
        yield a.kind
        yield from _kinds(a.rollback)


def test_every_action_kind_is_produced_by_a_case(
    inventory_for: Callable[..., Inventory],
) -> None:
    produced: set[str] = set()
    for case in SPEC["cases"]:
        plan = _plan_of(case, inventory_for)
        produced.update(_kinds([*plan.actions, *plan.verify, *plan.after]))
    assert sorted(set(KINDS) - produced) == []
    assert sorted(produced - set(KINDS)) == []


def test_every_outcome_appears_in_the_cases_file() -> None:
    named = set(SPEC["outcomes"])
    named |= {c["expect"][k] for c in SPEC["cases"] for k in ("success", "failure", "unrecovered")}
    assert sorted(named - {o.value for o in Outcome}) == []  # no stale names
    assert [o.value for o in Outcome if o.value not in named] == []


def test_every_builder_has_a_case() -> None:
    assert {c["build"] for c in SPEC["cases"]} == set(BUILDERS)
    assert len(CASES) == len(SPEC["cases"]), "case ids must be unique"
