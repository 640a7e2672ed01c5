"""The local lab: real OpenSSH servers on loopback addresses running sample services.

Each lab host is an ``sshd`` bound to its own 127.0.0.x address with its own host key,
and a directory holding its services (run by ``labctl``, the lab's service manager).
The shipped example inventory (``inventory/examples/lab``) is rendered into
``<state_dir>/lab/inventory`` with the generated host keys pinned and the lab's ports.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from contingency.lab.sshd import SshdServer, generate_client_key
from contingency.runtime.processes import alive, port_or_free
from inventory.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "inventory" / "examples" / "lab"
LABCTL = Path(__file__).resolve().parent / "labctl.py"
KEY_SECRET = "lab-ssh-key"  # noqa: S105 - the name of the secret, not a secret
DEFAULT_SERVICE_PORTS = {"web": 8080, "api": 8081, "report": 8082, "edge": 8083}


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLE / name).read_text(encoding="utf-8"))


def _host_dir(settings: Settings, host: str) -> Path:
    return settings.lab_dir / "hosts" / host


def host_env(settings: Settings, host: str) -> dict[str, str]:
    """Environment a lab host's sessions get (set by its sshd with ``SetEnv``)."""
    hd = _host_dir(settings, host)
    return {"LAB_HOST_DIR": str(hd), "PATH": f"{hd / 'bin'}:/usr/local/bin:/usr/bin:/bin"}


def labctl(settings: Settings, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run labctl for a lab host locally (used to seed services and to inject faults)."""
    env = {**os.environ, **host_env(settings, host)}
    return subprocess.run(
        [sys.executable, str(LABCTL), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
        check=False,
    )


def runs_on(svc: dict[str, Any], groups: dict[str, Any]) -> list[str]:
    """The lab hosts a service runs on: its ``host``, its ``hosts``, or its ``group``'s."""
    if "group" in svc:
        return list(groups[svc["group"]]["hosts"])
    return list(svc.get("hosts") or [svc["host"]])


def _render_services(
    services: dict[str, Any], hosts: dict[str, Any], ports: dict[str, int]
) -> dict[str, Any]:
    out = {}
    for name, svc in services.items():
        svc = dict(svc)
        # one instance per host: the loader fills in each instance's own address
        addr = hosts[svc["host"]]["address"] if "host" in svc else "{address}"
        port = ports[name]
        health = dict(svc["health"])
        if health["kind"] == "http":
            health["url"] = f"http://{addr}:{port}/health"
        elif health["kind"] == "tcp":
            health.update(port=port, address=addr)
        svc["health"] = health
        out[name] = svc
    return out


def start_lab(
    settings: Settings, ssh_port: int | None = None, service_ports: dict[str, int] | None = None
) -> Path:
    """Start every lab host and its services; return the rendered inventory directory."""
    hosts_doc = _load("hosts.yaml")
    hosts, groups = hosts_doc["hosts"], hosts_doc.get("host_groups", {})
    services = _load("services.yaml")["services"]
    placed = {name: runs_on(svc, groups) for name, svc in services.items()}
    # The defaults unless taken (a second lab on this machine): then free ports.
    ssh_port = ssh_port or port_or_free(
        int(next(iter(hosts.values()))["port"]), [h["address"] for h in hosts.values()]
    )
    ports = {
        name: port_or_free(port, [hosts[h]["address"] for h in placed[name]])
        for name, port in DEFAULT_SERVICE_PORTS.items()
        if name in services
    }
    ports.update(service_ports or {})
    key_path = settings.secrets_dir / KEY_SECRET
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pub_path = settings.lab_dir / f"{KEY_SECRET}.pub"
    settings.lab_dir.mkdir(parents=True, exist_ok=True)
    if not key_path.exists():
        pub_path.write_text(generate_client_key(key_path))
    pub = pub_path.read_text().strip()
    user = getpass.getuser()
    run_dir = settings.lab_dir / "run"
    for name, host in hosts.items():
        hd = _host_dir(settings, name)
        (hd / "bin").mkdir(parents=True, exist_ok=True)
        wrapper = hd / "bin" / "labctl"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {LABCTL} "$@"\n')
        wrapper.chmod(0o755)
        mine = {
            s: {"address": host["address"], "port": ports[s]} for s in services if name in placed[s]
        }
        (hd / "services.json").write_text(json.dumps(mine, indent=2))
        host["port"] = ssh_port or host["port"]
        host["user"] = user
        sshd = SshdServer(
            hd / "sshd",
            address=host["address"],
            port=host["port"],
            authorized_keys=[pub],
            env=host_env(settings, name),
        )
        sshd.start()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"sshd-{name}.pid").write_text(str(sshd.pid))
        host["host_key"] = sshd.host_key_line
        for svc in mine:
            res = labctl(settings, name, "start", svc)
            if res.returncode != 0:
                raise RuntimeError(
                    f"lab service {svc} on {name} failed to start: {res.stdout}{res.stderr}"
                )
    start_inbox(settings)
    inv_dir = settings.lab_dir / "inventory"
    inv_dir.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by `contingency up --lab` from inventory/examples/lab; edit that.\n"
    rendered = {"host_groups": groups, "hosts": hosts} if groups else {"hosts": hosts}
    (inv_dir / "hosts.yaml").write_text(header + yaml.safe_dump(rendered, sort_keys=False))
    (inv_dir / "services.yaml").write_text(
        header
        + yaml.safe_dump({"services": _render_services(services, hosts, ports)}, sort_keys=False)
    )
    for extra in sorted(EXAMPLE.glob("*.yaml")):  # people, routing, rails, ...
        if extra.name not in ("hosts.yaml", "services.yaml", "datasets.yaml"):
            shutil.copyfile(extra, inv_dir / extra.name)
    _start_datasets(settings, inv_dir, run_dir, header)
    from contingency.lab.netlab_launch import start_netlabs

    for note in start_netlabs(settings, inv_dir, pub, KEY_SECRET):
        print(f"lab: {note}", file=sys.stderr)
    return inv_dir


