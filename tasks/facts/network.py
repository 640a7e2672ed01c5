"""Network probes (facts) from a router over SSH: does traffic pass through a link?

A probe round pings each of the link's probe targets bound to its interface
(``ping -I IF``); the link passes traffic if any target answers. Every value in a
command comes from the inventory and is quoted. Probes never raise for a dead link:
an unreachable router makes the answer ``unknown``. Example::

    probe = probe_link(inv.links["uplink-a"], inv)
    if probe.state == "down": ...
"""

from __future__ import annotations

import re
import shlex
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from inventory.errors import (
    ContingencyError,
)
from inventory.models import Inventory
from inventory.network import Link

LinkState = Literal["up", "down", "unknown"]
_RESULT = re.compile(r"^probe (\S+) (\d+)$", re.MULTILINE)
_ROUTE = re.compile(r"default via (\S+) dev (\S+)")


class LinkProbe(BaseModel):
    link: str
    interface: str
    state: LinkState
    replies: dict[str, bool] = Field(default_factory=dict)
    detail: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """The link passes traffic."""
        return self.state == "up"


def ping_command(link: Link, bind: bool = True) -> str:
    """One probe round as a shell command (pure): the targets are pinged in parallel.
    ``bind=False`` follows the default route instead of the link's interface.

    >>> link = Link(name="uplink-a", router="edge-1", interface="up1",
    ...             gateway="198.51.100.2", role="primary", probe_targets=["192.0.2.9"])
    >>> print(ping_command(link))
    (ping -n -q -i 0.2 -c 2 -W 1 -I up1 192.0.2.9 >/dev/null 2>&1; echo probe 192.0.2.9 $?) & wait
    """
    p = link.policy
    iface = f" -I {shlex.quote(link.interface)}" if bind else ""
    parts = [
        f"(ping -n -q -i 0.2 -c {p.ping_count} -W {p.ping_timeout_s}{iface} {shlex.quote(t)}"
        f" >/dev/null 2>&1; echo probe {shlex.quote(t)} $?) &"
        for t in link.probe_targets
    ]
    return " ".join([*parts, "wait"])


def _round_timeout(link: Link) -> float:
    p = link.policy
    return p.ping_count * 0.2 + p.ping_timeout_s + 10.0


def _run(link: Link, inv: Inventory, command: str, timeout: float) -> tuple[str, str]:
    """(stdout, "") or ("", why) — connection errors are facts here, not failures."""
    from tasks.ssh.run import get_connection

    try:
        res = get_connection(inv.host(link.router)).run(command, timeout=timeout)
    except (ContingencyError, KeyError) as exc:
        return "", str(exc)
    if res.timed_out:
        return "", f"{link.router}: probe timed out after {res.duration_s:.1f}s"
    if res.outcome == "unknown":  # the connection to the router was lost: no fact
        return "", f"{link.router}: {res.message}"
    return res.stdout_tail, ""


def probe_link(link: Link, inv: Inventory, bind: bool = True) -> LinkProbe:
    """One probe round through ``link`` (or, ``bind=False``, along the default route)."""
    out, err = _run(link, inv, ping_command(link, bind), _round_timeout(link))
    if err:
        return LinkProbe(link=link.name, interface=link.interface, state="unknown", detail=err)
    replies = {t: code == "0" for t, code in _RESULT.findall(out)}
    state: LinkState = "up" if any(replies.values()) else "down"
    ok = sorted(t for t, r in replies.items() if r)
    detail = f"{len(ok)}/{len(replies)} targets answer" + (f" ({', '.join(ok)})" if ok else "")
    return LinkProbe(
        link=link.name, interface=link.interface, state=state, replies=replies, detail=detail
    )


class Confirmation(BaseModel):
    """Several probe rounds; ``state`` is down only if every round was down."""

    link: str
    state: LinkState
    rounds: list[LinkProbe]

    @property
    def summary(self) -> str:
        seen = ", ".join(r.state for r in self.rounds)
        return f"{self.link}: {self.state} after {len(self.rounds)} probe rounds ({seen})"


def confirm_link(link: Link, inv: Inventory, rounds: int | None = None) -> Confirmation:
    """Probe ``rounds`` times (default: the link's ``confirm_probes``), spaced by its
    ``probe_interval_s``; stops early at the first round that passes traffic."""
    n = rounds or link.policy.confirm_probes
    got: list[LinkProbe] = []
    for i in range(n):
        if i:
            time.sleep(link.policy.probe_interval_s)
        got.append(probe_link(link, inv))
        if got[-1].state == "up":
            return Confirmation(link=link.name, state="up", rounds=got)
    state: LinkState = "down" if all(r.state == "down" for r in got) else "unknown"
    return Confirmation(link=link.name, state=state, rounds=got)


def default_route(link: Link, inv: Inventory) -> tuple[str, str] | None:
    """The router's current default route as (gateway, interface), if it has one."""
    out, _err = _run(link, inv, "ip -o route show default", 10.0)
    m = _ROUTE.search(out)
    return (m.group(1), m.group(2)) if m else None


def routes_via(link: Link, inv: Inventory) -> bool:
    return default_route(link, inv) == (link.gateway, link.interface)


def router_links(inv: Inventory, router: str) -> list[Link]:
    return [lk for lk in inv.links.values() if lk.router == router]
