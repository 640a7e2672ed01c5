"""The lab's two namespace topologies, with real sshd servers inside them (root only).

``NetworkLab``: router ``mgmt``──root; router ``up1``──isp1──inet, ``up2``──isp2──inet;
probe targets 203.0.113.1 and .2 live in inet. The router keeps one routing table per
uplink (``ip rule oif``) so a probe bound to an interface tests that uplink.

``HardwareLab``: a switch namespace (bridge ``br0``, also the fencing controller) with
ports to root (management), ``hw-a`` and ``hw-b``; the service ``portal`` runs on hw-a
and answers at a VIP that can move to hw-b. Example::

    with NetworkLab.create(tmp, pubkey) as net:
        inv = net.inventory("lab-ssh-key", "root")
        net.cut("uplink-a")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from contingency.lab.netns import Topology, sh
from contingency.lab.sshd import SshdServer

LABCTL = Path(__file__).resolve().parent / "labctl.py"
TARGETS = ["203.0.113.1", "203.0.113.2"]
# (link name, router interface, router address, isp role, gateway, isp↔inet /30, table)
UPLINKS = [
    ("uplink-a", "up1", "198.51.100.1/30", "isp1", "198.51.100.2", "198.51.100.8/30", "101"),
    ("uplink-b", "up2", "198.51.100.5/30", "isp2", "198.51.100.6", "198.51.100.12/30", "102"),
]
CutMode = Literal["blackhole", "down"]


class _Lab:
    topo: Topology
    servers: list[SshdServer]

    def destroy(self) -> list[str]:
        for server in self.servers:
            server.stop()
        return self.topo.destroy()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    def _sshd(self, base: Path, role: str, address: str, pub: str, env: dict[str, str]) -> None:
        server = SshdServer(
            base / role / "sshd", address=address, authorized_keys=[pub], env=env,
            netns=self.topo.ns(role),
        )  # fmt: skip
        self.servers.append(server)
        server.start()

    def _host(self, server: SshdServer, key_secret: str, user: str) -> dict[str, Any]:
        return {
            "address": server.address,
            "port": server.port,
            "user": user,
            "key_secret": key_secret,
            "host_key": server.host_key_line,
            "labels": {"site": "lab", "netns": server.netns or ""},
        }


class NetworkLab(_Lab):
    """Router + two ISPs + internet; see the module docstring."""

    def __init__(self, topo: Topology) -> None:
        self.topo, self.servers = topo, []

    @classmethod
    def create(cls, base: Path, pub: str) -> NetworkLab:
        lab = cls(Topology())
        try:
            lab._build(base, pub)
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _build(self, base: Path, pub: str) -> None:
        t = self.topo
        for role in ("router", "isp1", "isp2", "inet"):
            t.add_ns(role)
        self.router_address = t.mgmt_link("router", "mgmt")[1]
        for target in TARGETS:
            t.run("inet", "ip", "addr", "add", f"{target}/32", "dev", "lo")
        for _name, ifname, cidr, isp, gw, core, table in UPLINKS:
            t.veth("router", ifname, isp, "down0")
            t.addr("router", ifname, cidr)
            t.addr(isp, "down0", f"{gw}/30")
            core_isp, core_inet = (str(h) for h in _hosts(core))
            t.veth(isp, "core0", "inet", isp)
            t.addr(isp, "core0", f"{core_isp}/30")
            t.addr("inet", isp, f"{core_inet}/30")
            t.run(isp, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            t.run(isp, "ip", "route", "add", "default", "via", core_inet)
            t.run("inet", "ip", "route", "add", _net(cidr), "via", core_isp)
            t.run("router", "ip", "rule", "add", "oif", ifname, "table", table)
            route = ["ip", "route", "add", "default", "via", gw, "dev", ifname]
            t.run("router", *route, "table", table)
        t.run("router", "ip", "route", "add", "default", "via", UPLINKS[0][4], "dev", "up1")
        self._sshd(base, "router", self.router_address, pub, {})

    def default_route(self) -> str:
        return self.topo.run("router", "ip", "-o", "route", "show", "default").strip()

    def reachable(self, target: str = TARGETS[0]) -> bool:
        """Ping from the router along its default route (for test assertions)."""
        cmd = ["ping", "-n", "-q", "-c", "1", "-W", "1", target]
        return sh(*cmd, check=False, netns=self.topo.ns("router")).find(" 0% packet loss") >= 0

    def cut(self, link: str, mode: CutMode = "blackhole") -> None:
        """Make ``link`` stop passing traffic: a blackhole in its ISP, or its ISP port down."""
        isp = _uplink(link)[3]
        if mode == "down":
            self.topo.run(isp, "ip", "link", "set", "down0", "down")
        else:
            self.topo.run(isp, "ip", "route", "replace", "blackhole", "203.0.113.0/24")

    def restore(self, link: str) -> None:
        isp = _uplink(link)[3]
        self.topo.run(isp, "ip", "link", "set", "down0", "up")
        self.topo.run(isp, "ip", "route", "del", "blackhole", "203.0.113.0/24", check=False)

    def inventory(self, key_secret: str, user: str) -> dict[str, Any]:
        """``hosts`` and ``links`` sections for this lab (names from this run)."""
        policy = {"confirm_probes": 3, "probe_interval_s": 0.5, "failback_after_s": 2}
        links = {
            name: {
                "router": "lab-router",
                "interface": ifname,
                "gateway": gw,
                "role": "primary" if name == "uplink-a" else "backup",
                "probe_targets": TARGETS,
                "driver": {"kind": "linux-route"},
                "policy": {**policy, "requires_approval": True},
            }
            for name, ifname, _cidr, _isp, gw, _core, _table in UPLINKS
        }
        host = self._host(self.servers[0], key_secret, user)
        return {"hosts": {"lab-router": host}, "links": links}


def _uplink(link: str) -> tuple[str, ...]:
    return next(u for u in UPLINKS if u[0] == link)


def _hosts(cidr: str) -> list[Any]:
    import ipaddress

    return list(ipaddress.ip_network(cidr, strict=False).hosts())


def _net(cidr: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(cidr, strict=False))


def labctl_env(host_dir: Path) -> dict[str, str]:
    # a root login's PATH, as on a real host (nft, for one, is in /usr/sbin)
    path = f"{host_dir / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return {"LAB_HOST_DIR": str(host_dir), "PATH": path}


def prepare_host_dir(host_dir: Path, services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A lab host's directory: a ``labctl`` wrapper and its ``services.json``."""
    (host_dir / "bin").mkdir(parents=True, exist_ok=True)
    wrapper = host_dir / "bin" / "labctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {LABCTL} "$@"\n')
    wrapper.chmod(0o755)
    (host_dir / "services.json").write_text(json.dumps(services, indent=2))
    return labctl_env(host_dir)


def labctl_in(netns: str, host_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run labctl for a lab host inside its namespace (to seed services, inject faults)."""
    env = {**os.environ, **labctl_env(host_dir)}
    argv = ["ip", "netns", "exec", netns, sys.executable, str(LABCTL), *args]
    return subprocess.run(argv, env=env, text=True, capture_output=True, timeout=30, check=False)
