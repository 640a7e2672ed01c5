"""Fan-out: a rolling restart on N real sshd hosts against the same restart on one host,
measured in the same run (``remediations/fan_out.roll``, the code a rolling runbook
step runs).

Each host is its own OpenSSH server on its own loopback address (127.0.1.x) with its
own host key, pinned. The service runs on a host group of them; its restart command
takes ``--restart-s`` (a service that takes a moment to come back) and its health is
an HTTP check of the instance's own address (a small server per address, as a web
fleet's health endpoint), with the lab's verify policy. Connections are opened inside
the measured time, as in an incident.

On this one machine every host's sshd shares the controller's CPUs, so each command's
session (sshd, bash, ``timeout``, ``sh``) is paid here; ``--health ssh`` checks health
with a command over SSH instead (two sessions per instance) to show that cost.

Target: N=50 hosts ≤ 3× the wall time of one host. Peak RSS of this process is
reported (the SSH connections and threads of the rollout).

    .venv/bin/python -m benchmarks.fan_out                   # 50 hosts, batches of 25
    .venv/bin/python -m benchmarks.fan_out --hosts 20 --batch 10
    .venv/bin/python -m benchmarks.fan_out --health ssh        # health by command
"""

from __future__ import annotations

import argparse
import getpass
import os
import resource
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from contingency.lab.sshd import SshdServer, generate_client_key
from contingency.runtime.processes import free_port
from inventory.loader import load_inventory
from inventory.models import Inventory
from remediations.fan_out import Rollout, roll
from remediations.plan import RollingAction
from tasks.ssh.run import close_all

KEY = "bench-fan-key"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


def _health_servers(addresses: list[str]) -> tuple[int, list[ThreadingHTTPServer]]:
    """One health endpoint per address, all on one free port."""
    while True:
        port, servers = free_port(), []
        try:
            for address in addresses:
                servers.append(ThreadingHTTPServer((address, port), _Health))
        except OSError:
            for srv in servers:
                srv.server_close()
            continue
        for srv in servers:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        return port, servers


def _inventory(
    work: Path, servers: list[SshdServer], restart_s: float, health: dict[str, object]
) -> Inventory:
    names = [f"node{i:02d}" for i in range(1, len(servers) + 1)]
    user = getpass.getuser()
    hosts = {
        name: {"address": s.address, "port": s.port, "user": user, "key_secret": KEY,
               "host_key": s.host_key_line}
        for name, s in zip(names, servers, strict=True)
    }  # fmt: skip
    doc = {
        "host_groups": {"fleet": {"hosts": names}},
        "hosts": hosts,
        "services": {
            "svc": {
                "group": "fleet",
                "health": health,
                "manager": {"kind": "commands", "restart": [f"sleep {restart_s:g}"],
                            "status": "true"},
                "verify": {"deadline_s": 20, "first_delay_s": 0.2, "backoff": 1.5,
                           "max_interval_s": 2},
            }
        },
    }  # fmt: skip
    inv_dir = work / "inventory"
    inv_dir.mkdir()
    (inv_dir / "fleet.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_inventory(inv_dir)


def _action(inv: Inventory, hosts: int, batch: int) -> RollingAction:
    names = inv.instances["svc"][:hosts]
    return RollingAction(
        service="svc", instances=[(n, inv.service(n).host) for n in names],
        commands=inv.service(names[0]).manager.restart_commands(), batch_size=batch,
        max_unavailable=batch, stop_failure_pct=0, timeout_s=60,
    )  # fmt: skip


def _timed(inv: Inventory, action: RollingAction) -> tuple[float, Rollout]:
    close_all()  # every rollout opens its own connections, as an incident does
    t0 = time.perf_counter()
    out = roll(action, inv)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--batch", type=int, default=25, help="batch size = max unavailable")
    ap.add_argument("--restart-s", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--health", choices=("http", "ssh"), default="http")
    args = ap.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-fan-"))
    os.environ["CONTINGENCY_STATE_DIR"] = str(work / "state")
    secrets = work / "state" / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    pub = generate_client_key(secrets / KEY)
    port = free_port()
    servers: list[SshdServer] = []
    web: list[ThreadingHTTPServer] = []
    try:
        with console.status(f"starting {args.hosts} sshd hosts"):
            for i in range(1, args.hosts + 1):
                server = SshdServer(work / f"sshd{i}", address=f"127.0.1.{i}", port=port,
                                    authorized_keys=[pub])  # fmt: skip
                servers.append(server.start())
        if args.health == "http":
            port, web = _health_servers([s.address for s in servers])
            health: dict[str, object] = {"kind": "http", "url": f"http://{{address}}:{port}/"}
        else:
            health = {"kind": "command", "command": "true"}
        inv = _inventory(work, servers, args.restart_s, health)
        one, many = [], []
        for _ in range(args.rounds):
            t1, out1 = _timed(inv, _action(inv, 1, 1))
            tn, outn = _timed(inv, _action(inv, args.hosts, args.batch))
            if not (out1.ok and outn.ok):
                raise SystemExit(f"a rollout failed: {out1.summary()} / {outn.summary()}")
            one.append(t1)
            many.append(tn)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        best1, bestn = min(one), min(many)
        title = f"rolling restart, restart takes {args.restart_s:g}s, health over {args.health}"
        table = Table(title=title)
        for col in ("hosts", "batch", "wall s (each round)", "best s"):
            table.add_column(col)
        table.add_row("1", "1", ", ".join(f"{t:.2f}" for t in one), f"{best1:.2f}")
        table.add_row(str(args.hosts), str(args.batch), ", ".join(f"{t:.2f}" for t in many),
                      f"{bestn:.2f}")  # fmt: skip
        console.print(table)
        ratio = bestn / best1
        verdict = "OK" if ratio <= 3 else "MISSED"
        console.print(f"{args.hosts} hosts ÷ 1 host: {ratio:.2f}× (target ≤ 3×) {verdict}")
        console.print(f"peak RSS of the rollout process: {rss:.0f} MiB")
    finally:
        close_all()
        for srv in web:
            srv.shutdown()
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
