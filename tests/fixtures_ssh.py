"""A real OpenSSH server for tests, with its own keys; the user's ~/.ssh stays out.

Fixtures: ``ssh_client_key`` (session), ``sshd`` and ``ssh_host`` (per test). ``sshd``
points HOME at an empty directory while it runs (like fabric's autouse fixture) and
closes every pooled SSH connection before it stops the server.

Fault helpers: ``kill_sshd_sessions`` (kill -9 the per-connection sshd processes; the
listener stays) and ``kill_processes_mentioning`` (clean up a test's orphaned commands).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contingency.lab.sshd import SshdServer, generate_client_key
from inventory.models import Host

TEST_KEY_SECRET = "test-ssh-key"
TEST_KEY_ENV = "CONTINGENCY_SECRET_TEST_SSH_KEY"


@dataclass(frozen=True)
class ClientKey:
    path: Path
    public: str
    secret_name: str = TEST_KEY_SECRET

    @property
    def private_text(self) -> str:
        return self.path.read_text()


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientKey]:
    """A client key pair; its private key is the secret ``test-ssh-key`` (env)."""
    path = tmp_path_factory.mktemp("ssh-client") / "id_ed25519"
    key = ClientKey(path=path, public=generate_client_key(path))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TEST_KEY_ENV, key.private_text)
        yield key


@pytest.fixture
def ssh_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, so nothing reads the developer's ~/.ssh (keys, config, known_hosts)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def sshd(tmp_path: Path, ssh_client_key: ClientKey, ssh_home: Path) -> Iterator[SshdServer]:
    """sshd on 127.0.0.1 (free port) accepting ``ssh_client_key``; stopped afterwards."""
    from tasks.ssh.run import close_all

    server = SshdServer(tmp_path / "sshd", authorized_keys=[ssh_client_key.public])
    try:
        server.start()
        yield server
    finally:
        close_all()
        server.stop()


@pytest.fixture
def ssh_host(sshd: SshdServer, ssh_client_key: ClientKey) -> Host:
    """An inventory host for ``sshd``: pinned host key, current user, test key secret."""
    return Host(
        name="test-sshd",
        address=sshd.address,
        port=sshd.port,
        user=getpass.getuser(),
        key_secret=ssh_client_key.secret_name,
        host_key=sshd.host_key_line,
    )


def _ppid_map() -> dict[int, int]:
    """pid → parent pid for every process (from /proc; psutil is not a dependency)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def sshd_session_pids(server: SshdServer) -> list[int]:
    """The sshd processes serving connections of ``server`` (the per-connection
    monitor and its session child), not the listener and not the user's commands."""
    if server.pid is None:
        return []
    parents = _ppid_map()
    found: list[int] = []
    frontier = [server.pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and _comm(pid) == "sshd":
                found.append(pid)
                frontier.append(pid)
    return found


def kill_sshd_sessions(server: SshdServer) -> list[int]:
    """``kill -9`` every sshd process serving a connection of ``server`` (the listener
    keeps running, so new connections work); returns the pids killed."""
    killed = []
    for pid in sshd_session_pids(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def kill_processes_mentioning(token: str) -> list[int]:
    """``kill -9`` the processes whose command line contains ``token`` (a test's own
    remote commands orphaned by a killed sshd); returns their pids."""
    killed = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(cmdline.parent.name)
        if token in text and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed
