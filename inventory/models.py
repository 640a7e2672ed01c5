"""Pydantic models of the estate: hosts, services, roles, people, routing rules.

The inventory names secrets (``key_secret``, ``notify``); it never contains one.
Commands that run on hosts come only from here, never from alert text.
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inventory.correlation import CorrelationRule
from inventory.datasets import Dataset
from inventory.duty import Roster
from inventory.errors import UnknownName
from inventory.groups import HostGroup
from inventory.network import HostFailover, Link
from inventory.revisions import Revision
from inventory.runbooks import Runbook
from inventory.security import SecurityPolicy
from inventory.severity import SeverityLevel
from inventory.wording import Wording

NAME_RE = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_RE)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleName(StrEnum):
    """The seed plan's roles (组织架构与职责)."""

    command_center = "command_center"  # 应急指挥中心
    tech_support = "tech_support"  # 技术支持
    security_monitoring = "security_monitoring"  # 安全监控
    operations = "operations"  # 运维
    user_service = "user_service"  # 用户服务
    information_management = "information_management"  # 信息管理


class Host(_Model):
    name: Name
    address: str
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    key_secret: Name
    """Name of the secret holding the private key (never the key itself)."""
    host_key: str | None = None
    """Pinned public host key, ``"ssh-ed25519 AAAA..."``; else the known_hosts file."""
    known_hosts: str | None = None
    """Path of a pinned known_hosts file used when ``host_key`` is not set."""
    labels: dict[str, str] = Field(default_factory=dict)
    groups: list[Name] = Field(default_factory=list)
    """The host groups it is in (set by the loader from ``host_groups``)."""

    @field_validator("host_key")
    @classmethod
    def _key_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"(ssh-|ecdsa-)[\w@.-]+ [A-Za-z0-9+/=]+( .*)?", v):
            raise ValueError("host_key must look like 'ssh-ed25519 AAAA...'")
        return v


class CommandCheck(_Model):
    kind: Literal["command"] = "command"
    command: str = Field(min_length=1)
    """Runs on the service's host over SSH; exit 0 means healthy."""


class TcpCheck(_Model):
    kind: Literal["tcp"] = "tcp"
    port: int = Field(ge=1, le=65535)
    address: str | None = None
    """Defaults to the host's address."""


class HttpCheck(_Model):
    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")
    expect_status: int = 200


HealthCheck = Annotated[CommandCheck | TcpCheck | HttpCheck, Field(discriminator="kind")]


class SystemdManager(_Model):
    kind: Literal["systemd"] = "systemd"
    unit: str = Field(pattern=r"^[A-Za-z0-9@_.:-]+$")
    sudo: bool = False

    def _prefix(self) -> str:
        return "sudo -n " if self.sudo else ""

    def restart_commands(self) -> list[str]:
        return [f"{self._prefix()}systemctl restart {shlex.quote(self.unit)}"]

    def status_command(self) -> str:
        return f"{self._prefix()}systemctl is-active {shlex.quote(self.unit)}"

    def stop_commands(self) -> list[str]:
        return [f"{self._prefix()}systemctl stop {shlex.quote(self.unit)}"]

    def start_commands(self) -> list[str]:
        return [f"{self._prefix()}systemctl start {shlex.quote(self.unit)}"]


class CommandsManager(_Model):
    kind: Literal["commands"] = "commands"
    restart: list[str] = Field(min_length=1)
    status: str | None = None
    stop: list[str] = Field(default_factory=list)
    """Needed when a dataset restore must stop the service (the loader checks)."""
    start: list[str] = Field(default_factory=list)

    def restart_commands(self) -> list[str]:
        return list(self.restart)

    def stop_commands(self) -> list[str]:
        return list(self.stop)

    def start_commands(self) -> list[str]:
        return list(self.start)

    def status_command(self) -> str | None:
        return self.status


ServiceManager = Annotated[SystemdManager | CommandsManager, Field(discriminator="kind")]


class VerifyPolicy(_Model):
    """How long and how often to re-check health after an action."""

    deadline_s: float = Field(60.0, gt=0)
    first_delay_s: float = Field(0.5, ge=0)
    backoff: float = Field(1.5, ge=1)
    max_interval_s: float = Field(10.0, gt=0)


class Service(_Model):
    name: Name
    host: Name
    health: HealthCheck
    manager: ServiceManager
    verify: VerifyPolicy = VerifyPolicy()
    requires_approval: bool = False
    description: str = ""
    instance_of: Name | None = None
    """Set on an instance of a service that runs on a group or a list of hosts
    (``inventory/instances.py``): that service's name."""


class Person(_Model):
    name: Name
    display_name: str = ""
    roles: list[RoleName] = Field(default_factory=list)
    notify: list[Name] = Field(default_factory=list)
    """Secret names of apprise URLs for this person. A command-center member's one-time
    sign-off codes go only to these (those not also a role's or another person's
    channel); a member without one cannot sign off."""
    backup: bool = False
    """A backup approver: paged when a gate has waited ``backup_after_s``."""
    phone: str = Field("", max_length=40)
    email: str = Field("", max_length=200)
    chat: str = Field("", max_length=200)
    """Contact details shown by ``contingency oncall`` (not secrets; not channels)."""
    fallback: list[Name] = Field(default_factory=list)
    """Secret names of apprise URLs (SMS, voice, e-mail) used when a chat channel that
    should reach this person fails after its retries."""


