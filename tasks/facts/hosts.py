"""Host probes from the worker (facts): is a host down, judged over a window?

A round tries the host's SSH port and its service ports with plain TCP connects. A
host counts as down only when every round over the window finds every port closed;
one answering port in any round means "not down" (a flap never fences a host)::

    seen = confirm_host_down(inv.host("db-1"), policy)
    if seen.down: ...
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from inventory.models import Host
from inventory.network import ConfirmPolicy


class HostProbe(BaseModel):
    host: str
    ports: dict[int, bool]
    """Port → accepted a connection."""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def up(self) -> bool:
        return any(self.ports.values())

    @property
    def ok(self) -> bool:
        return self.up


class HostConfirmation(BaseModel):
    host: str
    down: bool
    rounds: list[HostProbe]
    window_s: float

    @property
    def summary(self) -> str:
        seen = ", ".join("up" if r.up else "down" for r in self.rounds)
        verdict = "down" if self.down else "not down"
        return f"{self.host}: {verdict} over {self.window_s:.1f}s ({seen})"


def _open(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe_host(host: Host, ports: list[int], timeout: float = 2.0) -> HostProbe:
    """One round: the SSH port and ``ports`` on the host's address."""
    wanted = list(dict.fromkeys([host.port, *ports]))
    return HostProbe(host=host.name, ports={p: _open(host.address, p, timeout) for p in wanted})


def confirm_host_down(
    host: Host,
    policy: ConfirmPolicy,
    on_probe: Callable[[int, HostProbe], None] | None = None,
) -> HostConfirmation:
    """``policy.probes`` rounds spaced by ``interval_s``; stops at the first answer.

    ``on_probe(i, probe)`` is called after each round (for logs and for tests).
    """
    t0 = time.monotonic()
    rounds: list[HostProbe] = []
    for i in range(policy.probes):
        if i:
            time.sleep(policy.interval_s)
        probe = probe_host(host, policy.ports, policy.timeout_s)
        rounds.append(probe)
        if on_probe is not None:
            on_probe(i, probe)
        if probe.up:
            break
    down = len(rounds) == policy.probes and not any(r.up for r in rounds)
    return HostConfirmation(
        host=host.name, down=down, rounds=rounds, window_s=round(time.monotonic() - t0, 2)
    )
