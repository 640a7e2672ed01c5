"""Pure routing: an alert's labels select a plan and a target by name.

The first rule (in inventory order) whose ``match`` labels are all equal and whose
``match_re`` labels all fully match wins. Label values are only compared and looked
up, never interpreted; a target that is not in the inventory makes the alert
unroutable, never an error::

    decision = route(alert, inv)
    if decision.routed:
        start(decision.plan, decision.target)
    else:
        escalate(decision.reason)
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from inventory.alert import Alert
from inventory.instances import pick_instance
from inventory.models import Inventory, PlanName, RoutingRule

MAX_SHOWN = 80
"""Label values (and keys) longer than this are truncated in reasons."""
MAX_LABELS_SHOWN = 20

TargetKind = Literal["service", "host", "link", "dataset"]


class RouteDecision(BaseModel):
    """What to run for an alert, or why nothing can run.

    ``rule`` names the matching rule even when the target is unknown; ``plan`` and
    ``target`` are set only when ``routed`` is true.
    """

    model_config = ConfigDict(frozen=True)

    routed: bool
    rule: str | None = None
    plan: PlanName | None = None
    target: str | None = None
    target_kind: TargetKind | None = None
    runbook: str | None = None
    """For the runbook plan: the runbook to run."""
    params: dict[str, str | int | float | bool] = {}
    """Runbook parameters from the routing rule (never from alert labels)."""
    reason: str


def route(alert: Alert, inv: Inventory) -> RouteDecision:
    """Pick the plan and target for ``alert`` from the inventory's routing rules."""
    labels = alert.labels
    rule = next((r for r in inv.routing if matches(r, labels)), None)
    if rule is None:
        return RouteDecision(routed=False, reason=f"no routing rule matches labels {_show(labels)}")
    name = rule.target if rule.target is not None else labels.get(rule.target_label)
    if name is None:
        why = f"alert has no label {_safe(rule.target_label)} to name the target"
        return _unroutable(rule, why)
    fleet = name in inv.instances and rule.plan is PlanName.runbook and rule.target == name
    if name in inv.instances and not fleet:  # a service on many hosts: which instance?
        one = _instance(name, labels, rule, inv)
        if one is None:
            keys = " or ".join(_safe(k) for k in rule.instance_labels)
            why = (f"{_safe(name)} runs on {len(inv.instances[name])} hosts and no label "
                   f"{keys} names one of them")  # fmt: skip
            return _unroutable(rule, why)
        name = one
    kind: TargetKind | None = "service" if fleet else target_kind(name, inv)
    if kind is None:
        return _unroutable(rule, f"{_safe(name)} is not a service or host in the inventory")
    return RouteDecision(
        routed=True,
        rule=rule.name,
        plan=rule.plan,
        target=name,
        target_kind=kind,
        runbook=rule.runbook,
        params=dict(rule.params),
        reason=f"rule {rule.name!r} matched: plan {rule.plan.value}"
        + (f" ({rule.runbook})" if rule.runbook else "")
        + f" on {kind} {name!r}",
    )


def _instance(
    service: str, labels: dict[str, str], rule: RoutingRule, inv: Inventory
) -> str | None:
    hosts_of = {}
    for instance in inv.instances[service]:
        host = inv.services[instance].host
        hosts_of[instance] = (host, inv.hosts[host].address if host in inv.hosts else host)
    return pick_instance(hosts_of, labels, rule.instance_labels)


def matches(rule: RoutingRule, labels: dict[str, str]) -> bool:
    """True if every ``match`` label is equal and every ``match_re`` label fully matches."""
    if any(labels.get(k) != v for k, v in rule.match.items()):
        return False
    return all(
        k in labels and re.fullmatch(rx, labels[k]) is not None for k, rx in rule.match_re.items()
    )


def target_kind(name: str, inv: Inventory) -> TargetKind | None:
    """What ``name`` is in the inventory (service, host, link, dataset), or None."""
    if name in inv.services:
        return "service"
    if name in inv.hosts:
        return "host"
    if name in inv.links:
        return "link"
    if name in inv.datasets:
        return "dataset"
    return None


def _unroutable(rule: RoutingRule, why: str) -> RouteDecision:
    reason = f"rule {rule.name!r} matched but {why}"
    return RouteDecision(routed=False, rule=rule.name, reason=reason)


def _safe(value: str) -> str:
    """Quote (escaping control characters) and truncate a value for a log line."""
    if len(value) > MAX_SHOWN:
        return repr(value[:MAX_SHOWN]) + f"…(+{len(value) - MAX_SHOWN} chars)"
    return repr(value)


def _show(labels: dict[str, str]) -> str:
    items = sorted(labels.items())
    shown = [f"{_safe(k)}: {_safe(v)}" for k, v in items[:MAX_LABELS_SHOWN]]
    if len(items) > MAX_LABELS_SHOWN:
        shown.append(f"…(+{len(items) - MAX_LABELS_SHOWN} labels)")
    return "{" + ", ".join(shown) + "}"
