"""Lab network topologies in Linux network namespaces (root only).

``NetworkLab`` builds a router with two uplinks (veth) to two ISP namespaces that both
reach an "internet" namespace holding the probe targets; ``HardwareLab`` builds a LAN
(a bridge in a "switch" namespace) with two hosts that can take over a service address.
Each topology's ONLY link to the root namespace is one management veth on a free /28
of 192.0.2.0/24; nothing is linked to the machine's real interfaces and nothing is
forwarded to them. All addresses come from the documentation ranges. Names are a prefix
plus a random suffix, and `destroy` deletes everything even after a failure::

    with NetworkLab.create() as net:
        net.run("router", "ip", "route", "show", "default")
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

MGMT_RANGE = ipaddress.IPv4Network("192.0.2.0/24")
PREFIX = "cg"


def can_build() -> tuple[bool, str]:
    """Whether namespaces can be built here, and if not, why."""
    if os.geteuid() != 0:
        return False, "network namespaces need root (run `contingency up --lab` as root)"
    if shutil.which("ip") is None:
        return False, "iproute2 (`ip`) is not installed"
    return True, ""


def sh(*argv: str, check: bool = True, netns: str | None = None) -> str:
    """Run a command (in ``netns`` when given); return its stdout."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    proc = subprocess.run(full, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


SUBNET_LOCK = Path("/run/lock/contingency-subnets.lock")


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    """Held from choosing a free subnet until its address is on a root interface, so
    that labs (and test fixtures) starting at the same moment choose different ones."""
    import fcntl

    SUBNET_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(SUBNET_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def free_mgmt_subnet() -> ipaddress.IPv4Network:
    """A /28 of 192.0.2.0/24 that no root-namespace interface uses yet."""
    used = sh("ip", "-o", "-4", "addr", "show")
    blocks = list(MGMT_RANGE.subnets(new_prefix=28))
    for i in secrets.SystemRandom().sample(range(len(blocks)), len(blocks)):
        net = blocks[i]
        if not any(f"inet {h}/" in used for h in net.hosts()):
            return net
    raise RuntimeError("no free /28 left in 192.0.2.0/24 for a lab management link")


@dataclass
class Topology:
    """Namespaces and root-side links made by one lab; ``destroy`` removes them."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: dict[str, str] = field(default_factory=dict)
    root_links: list[str] = field(default_factory=list)
    mgmt: ipaddress.IPv4Network | None = None

    def ns(self, role: str) -> str:
        return self.namespaces[role]

    def add_ns(self, role: str) -> str:
        name = f"{PREFIX}-{role}-{self.suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces[role] = name
        self.run(role, "ip", "link", "set", "lo", "up")
        return name

    def run(self, role: str, *argv: str, check: bool = True) -> str:
        return sh(*argv, check=check, netns=self.ns(role))

    def veth(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """A veth pair from namespace role ``a`` (or ``"root"``) to role ``b``."""
        tmp_a, tmp_b = f"{PREFIX}{secrets.token_hex(4)}", f"{PREFIX}{secrets.token_hex(4)}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        try:
            for tmp, role, name in ((tmp_a, a, a_if), (tmp_b, b, b_if)):
                if role == "root":
                    sh("ip", "link", "set", tmp, "name", name)
                    self.root_links.append(name)
                else:
                    sh("ip", "link", "set", tmp, "netns", self.ns(role))
                    self.run(role, "ip", "link", "set", tmp, "name", name)
        except RuntimeError:
            sh("ip", "link", "del", tmp_a, check=False)  # either end takes the pair along
            raise

    def addr(self, role: str, ifname: str, cidr: str) -> None:
        run = sh if role == "root" else (lambda *a: self.run(role, *a))
        run("ip", "addr", "add", cidr, "dev", ifname)
        run("ip", "link", "set", ifname, "up")

    def mgmt_link(self, role: str, ifname: str, bridge: str | None = None) -> list[str]:
        """The one root link: a veth on a free /28. Returns the /28's host addresses:
        [0] is the root side, [1] the namespace side (on ``bridge`` if given)."""
        with subnet_lock():  # two labs starting at once must not pick the same /28
            self.mgmt = free_mgmt_subnet()
            hosts = [str(h) for h in self.mgmt.hosts()]
            root_if = f"{PREFIX}m{self.suffix}"
            self.veth("root", root_if, role, ifname)
            self.addr("root", root_if, f"{hosts[0]}/{self.mgmt.prefixlen}")
        if bridge:
            self.run(role, "ip", "link", "set", ifname, "master", bridge, "up")
        self.addr(role, bridge or ifname, f"{hosts[1]}/{self.mgmt.prefixlen}")
        return hosts

    def destroy(self) -> list[str]:
        """Delete every namespace and root link of this lab (never raises)."""
        gone = []
        for link in self.root_links:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                sh("ip", "link", "del", link, check=False)
                gone.append(link)
        for name in self.namespaces.values():
            _kill_ns_processes(name)
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                sh("ip", "netns", "del", name, check=False)
                gone.append(name)
        self.root_links.clear()
        self.namespaces.clear()
        return gone

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


def _kill_ns_processes(name: str) -> None:
    """SIGKILL what still runs inside the namespace (only the lab's own processes)."""
    with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(pid), 9)


def leftover_namespaces() -> list[str]:
    """Lab namespaces that exist right now (for `down` and for test clean-up checks)."""
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{PREFIX}-")]