class Role(_Model):
    name: RoleName
    title_zh: str = ""
    title_en: str = ""
    duties: str = ""
    duties_zh: str = ""
    notify: list[Name] = Field(default_factory=list)
    """Secret names of apprise URLs for the role's channel."""


class PlanName(StrEnum):
    software_crash = "software_crash"
    hardware_failure = "hardware_failure"
    data_loss = "data_loss"
    network_outage = "network_outage"
    security_incident = "security_incident"
    runbook = "runbook"


class RoutingRule(_Model):
    """Label matchers → plan + target.

    ``match`` labels must be equal, ``match_re`` labels must fully match the regex.
    The target is named by ``target`` or taken from the alert label ``target_label``;
    either way it must exist in the inventory.
    """

    name: Name
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    plan: PlanName
    target: Name | None = None
    target_label: str = "service"
    instance_labels: list[str] = Field(default_factory=lambda: ["instance", "host"])
    """For a service on many hosts: the labels naming the instance, tried in order."""
    requires_approval: bool = False
    runbook: Name | None = None
    """For ``plan: runbook``: which runbook (under ``runbooks``) runs."""
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Runbook parameters this rule passes (typed by the runbook)."""

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, v: dict[str, str]) -> dict[str, str]:
        for label, rx in v.items():
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"label {label!r}: bad regex {rx!r}: {exc}") from exc
        return v


class GatePolicy(_Model):
    """Sign-off policy of a plan: its timeout ladder, in seconds from when the gate
    opened, and the two-person rule. Section ``gate_policies``, keyed by plan name
    (or ``default``)."""

    name: str = "default"
    remind_after_s: float = Field(900, gt=0)
    backup_after_s: float = Field(1800, gt=0)
    abort_after_s: float = Field(3600, gt=0)
    two_person: bool | None = None
    """None: the plan decides (destructive plans need two approvers)."""
    poll_s: float = Field(0.5, gt=0, le=10)


class RailsPolicy(_Model):
    """Safety rails of a plan (section ``rails``, keyed by plan name or ``default``).

    Cooldown per (plan, target); flap breaker: ``flap_count`` remediations of the same
    target within ``flap_window_s`` stop the automation; blast radius per run (hosts,
    percent of a host group) and per time window (remediations of any target)."""

    name: str = "default"
    cooldown_s: float = Field(120, ge=0)
    flap_count: int = Field(3, ge=1)
    flap_window_s: float = Field(3600, gt=0)
    max_hosts_per_run: int = Field(5, ge=1)
    max_group_percent: float = Field(50, gt=0, le=100)
    max_runs_per_window: int = Field(20, ge=1)
    window_s: float = Field(3600, gt=0)


class Inventory(_Model):
    hosts: dict[str, Host] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    roles: dict[str, Role] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)
    routing: list[RoutingRule] = Field(default_factory=list)
    gate_policies: dict[str, GatePolicy] = Field(default_factory=dict)
    rails: dict[str, RailsPolicy] = Field(default_factory=dict)
    links: dict[str, Link] = Field(default_factory=dict)
    host_failover: dict[str, HostFailover] = Field(default_factory=dict)
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    runbooks: dict[str, Runbook] = Field(default_factory=dict)
    correlation: dict[str, CorrelationRule] = Field(default_factory=dict)
    """Which open incidents absorb which alerts (``inventory/correlation.py``); empty:
    the defaults."""
    severity: dict[str, SeverityLevel] = Field(default_factory=dict)
    """Severity levels (``inventory/severity.py``); empty: the four default levels."""
    rosters: dict[str, Roster] = Field(default_factory=dict)
    """Duty rosters by role (``inventory/duty.py``)."""
    security: dict[str, SecurityPolicy] = Field(default_factory=dict)
    changelog: dict[str, Revision] = Field(default_factory=dict)
    wording: dict[str, Wording] = Field(default_factory=dict)
    host_groups: dict[str, HostGroup] = Field(default_factory=dict)
    """Host groups and the ``all`` defaults (``inventory/groups.py``)."""
    instances: dict[str, list[str]] = Field(default_factory=dict)
    """A service on many hosts → its instances (services of their own, set by the loader)."""
    """The organisation's own words in the plan document (``inventory/wording.py``)."""
    """The plan's own revisions, keyed by version (``inventory/revisions.py``)."""
    """The security-incident plan, by host or ``default`` (``inventory/security.py``)."""

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise UnknownName(f"unknown host {name!r}") from None

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise UnknownName(f"unknown service {name!r}") from None

    def rails_policy(self, plan: str) -> RailsPolicy:
        return self.rails.get(plan) or self.rails.get("default") or RailsPolicy()

    def security_policy(self, host: str) -> SecurityPolicy:
        return self.security.get(host) or self.security.get("default") or SecurityPolicy()

    def gate_policy(self, plan: str) -> GatePolicy:
        return self.gate_policies.get(plan) or self.gate_policies.get("default") or GatePolicy()

    def members(self, role: RoleName) -> list[Person]:
        return [p for p in self.people.values() if role in p.roles]
