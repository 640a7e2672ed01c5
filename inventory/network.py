"""Inventory of network links and host failover (sections ``links`` and ``host_failover``).

A link is one uplink of a router: the interface and gateway it uses, its role, the
targets that prove traffic passes, and the driver that moves the default route onto
it. A host's failover entry names its standby, how to fence it, and the service
addresses that move with it. Secrets are named (``auth_secret``), never included::

    links:
      uplink-b:
        router: edge-1
        interface: eth2
        gateway: 198.51.100.6
        role: backup
        probe_targets: [203.0.113.1]
        driver: {kind: http-controller, url: "https://ctl/api/uplinks/{link}",
                 method: POST, body: {active: "{interface}"}, auth_secret: ctl-token}
    host_failover:
      db-1:
        standby: db-2
        fence: {kind: command, host: pdu-1, command: "pductl off 7"}
        addresses: [{kind: vip, address: 192.0.2.20, prefix: 28, interface: eth0}]
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
"""Same pattern as ``inventory.models.NAME_RE`` (kept here to avoid an import cycle)."""
IfName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,15}$")]


def _ip(v: str) -> str:
    return str(ipaddress.ip_address(v))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinuxRouteDriver(_Model):
    """``ip route replace default via GW dev IF`` on the router over SSH."""

    kind: Literal["linux-route"] = "linux-route"
    sudo: bool = False


class HttpControllerDriver(_Model):
    """A REST call to a network controller. ``url`` and string values of ``body`` may
    use ``{link}``, ``{interface}``, ``{gateway}``, ``{router}`` — inventory values only."""

    kind: Literal["http-controller"] = "http-controller"
    url: str = Field(pattern=r"^https?://")
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: dict[str, str | int | bool] = Field(default_factory=dict)
    auth_secret: Name | None = None
    """Secret NAME of a bearer token."""
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    timeout_s: float = Field(10.0, gt=0, le=60)


LinkDriver = Annotated[LinuxRouteDriver | HttpControllerDriver, Field(discriminator="kind")]


class LinkPolicy(_Model):
    """How sure we must be before failing over, and when to fail back."""

    confirm_probes: int = Field(3, ge=2, le=20)
    """Consecutive failed probe rounds before the primary counts as down."""
    probe_interval_s: float = Field(2.0, ge=0, le=60)
    ping_count: int = Field(2, ge=1, le=10)
    ping_timeout_s: int = Field(1, ge=1, le=10)
    requires_approval: bool = True
    failback_after_s: float = Field(300.0, ge=0, le=86400)
    """The primary must pass traffic for this long before failing back."""
    failback_max_wait_s: float = Field(600.0, gt=0, le=86400)


class Link(_Model):
    name: Name
    router: Name
    """Inventory host that routes over this link (probes and linux-route run there)."""
    interface: IfName
    gateway: str
    role: Literal["primary", "backup"]
    probe_targets: list[str] = Field(min_length=1, max_length=8)
    driver: LinkDriver = LinuxRouteDriver()
    policy: LinkPolicy = LinkPolicy()
    behind_hosts: list[str] = Field(default_factory=list)
    """Inventory hosts reached only over this link: while this link's incident is open,
    their alerts (and their services') join it (``inventory/correlation.py``)."""
    behind_sites: list[str] = Field(default_factory=list)
    """Sites (the hosts' ``site`` label) reached only over this link."""

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, v: str) -> str:
        return _ip(v)

    @field_validator("probe_targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return [_ip(t) for t in v]


class CommandFence(_Model):
    """A command from the inventory on a controller host (PDU, switch, BMC gateway)."""

    kind: Literal["command"] = "command"
    host: Name
    command: str = Field(min_length=1)


Fence = Annotated[CommandFence, Field(discriminator="kind")]


class VipAddress(_Model):
    """A service address moved with ``ip addr del/add`` over SSH."""

    kind: Literal["vip"] = "vip"
    address: str
    prefix: int = Field(32, ge=1, le=32)
    interface: IfName
    announce: bool = True
    """Send gratuitous ARP (``arping -U``) from the new holder."""
    sudo: bool = False

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return _ip(v)


class DnsAddress(_Model):
    """A DNS record moved through a provider's HTTP API (cloud DNS: mocked in tests)."""

    kind: Literal["dns"] = "dns"
    api_url: str = Field(pattern=r"^https?://")
    zone: str = Field(pattern=r"^[A-Za-z0-9.-]+$")
    record: str = Field(pattern=r"^[A-Za-z0-9*._-]+$")
    ttl: int = Field(60, ge=1)
    auth_secret: Name | None = None


ServiceAddress = Annotated[VipAddress | DnsAddress, Field(discriminator="kind")]


class ConfirmPolicy(_Model):
    """A host counts as down only if every probe round over the window fails."""

    probes: int = Field(3, ge=2, le=20)
    interval_s: float = Field(5.0, ge=0, le=300)
    ports: list[int] = Field(default_factory=list)
    """Service ports probed besides the host's SSH port."""
    timeout_s: float = Field(2.0, gt=0, le=30)


class HostFailover(_Model):
    name: Name
    """The protected host (the key of the section)."""
    standby: Name
    fence: Fence | None = None
    addresses: list[ServiceAddress] = Field(default_factory=list)
    confirm: ConfirmPolicy = ConfirmPolicy()
    requires_approval: bool = True
