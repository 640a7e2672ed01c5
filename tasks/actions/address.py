"""Service-address drivers (actions): make an address point at a new host.

``vip``: ``ip addr replace ADDR/PREFIX dev IF`` on the new holder over SSH, then a
gratuitous ARP (``arping -U``) so neighbours forget the old holder; ``release`` runs
``ip addr del`` on a host that still answers. ``dns``: a PUT of the A record to the
provider's API (a cloud DNS API cannot run here: its test is a mock and says so)::

    for command in vip_commands(addr):
        run_action(inv.host("db-2"), command, timeout=20)
"""

from __future__ import annotations

import shlex
import time

import requests

from inventory.errors import NetworkError
from inventory.models import Host
from inventory.network import DnsAddress, VipAddress
from inventory.secrets import SecretNotFound, redact, resolve_secret
from tasks.actions.failover import DriverResult


def _sudo(addr: VipAddress) -> str:
    return "sudo -n " if addr.sudo else ""


def vip_commands(addr: VipAddress) -> list[str]:
    """The commands that put ``addr`` on its new holder (pure)."""
    cidr, dev = shlex.quote(f"{addr.address}/{addr.prefix}"), shlex.quote(addr.interface)
    cmds = [f"{_sudo(addr)}ip addr replace {cidr} dev {dev}"]
    if addr.announce:
        cmds.append(f"{_sudo(addr)}arping -q -U -c 2 -I {dev} {shlex.quote(addr.address)}")
    return cmds


def vip_release_command(addr: VipAddress) -> str:
    """The command that takes ``addr`` off a host that still answers (pure)."""
    cidr, dev = shlex.quote(f"{addr.address}/{addr.prefix}"), shlex.quote(addr.interface)
    return f"{_sudo(addr)}ip addr del {cidr} dev {dev}"


def dns_request(addr: DnsAddress, to: Host) -> tuple[str, dict[str, object]]:
    url = f"{addr.api_url.rstrip('/')}/zones/{addr.zone}/records/{addr.record}"
    return url, {"type": "A", "content": to.address, "ttl": addr.ttl}


def dns_describe(addr: DnsAddress, to: Host) -> str:
    url, body = dns_request(addr, to)
    return f"PUT {url} A {body['content']} ttl {addr.ttl}"


def apply_dns(addr: DnsAddress, to: Host) -> DriverResult:
    """PUT the record; errors name the record, never the token."""
    url, body = dns_request(addr, to)
    headers = {}
    if addr.auth_secret:
        try:
            token = resolve_secret(addr.auth_secret).get_secret_value()
        except (SecretNotFound, ValueError) as exc:
            raise NetworkError(f"dns {addr.record}.{addr.zone}: token: {exc}") from None
        headers["Authorization"] = f"Bearer {token}"
    t0 = time.monotonic()
    try:
        resp = requests.put(url, json=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        msg = f"dns {addr.record}.{addr.zone}: PUT {url} failed: {type(exc).__name__}"
        raise NetworkError(msg) from None
    return DriverResult(
        link=f"{addr.record}.{addr.zone}", host="dns", driver="dns", action=f"PUT {url}",
        ok=200 <= resp.status_code < 300,
        detail=f"HTTP {resp.status_code} {redact(resp.text[:200])!r}",
        duration_s=round(time.monotonic() - t0, 3),
    )  # fmt: skip
