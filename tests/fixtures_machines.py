"""Several "machines" on one host, for the production-topology tests (root only).

A machine is a network namespace (its own address on a private /28 of 198.51.100.0/24,
joined to the others by a bridge in a "switch" namespace, and to the root namespace by
one veth) plus its own mount and UTS namespaces, held open by one ``sleep`` process. Each
machine mounts its own tmpfs on the same, empty directory of the root namespace, so
every machine has a state directory that no other machine (and not the test process,
except through ``/proc/<pid>/root``) can see. Its processes are started with ``nsenter``
into those namespaces. Killing every process of a machine is the machine dying: its
tmpfs goes with its mount namespace.

:func:`start_cluster` builds the topology of "4/8 Production topology": machine A runs
PostgreSQL-backed Prefect (two API replicas with ``--no-services``, one process running
the services, Redis for events between them) and the reconciler; B and C each run a
fork server, a worker and an alert intake, pointed at one API replica each.
PostgreSQL stays in the root namespace on 127.0.0.1: a small TCP forwarder on the root
side of the link lets A reach it. Notifications go to a lab inbox in the test process,
on the root side of the link (every machine's channel secrets point there).

    python -m tests.fixtures_machines forward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from contingency.lab.netns import Topology, can_build, sh
from tests.fixtures_pg import pg_admin

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE_INVENTORY = REPO / "inventory" / "examples" / "lab"
SUBNETS = ipaddress.IPv4Network("198.51.100.0/24")
"""Documentation range; its first /28 is left alone (the network lab uses it inside its
own namespaces)."""
API_PORTS = (4200, 4201)
INTAKE_PORT = 8787
POOL = "contingency"
HA_SERVER_ENV = {
    # docs/deployment.md, "When Redis is needed": replicas and a separate services
    # process share events (heartbeats), the docket queue and concurrency leases only
    # through Redis (Prefect's defaults are in-memory, per process).
    "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
    "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1",
    "PREFECT_REDIS_MESSAGING_PORT": "6379",
    "PREFECT_REDIS_MESSAGING_DB": "0",
    "PREFECT_SERVER_DOCKET_URL": "redis://127.0.0.1:6379/1",
}
HOLDER = (
    'hostname "machine-$2" && mount -t tmpfs -o size=1g,mode=0755 "contingency-$2" "$1" '
    '&& mkdir -m 0700 "$1/$2" && cd "$1/$2" && exec sleep infinity'
)
"""The process that holds a machine's mount and UTS namespaces open, in its state
directory ($1: the mount point, $2: the machine's name)."""


# -- one machine ------------------------------------------------------------------------
@dataclass
class Machine:
    name: str
    netns: str
    address: str
    state_dir: Path
    """The machine's CONTINGENCY_STATE_DIR, as its own processes see it."""
    log_dir: Path
    holder: subprocess.Popen[bytes]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def path(self, inside: Path | str) -> Path:
        """``inside`` (a path on this machine) as the test process reaches it."""
        return Path(f"/proc/{self.holder.pid}/root") / Path(inside).relative_to("/")

    @property
    def state(self) -> Path:
        """The machine's state directory, seen from the test process."""
        return self.path(self.state_dir)

    def write(self, relative: str, text: str) -> None:
        """A file in the machine's state directory, owner only."""
        target = self.state / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)

    def env(self, api_url: str, auth: str) -> dict[str, str]:
        """What every process of this machine starts with: its own state directory,
        inventory and Prefect home, and the API replica it talks to (set the way
        docs/deployment.md says: ``CONTINGENCY_API_URL``; the components hand it on to
        Prefect, and so to every flow run)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "CONTINGENCY_")) and "proxy" not in k.lower()
        }
        state = str(self.state_dir)
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            PREFECT_HOME=f"{state}/prefect",
            CONTINGENCY_API_URL=api_url,
            CONTINGENCY_API_AUTH_STRING=auth,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_TO_API_BATCH_INTERVAL="1",
            PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
            PREFECT_LOCAL_STORAGE_PATH=f"{state}/results",
            CONTINGENCY_STATE_DIR=state,
            CONTINGENCY_INVENTORY=f"{state}/inventory",
            CONTINGENCY_CONFIG=f"{state}/config.toml",  # none: environment and defaults
            CONTINGENCY_INTAKE_ACK_WAIT_S="10",  # the intake's answers carry the incidents
        )
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this machine (its own process group); log in the root
        namespace's log directory (test output, not machine state)."""
        enter = ["nsenter", f"--target={self.holder.pid}", "--mount", "--uts", "--net"]
        with open(self.log_dir / f"{self.name}-{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [*enter, "--wd", "--", *argv],  # --wd: the holder's, the state dir
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{self.name}-{name}.log"

    def pids(self) -> list[int]:
        out = sh("ip", "netns", "pids", self.netns, check=False)
        return [int(p) for p in out.split()]

    def kill(self, timeout_s: float = 15.0) -> None:
        """The machine dies: SIGKILL every process in it (flow runs included), again
        until none is left; its tmpfs goes with its mount namespace."""
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for proc in [*self.procs.values(), self.holder]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self.pids():
            raise RuntimeError(f"machine {self.name}: processes left after SIGKILL")


def start_machine(topo: Topology, name: str, address: str, mount: Path, logs: Path) -> Machine:
    """The machine's namespaces, its tmpfs on ``mount`` and its state directory."""
    with open(logs / f"{name}-holder.log", "ab") as log:
        holder = subprocess.Popen(
            ["ip", "netns", "exec", topo.ns(name), "unshare", "--mount", "--uts",
             "--propagation", "private", "--", "sh", "-c", HOLDER, "holder", str(mount), name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    machine = Machine(name, topo.ns(name), address, mount / name, logs, holder)
    wait(lambda: machine.state.is_dir(), 20, f"machine {name}'s tmpfs", holder)
    return machine


# -- the network --------------------------------------------------------------------------
def free_subnet() -> ipaddress.IPv4Network:
    """A /28 of 198.51.100.0/24 (not its first) that no root-namespace interface uses."""
    used = sh("ip", "-o", "-4", "addr", "show")
    blocks = list(SUBNETS.subnets(new_prefix=28))[1:]
    for net in secrets.SystemRandom().sample(blocks, len(blocks)):
        if not any(f"inet {h}/" in used for h in net.hosts()):
            return net
    raise RuntimeError("no free /28 left in 198.51.100.0/24")


def build_network(topo: Topology, names: list[str]) -> tuple[str, dict[str, str]]:
    """A switch namespace with a bridge; one veth from it to the root namespace and one
    to each machine. Returns the root side's address and each machine's address."""
    from contingency.lab.netns import subnet_lock

    with subnet_lock():  # another fixture starting now must not choose the same /28
        net = free_subnet()
        hosts = [str(h) for h in net.hosts()]
        plen = net.prefixlen
        topo.add_ns("sw")
        topo.run("sw", "ip", "link", "add", "br0", "type", "bridge")
        topo.run("sw", "ip", "link", "set", "br0", "up")
        root_if = f"cgr{topo.suffix}"
        topo.veth("root", root_if, "sw", "uplink")
        topo.run("sw", "ip", "link", "set", "uplink", "master", "br0", "up")
        topo.addr("root", root_if, f"{hosts[0]}/{plen}")
    addresses = {}
    for i, name in enumerate(names):
        topo.add_ns(name)
        topo.veth("sw", f"port-{name}", name, "eth0")
        topo.run("sw", "ip", "link", "set", f"port-{name}", "master", "br0", "up")
        addresses[name] = hosts[2 + i]
        topo.addr(name, "eth0", f"{hosts[2 + i]}/{plen}")
    return hosts[0], addresses


# -- a TCP forwarder (PostgreSQL for machine A) --------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _forward(host: str, port: int, target_host: str, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, t_writer), _pipe(t_reader, writer))

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()


def start_forwarder(
    host: str, port: int, target: tuple[str, int], log: Path
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tests.fixtures_machines", "forward", host, str(port)]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [*argv, target[0], str(target[1])],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
            return True
        return False

    wait(listening, 20, "the PostgreSQL forwarder", proc)
    return proc


# -- helpers ------------------------------------------------------------------------------
def wait(
    check: Callable[[], Any], timeout_s: float, what: str, proc: Any = None, log: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if value := check():
                return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{what}: not ready within {timeout_s:.0f}s{tail}")


def http_ok(url: str, auth: str | None = None) -> bool:
    basic = tuple(auth.split(":", 1)) if auth else None
    return requests.get(url, timeout=3, auth=basic).ok  # type: ignore[arg-type]


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def need_cluster_tools() -> None:
    """CI runs as root with iproute2, util-linux, redis-server and prefect-redis: a
    machine that lacks one is a failure to fix, never a skip."""
    ok, why = can_build()
    if not ok:
        pytest.fail(f"network namespaces cannot be built here: {why}")
    for tool in ("unshare", "nsenter", "redis-server"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed")
    try:
        import prefect_redis  # noqa: F401
    except ImportError:
        pytest.fail(
            "prefect-redis is not installed: Prefect with several API replicas and a "
            "separate services process loses every event (heartbeats) without it"
        )


# -- the cluster --------------------------------------------------------------------------
@dataclass
class Cluster:
    machines: dict[str, Machine]
    api_urls: list[str]
    auth: str
    token: str
    inbox: Path
    logs: Path
    revive: Callable[[str], None]
    """Bring a killed worker machine back (tests leave the cluster as they found it)."""
    posted: dict[str, int] = field(default_factory=lambda: {"b": 0, "c": 0})

    def intake_url(self, machine: str) -> str:
        return f"http://{self.machines[machine].address}:{INTAKE_PORT}"

    def post(self, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST an Alertmanager webhook to a machine's intake; its first incident."""
        resp = requests.post(
            f"{self.intake_url(machine)}/webhook/alertmanager",
            json=payload,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        self.posted[machine] += len(payload["alerts"])
        assert resp.status_code == 202, resp.text[:500]
        return dict(resp.json()["incidents"][0])

    def metrics(self, machine: str) -> str:
        return requests.get(f"{self.intake_url(machine)}/metrics", timeout=30).text


def contingency(*args: str) -> list[str]:
    """A ``contingency`` command, as an operations team runs it on a machine."""
    return [str(BIN / "contingency"), *args]


def start_prefect(a: Machine, env: dict[str, str], api_urls: list[str], auth: str) -> None:
    """Machine A: Redis, the database migrated once, the API replicas and one process
    running Prefect's services (docs/deployment.md)."""
    from contingency.runtime.stack import least_env

    server_env = least_env("server", env)
    (a.state / "redis").mkdir(mode=0o700)
    redis = ["redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", ""]
    a.spawn(
        "redis", [*redis, "--appendonly", "no", "--dir", str(a.state_dir / "redis")], server_env
    )
    log = a.log("redis")
    wait(lambda: "Ready to accept connections" in log.read_text(), 20, "Redis on A", log=log)
    prefect = str(BIN / "prefect")
    upgrade = a.spawn("migrate", [prefect, "server", "database", "upgrade", "-y"], server_env)
    if upgrade.wait(180) != 0:
        raise RuntimeError(f"migrations failed:\n{a.log('migrate').read_text()[-3000:]}")
    # One replica after the other: two first starts at once race on registering the
    # block types (UniqueViolation "uq_block_type__slug": one replica exits; under
    # systemd, Restart=always would bring it back).
    for i, url in enumerate(api_urls):
        name, port = f"api{i + 1}", url.rsplit(":", 1)[1].split("/")[0]
        argv = [prefect, "server", "start", "--no-services", "--host", a.address, "--port", port]
        a.spawn(name, argv, server_env)
        if i == 0:
            a.spawn("services", [prefect, "server", "services", "start"], server_env)
        wait(
            partial(http_ok, f"{url}/health", auth),
            180, f"Prefect API replica {name} on A", a.procs[name], a.log(name),
        )  # fmt: skip


def deploy(operator: Path, api_url: str, auth: str) -> None:
    """The work pool and the deployments, from the operator's seat (root namespace)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_API_AUTH_STRING=auth,
        PREFECT_HOME=str(operator / "prefect"),
        CONTINGENCY_STATE_DIR=str(operator),
        CONTINGENCY_INVENTORY=str(EXAMPLE_INVENTORY),
        CONTINGENCY_CONFIG=str(operator / "config.toml"),
    )
    operator.mkdir(mode=0o700)
    done = subprocess.run(
        contingency("deploy", "--pool", POOL),
        env=env, capture_output=True, text=True, timeout=180, cwd=operator,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"contingency deploy failed:\n{done.stdout}\n{done.stderr}")


def start_worker_machine(m: Machine, api_url: str, auth: str) -> None:
    """A fork server, a worker (``worker-<name>``) and an alert intake on ``m``."""
    env = m.env(api_url, auth)
    sock = str(m.state_dir / "run" / "forkserver.sock")
    m.spawn("forkserver", contingency("forkserver", "--socket", sock), env)
    worker = contingency("worker", "--pool", POOL, "--name", f"worker-{m.name}")
    m.spawn("worker", [*worker, "--forkserver", sock], env)
    intake = contingency("intake", "--host", m.address, "--port", str(INTAKE_PORT))
    m.spawn("intake", intake, env)


def wait_worker_machine(m: Machine) -> None:
    sock = m.state / "run" / "forkserver.sock"
    wait(sock.exists, 60, f"fork server on {m.name}", m.procs["forkserver"], m.log("forkserver"))
    healthz = partial(http_ok, f"http://{m.address}:{INTAKE_PORT}/healthz")
    wait(healthz, 90, f"intake on {m.name}", m.procs["intake"], m.log("intake"))
    if m.procs["worker"].poll() is not None:
        raise RuntimeError(f"worker on {m.name} exited:\n{m.log('worker').read_text()[-3000:]}")


@contextlib.contextmanager
def start_cluster(tmp: Path) -> Iterator[Cluster]:
    """Machines A, B, C (see the module docstring); everything is stopped, the
    namespaces deleted and the database dropped afterwards, also after a failure."""
    from cryptography.fernet import Fernet

    from contingency.lab.inbox import serve
    from contingency.lab.launcher import LAB_CHANNELS
    from contingency.runtime.processes import free_port
    from contingency.runtime.stack import least_env

    need_cluster_tools()
    logs = tmp / "logs"
    logs.mkdir()
    mount = tmp / "machine-root"  # empty here; each machine mounts its own tmpfs on it
    mount.mkdir()
    db = f"contingency_machines_{uuid.uuid4().hex[:10]}"
    topo = Topology()
    machines: dict[str, Machine] = {}
    forwarder = None
    inbox_server = None
    pg_admin(f'CREATE DATABASE "{db}"')
    try:
        root_addr, addresses = build_network(topo, ["a", "b", "c"])
        # PostgreSQL for A: the root side of the link, forwarded to 127.0.0.1:5432
        forwarder = start_forwarder(root_addr, 5432, ("127.0.0.1", 5432), logs / "fwd.log")
        inbox = tmp / "inbox.jsonl"
        inbox_server = serve(inbox, root_addr, free_port(root_addr))
        threading.Thread(target=inbox_server.serve_forever, daemon=True).start()
        inbox_port = inbox_server.server_address[1]
        for name in ("a", "b", "c"):
            machines[name] = start_machine(topo, name, addresses[name], mount, logs)
        a, b, c = machines["a"], machines["b"], machines["c"]
        auth = f"admin:{secrets.token_urlsafe(24)}"
        token = secrets.token_urlsafe(32)
        api_urls = [f"http://{a.address}:{port}/api" for port in API_PORTS]

        def provision(m: Machine) -> None:
            """The machine's own copy of the inventory and secrets."""
            shutil.copytree(EXAMPLE_INVENTORY, m.state / "inventory")
            for secret, path in LAB_CHANNELS.items():
                m.write(f"secrets/{secret}", f"json://{root_addr}:{inbox_port}/{path}")
            if m.name in ("b", "c"):
                m.write("secrets/webhook-token", token)

        for m in machines.values():
            provision(m)

        a_env = a.env(api_urls[1], auth)
        a_env.update(HA_SERVER_ENV)
        a_env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=(
                f"postgresql+asyncpg://postgres@{root_addr}:5432/{db}"
            ),
            PREFECT_SERVER_API_AUTH_STRING=auth,
            PREFECT_SERVER_ENCRYPTION_KEY=Fernet.generate_key().decode(),
            PREFECT_SERVER_UI_ENABLED="false",
        )
        start_prefect(a, a_env, api_urls, auth)
        deploy(tmp / "operator", api_urls[0], auth)
        a.spawn("reconciler", contingency("reconciler", "--interval", "2"),
                least_env("reconciler", a_env))  # fmt: skip
        start_worker_machine(b, api_urls[0], auth)  # B on replica 1, C on replica 2
        start_worker_machine(c, api_urls[1], auth)
        for m in (b, c):
            wait_worker_machine(m)

        def revive(name: str) -> None:
            """A dead worker machine comes back, empty: new tmpfs, provisioned again,
            its fork server, worker and intake started on the same replica."""
            old = machines[name]
            machines[name] = m = start_machine(topo, name, old.address, mount, logs)
            provision(m)
            start_worker_machine(m, api_urls[0 if name == "b" else 1], auth)
            wait_worker_machine(m)

        cluster = Cluster(machines, api_urls, auth, token, inbox, logs, revive)
        wait(lambda: _workers_online(cluster) >= {"worker-b", "worker-c"}, 90, "workers online")
        yield cluster
    finally:
        for m in machines.values():
            with contextlib.suppress(Exception):
                m.kill()
        topo.destroy()
        if forwarder is not None:
            _stop_group(forwarder)
        if inbox_server is not None:
            inbox_server.shutdown()
            inbox_server.server_close()
        pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _workers_online(cluster: Cluster) -> set[str]:
    url = f"{cluster.api_urls[0]}/work_pools/{POOL}/workers/filter"
    user, password = cluster.auth.split(":", 1)
    rows = requests.post(url, json={}, auth=(user, password), timeout=5).json()
    return {w["name"] for w in rows if w.get("status") == "ONLINE"}


if __name__ == "__main__" and sys.argv[1:2] == ["forward"]:
    host, port, target_host, target_port = sys.argv[2:6]
    asyncio.run(_forward(host, int(port), target_host, int(target_port)))
