"""The hardware-failure lab: a LAN with a switch, two hosts and a movable VIP (root only).

Namespaces: ``sw`` (bridge ``br0``; its sshd is the fencing controller that can shut a
host's switch port), ``hwa`` and ``hwb`` (lab hosts with sshd and ``labctl``). The
worker reaches the LAN through the management veth only (a free /28 of 192.0.2.0/24).
The service ``portal`` runs on hw-a and answers at the VIP; hw-b is its standby::

    with HardwareLab.create(tmp, pubkey) as hw:
        hw.kill_host()          # sshd and the service on hw-a stop: the host "dies"
        hw.revive_host()        # both come back
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Any

from contingency.lab.netlab import _Lab, labctl_in, prepare_host_dir
from contingency.lab.netns import Topology, sh
from contingency.lab.sshd import SSHD

SERVICE, PORT = "portal", 8080
ANY = "0.0.0.0"  # noqa: S104 - inside the host's namespace, so it answers at the VIP
FENCE = "ip link set dev pa down"
HOSTS = {"hw-a": ("hwa", "pa"), "hw-b": ("hwb", "pb")}
"""Inventory host name → (namespace role, switch port)."""


class HardwareLab(_Lab):
    """See the module docstring; ``vip`` is the service address."""

    def __init__(self, topo: Topology, base: Path) -> None:
        self.topo, self.servers, self.base = topo, [], base
        self.addresses: dict[str, str] = {}
        self.vip = ""
        self.prefix = 28

    @classmethod
    def create(cls, base: Path, pub: str) -> HardwareLab:
        lab = cls(Topology(), base)
        try:
            lab._build(pub)
        except BaseException:
            lab.destroy()
            raise
        return lab

    def host_dir(self, host: str) -> Path:
        return self.base / HOSTS[host][0] / "host"

    def _build(self, pub: str) -> None:
        t = self.topo
        for role in ("sw", "hwa", "hwb"):
            t.add_ns(role)
        t.run("sw", "ip", "link", "add", "br0", "type", "bridge")
        t.run("sw", "ip", "link", "set", "br0", "up")
        lan = t.mgmt_link("sw", "mgmt", bridge="br0")
        self.addresses = {"lab-switch": lan[1], "hw-a": lan[2], "hw-b": lan[3]}
        self.vip = lan[4]
        self._sshd(self.base, "sw", lan[1], pub, {})
        for host, (role, port) in HOSTS.items():
            t.veth("sw", port, role, "eth0")
            t.run("sw", "ip", "link", "set", port, "master", "br0", "up")
            t.addr(role, "eth0", f"{self.addresses[host]}/{self.prefix}")
            env = prepare_host_dir(self.host_dir(host), {SERVICE: {"address": ANY, "port": PORT}})
            self._sshd(self.base, role, self.addresses[host], pub, env)
        self._labctl("hw-a", "start")
        t.run("hwa", "ip", "addr", "add", f"{self.vip}/{self.prefix}", "dev", "eth0")

    def _labctl(self, host: str, action: str) -> None:
        res = labctl_in(self.topo.ns(HOSTS[host][0]), self.host_dir(host), action, SERVICE)
        if res.returncode != 0:
            raise RuntimeError(f"labctl {action} {SERVICE} on {host}: {res.stdout}{res.stderr}")

    @property
    def url(self) -> str:
        return f"http://{self.vip}:{PORT}/health"

    def kill_host(self, host: str = "hw-a") -> None:
        """The host "dies": its sshd and its service stop (its switch port stays up)."""
        ns = self.topo.ns(HOSTS[host][0])
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd:"):
                    os.kill(int(pid), signal.SIGTERM)
        self._labctl(host, "stop")

    def revive_host(self, host: str = "hw-a") -> None:
        """Start the host's sshd (from its config in the lab directory) and service."""
        role = HOSTS[host][0]
        config = self.base / role / "sshd" / "sshd_config"
        self.topo.run(role, str(SSHD), "-f", str(config))  # daemonizes
        self._labctl(host, "start")

    def reset(self) -> None:
        """Back to the start: hw-a up with the VIP and the service, hw-b idle."""
        self.topo.run("sw", "ip", "link", "set", "pa", "up")
        self._labctl("hw-b", "stop")
        cidr = f"{self.vip}/{self.prefix}"
        self.topo.run("hwb", "ip", "addr", "del", cidr, "dev", "eth0", check=False)
        if not self._answers(self.addresses["hw-a"], 22):
            self.revive_host("hw-a")
        self._labctl("hw-a", "start")
        self.topo.run("hwa", "ip", "addr", "replace", cidr, "dev", "eth0")
        self.topo.run("hwa", "arping", "-q", "-U", "-c", "2", "-I", "eth0", self.vip, check=False)

    @staticmethod
    def _answers(address: str, port: int) -> bool:
        try:
            socket.create_connection((address, port), timeout=1).close()
        except OSError:
            return False
        return True

    def vip_holders(self) -> list[str]:
        """Inventory names of the hosts that have the VIP configured right now."""
        return [
            host
            for host, (role, _port) in HOSTS.items()
            if f"inet {self.vip}/" in self.topo.run(role, "ip", "-o", "-4", "addr", "show")
        ]

    def port_up(self, host: str) -> bool:
        out = self.topo.run("sw", "ip", "-o", "link", "show", HOSTS[host][1])
        return "state DOWN" not in out and ",UP" in out

    @property
    def management(self) -> str:
        """The root side of the management link: where the worker's SSH comes from."""
        if self.topo.mgmt is None:
            raise RuntimeError("the lab has no management link yet")
        return str(next(self.topo.mgmt.hosts()))

    def security(self, evidence_location: dict[str, Any]) -> dict[str, Any]:
        """The ``security`` section for hw-a and hw-b: isolation keeps the management
        address; evidence goes to ``evidence_location`` (the lab's S3)."""
        policy = {"allow_from": [f"{self.management}/32"], "evidence_location": evidence_location}
        return {host: policy for host in HOSTS}

    def inventory(self, key_secret: str, user: str) -> dict[str, Any]:
        """``hosts``, ``services`` and ``host_failover`` sections for this lab."""
        hosts = {
            name: {**self._host(server, key_secret, user), "address": self.addresses[name]}
            for name, server in zip(["lab-switch", *HOSTS], self.servers, strict=True)
        }
        service = {
            "host": "hw-a",
            "description": "Intranet portal behind a VIP (hardware-failure lab)",
            "health": {"kind": "http", "url": self.url},
            "manager": {
                "kind": "commands",
                "restart": [f"labctl restart {SERVICE}"],
                "status": f"labctl status {SERVICE}",
            },
            "verify": {"deadline_s": 15, "first_delay_s": 0.2, "backoff": 1.5, "max_interval_s": 1},
        }
        failover = {
            "standby": "hw-b",
            "fence": {"kind": "command", "host": "lab-switch", "command": FENCE},
            "addresses": [
                {
                    "kind": "vip",
                    "address": self.vip,
                    "prefix": self.prefix,
                    "interface": "eth0",
                    "announce": True,
                }
            ],
            "confirm": {"probes": 3, "interval_s": 0.5, "ports": [PORT]},
            "requires_approval": True,
        }
        return {
            "hosts": hosts,
            "services": {SERVICE: service},
            "host_failover": {"hw-a": failover},
        }