def _start_datasets(settings: Settings, inv_dir: Path, run_dir: Path, header: str) -> None:
    """The lab's S3 server, its datasets' sample data and one seeded backup of each."""
    from contingency.lab import datasets
    from contingency.lab.s3 import start_s3

    srv = start_s3(settings.lab_dir / "s3")
    (run_dir / "s3.pid").write_text(str(srv.proc.pid))
    datasets.write_secrets(settings)
    datasets.create_sample_data(settings)
    rendered = datasets.render(EXAMPLE / "datasets.yaml", settings, srv.endpoint)
    (inv_dir / "datasets.yaml").write_text(header + yaml.safe_dump(rendered, sort_keys=False))
    for note in datasets.seed_backups(settings, inv_dir):
        print(f"lab: {note}", file=sys.stderr)


def stop_lab(settings: Settings) -> list[str]:
    """Stop the lab's sshd servers and every lab service; return what was stopped."""
    run_dir = settings.lab_dir / "run"
    pidfiles = sorted(run_dir.glob("*.pid")) if run_dir.exists() else []
    services = sorted((settings.lab_dir / "hosts").glob("*/run/*.pid"))
    stopped = [p.stem for p in pidfiles] + [f"{p.parent.parent.name}/{p.stem}" for p in services]
    _stop_pidfiles([*pidfiles, *services])
    from contingency.lab.netlab_launch import stop_netlabs

    stopped += stop_netlabs(settings)
    return stopped


def _stop_pidfiles(pidfiles: list[Path]) -> None:
    from contingency.runtime.processes import stop_pids

    pids = []
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if alive(pid):
            pids.append(pid)
    stop_pids(pids, grace_s=5)
    for pidfile in pidfiles:
        pidfile.unlink(missing_ok=True)


def service_host(settings: Settings, service: str) -> str:
    for cfg in sorted((settings.lab_dir / "hosts").glob("*/services.json")):
        if service in json.loads(cfg.read_text()):
            return cfg.parent.name
    raise KeyError(f"no lab service named {service!r} (is the lab up?)")


def crash_service(settings: Settings, service: str) -> int:
    """SIGKILL a lab service, as a crash would; return the pid it had."""
    host = service_host(settings, service)
    pidfile = _host_dir(settings, host) / "run" / f"{service}.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else 0
    res = labctl(settings, host, "kill", service)
    if res.returncode != 0:
        raise RuntimeError(f"could not kill {service}: {res.stdout}{res.stderr}")
    return pid


LAB_CHANNELS = {
    "cc-channel": "cc",
    "ops-channel": "ops",
    "support-channel": "support",
    "security-channel": "security",
    "users-channel": "users",
    "info-channel": "info",
    # each command-center member's own channel: their one-time sign-off codes
    "person-zhang-wei": "person/zhang.wei",
    "person-li-na": "person/li.na",
    # the operations roster's own channels, and their fallbacks (SMS in real life)
    "person-wang-fang": "person/wang.fang",
    "person-zhao-lei": "person/zhao.lei",
    "sms-wang-fang": "sms/wang.fang",
    "sms-zhao-lei": "sms/zhao.lei",
}


def start_inbox(settings: Settings) -> int:
    """Start the lab's notification inbox and point the lab's channel secrets at it."""
    from contingency.runtime.processes import free_port, spawn

    port = free_port()
    run_dir = settings.lab_dir / "run"
    out = settings.lab_dir / "inbox.jsonl"
    spawn(
        "inbox",
        [sys.executable, "-m", "contingency.lab.inbox", str(out), "127.0.0.1", str(port)],
        dict(os.environ),
        run_dir,
    )
    for secret, path in LAB_CHANNELS.items():
        target = settings.secrets_dir / secret
        target.write_text(f"json://127.0.0.1:{port}/{path}")
        target.chmod(0o600)
    return port
