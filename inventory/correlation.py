"""Correlation: which open incident an alert belongs to, from the inventory's topology.

An incident's *cause* is its routed target, as ``(kind, name)``: ``("link", "uplink-a")``,
``("host", "db-1")``, ``("service", "web")``. A rule says which causes absorb which
alerts; a cause absorbs an alert whose target *sits under* it:

- the same target;
- a service (or dataset) on a host sits under that host;
- a host behind a link (``behind_hosts``, or its ``site`` label in ``behind_sites``)
  sits under the link, and so do that host's services and datasets.

The rules are data in the inventory (section ``correlation``, keyed by rule name); when
the section is empty these defaults apply::

    correlation:
      link-down:    {cause: link, absorbs: [link, host, service, dataset]}
      host-down:    {cause: host, absorbs: [host, service, dataset]}
      same-service: {cause: service, absorbs: [service]}
      same-dataset: {cause: dataset, absorbs: [dataset]}

A rule with ``absorbs: []`` absorbs nothing (declare only that rule to turn
correlation off). Pure: no I/O::

    causes = covering(("service", "web"), inv)   # broadest first
    # [("link", "uplink-a"), ("host", "web-1"), ("service", "web")]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from inventory.models import Inventory

Kind = Literal["link", "host", "service", "dataset"]
Target = tuple[str, str]
"""``(kind, name)`` of a routed target."""
BREADTH: dict[str, int] = {"link": 0, "host": 1, "service": 2, "dataset": 2}
"""Broader causes first: within a burst a link's alert is handled before its hosts'."""


class CorrelationRule(BaseModel):
    """An open incident on a ``cause`` target absorbs alerts on ``absorbs`` targets
    under it (the same target, a host's services, a link's hosts and their services)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    cause: Kind
    absorbs: list[Kind] = Field(default_factory=list)
    description: str = ""


DEFAULT_RULES: tuple[CorrelationRule, ...] = (
    CorrelationRule(name="link-down", cause="link", absorbs=["link", "host", "service", "dataset"]),
    CorrelationRule(name="host-down", cause="host", absorbs=["host", "service", "dataset"]),
    CorrelationRule(name="same-service", cause="service", absorbs=["service"]),
    CorrelationRule(name="same-dataset", cause="dataset", absorbs=["dataset"]),
)


def rules_of(inv: Inventory) -> tuple[CorrelationRule, ...]:
    """The inventory's rules, else the defaults."""
    return tuple(inv.correlation.values()) or DEFAULT_RULES


def host_of(target: Target, inv: Inventory) -> str | None:
    """The host a target runs on (itself for a host), if the inventory says."""
    kind, name = target
    if kind == "host":
        return name if name in inv.hosts else None
    if kind == "service" and name in inv.services:
        return inv.services[name].host
    if kind == "dataset" and name in inv.datasets:
        return inv.datasets[name].host
    return None


def links_in_front(host: str, inv: Inventory) -> list[str]:
    """The links ``host`` sits behind (by name or by its ``site`` label), in inventory order."""
    site = inv.hosts[host].labels.get("site") if host in inv.hosts else None
    return [
        name
        for name, link in inv.links.items()
        if host in link.behind_hosts or (site is not None and site in link.behind_sites)
    ]


def covering(target: Target, inv: Inventory) -> list[Target]:
    """Every cause that would absorb an alert on ``target`` under the inventory's rules,
    broadest first (links, then the host, then the target itself)."""
    kind, name = target
    absorbing: dict[str, set[str]] = {}
    for rule in rules_of(inv):
        absorbing.setdefault(rule.cause, set()).update(rule.absorbs)
    candidates: list[Target] = []
    host = host_of(target, inv)
    if host is not None:
        candidates += [("link", link) for link in links_in_front(host, inv)]
        if kind != "host":
            candidates.append(("host", host))
    candidates.append(target)
    return [c for c in candidates if kind in absorbing.get(c[0], set())]


CAUSE_TAG = "has-cause"
"""On every incident run that has a cause tag: the dispatcher reads only those open runs
(not, in a storm, every open incident of an unroutable alert)."""


def cause_tag(target: Target) -> str:
    """The flow-run tag that names an incident's cause: ``cause:<kind>:<name>``."""
    return f"cause:{target[0]}:{target[1]}"


def parse_cause_tag(tag: str) -> Target | None:
    kind, _, name = tag.removeprefix("cause:").partition(":")
    if not tag.startswith("cause:") or kind not in BREADTH or not name:
        return None
    return (kind, name)
