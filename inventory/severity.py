"""Severity levels (确定问题性质): how grave an incident is, and what that level demands.

The inventory's section ``severity`` lists the levels keyed by name, most severe first
(``rank`` 1). An incident gets the first level, by rank, one of whose criteria matches;
a criterion is a conjunction of alert labels (exact), plans and a minimum blast radius
(hosts and services under the target: a link counts the hosts behind it and their
services, a host itself and its services). A level with no criteria is a catch-all. When
the section is empty, the four levels of Chinese practice apply (``DEFAULT_LEVELS``)::

    severity:
      I:
        rank: 1
        name_zh: 特别重大
        name_en: Extraordinarily serious
        when: [{min_blast_radius: 50}, {labels: {severity: "I"}}]
        activation: true         # the command center activates the plan (a gate even
                                 # for plans that have none)
        page: [command_center, operations, tech_support, security_monitoring,
               user_service, information_management]
        tell_command_center_min: 5
        escalation_min: [5, 5, 5]

``page``: the roles paged when the incident opens; ``tell_command_center_min``: how soon
the command center must be told; ``escalation_min``: the acknowledgement timeline (the
on-duty person, the next, the backup, then the command center). Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from inventory.models import Inventory

LEVEL_RE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$"
PLANS = (
    "software_crash",
    "data_loss",
    "network_outage",
    "hardware_failure",
    "security_incident",
    "runbook",
)
ROLES = (
    "command_center",
    "tech_support",
    "security_monitoring",
    "operations",
    "user_service",
    "information_management",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Model):
    """All that is given must hold."""

    labels: dict[str, str] = Field(default_factory=dict)
    plans: list[str] = Field(default_factory=list)
    min_blast_radius: int = Field(0, ge=0)

    def holds(self, labels: dict[str, str], plan: str | None, radius: int) -> bool:
        return (
            all(labels.get(k) == v for k, v in self.labels.items())
            and (not self.plans or (plan is not None and plan in self.plans))
            and radius >= self.min_blast_radius
        )


class SeverityLevel(_Model):
    name: str = Field(pattern=LEVEL_RE)
    rank: int = Field(ge=1, le=9)
    name_zh: str = ""
    name_en: str = ""
    when: list[Criterion] = Field(default_factory=list)
    """Any one criterion makes the level; none: the catch-all."""
    activation: bool = False
    page: list[str] = Field(default_factory=list)
    """Roles paged when the incident opens; empty: the default routing."""
    tell_command_center_min: float = Field(60, gt=0)
    escalation_min: list[float] = Field(default_factory=lambda: [15.0, 15.0, 15.0])

    def label(self, lang: str = "en") -> str:
        words = self.name_zh if lang == "zh" else self.name_en
        return f"{self.name} {words}".strip()

    def matches(self, labels: dict[str, str], plan: str | None, radius: int) -> bool:
        return not self.when or any(c.holds(labels, plan, radius) for c in self.when)


_EVERYONE = list(ROLES)
_OPENED = ["command_center", "operations", "tech_support", "security_monitoring"]

DEFAULT_LEVELS: tuple[SeverityLevel, ...] = (
    SeverityLevel(
        name="I", rank=1, name_zh="特别重大", name_en="Extraordinarily serious",
        when=[Criterion(min_blast_radius=50), Criterion(labels={"severity": "I"})],
        activation=True, page=_EVERYONE, tell_command_center_min=5, escalation_min=[5, 5, 5],
    ),
    SeverityLevel(
        name="II", rank=2, name_zh="重大", name_en="Serious",
        when=[Criterion(min_blast_radius=10), Criterion(labels={"severity": "II"})],
        activation=True, page=_EVERYONE, tell_command_center_min=15,
        escalation_min=[10, 10, 10],
    ),
    SeverityLevel(
        name="III", rank=3, name_zh="较大", name_en="Major",
        when=[
            Criterion(
                plans=["data_loss", "network_outage", "hardware_failure", "security_incident"]
            ),
            Criterion(labels={"severity": "critical"}),
            Criterion(labels={"severity": "III"}),
        ],
        page=_OPENED, tell_command_center_min=30, escalation_min=[15, 15, 15],
    ),
    SeverityLevel(
        name="IV", rank=4, name_zh="一般", name_en="Ordinary",
        page=_OPENED, tell_command_center_min=120, escalation_min=[30, 30, 30],
    ),
)  # fmt: skip


def levels_of(inv: Inventory) -> list[SeverityLevel]:
    """The inventory's levels by rank, else the defaults."""
    return sorted(inv.severity.values(), key=lambda lv: lv.rank) or list(DEFAULT_LEVELS)


def blast_radius(kind: str | None, name: str | None, inv: Inventory) -> int:
    """Hosts and services under a routed target."""
    if kind is None or name is None:
        return 0
    if kind == "link" and name in inv.links:
        link = inv.links[name]
        hosts = {
            h
            for h, host in inv.hosts.items()
            if h in link.behind_hosts or host.labels.get("site") in link.behind_sites
        }
    elif kind == "host":
        hosts = {name}
    else:
        return 1
    services = [s for s in inv.services.values() if s.host in hosts]
    return len(hosts) + len(services)


def classify(
    labels: dict[str, str],
    plan: str | None,
    kind: str | None,
    target: str | None,
    inv: Inventory,
    asked: str | None = None,
) -> SeverityLevel:
    """The incident's level. ``asked``: a level named by a person (a human report, a
    triage) wins when the inventory has it."""
    levels = levels_of(inv)
    if asked is not None:
        for level in levels:
            if level.name == asked:
                return level
    radius = blast_radius(kind, target, inv)
    for level in levels:
        if level.matches(labels, plan, radius):
            return level
    return levels[-1]
