"""A real OpenSSH server as a subprocess, for the local lab and the test fixtures.

Runs as root (any user may log in with an authorized key) or as an ordinary user
(then sshd can log only that same user in). Everything it needs — host key, config,
authorized_keys, pid file, log — lives in ``base_dir``.

Example (starts a real sshd)::

    pub = generate_client_key(tmp / "id_ed25519")
    with SshdServer(tmp / "sshd", authorized_keys=[pub]) as server:
        print(server.port, server.known_hosts_line)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from contingency.runtime.processes import children

SSHD = Path("/usr/sbin/sshd")
"""sshd must be started by absolute path (it re-executes itself)."""
START_TIMEOUT_S = 10.0
HOST_ENV = {"SHLVL": "1"}
"""Set in every session. A lab host logs in the controller's own user, and bash run by
sshd reads that user's ~/.bashrc when it is a top-level shell: on a machine whose
~/.bashrc runs ``pyenv init`` that was about 100 processes, 80 ms and 0.1 CPU-second per
command — the controller's interactive setup, not the host's. With SHLVL=1 the
command's bash is not top-level and skips it, as a plain host's shell would."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
    return Path(f"{path}.pub").read_text().strip()


def generate_client_key(path: Path) -> str:
    """Make an ed25519 key pair without passphrase at ``path`` (kept if it exists).

    Returns the public key line, ``"ssh-ed25519 AAAA... comment"``.
    """
    return _keygen(path, "contingency-client")


def _setenv_line(env: dict[str, str]) -> str:
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name) or any(c in value for c in '"\n\r\\'):
            raise ValueError(f"sshd SetEnv: unsupported variable {name!r}")
    return "SetEnv " + " ".join(f'"{name}={value}"' for name, value in env.items())


def _sshd_version(sshd: Path) -> tuple[int, int]:
    proc = subprocess.run([str(sshd), "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", proc.stderr + proc.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


class SshdServer:
    """One sshd listening on ``address:port``, accepting ``authorized_keys`` only."""

    def __init__(
        self,
        base_dir: Path,
        address: str = "127.0.0.1",
        port: int | None = None,
        authorized_keys: list[str] | None = None,
        env: dict[str, str] | None = None,
        sshd: Path = SSHD,
        netns: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.address = address
        self.netns = netns
        """Run inside this network namespace (``ip netns exec``); the port defaults to 22."""
        self._auto_port = port is None and netns is None
        self.port = port if port is not None else 22 if netns else free_port(address)
        self.authorized_keys = list(authorized_keys or [])
        self.env = dict(env or {})
        self.sshd = sshd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def host_key_path(self) -> Path:
        return self.base_dir / "ssh_host_ed25519_key"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "sshd.log"

    @property
    def authorized_keys_path(self) -> Path:
        return self.base_dir / "authorized_keys"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def host_key_line(self) -> str:
        """The public host key, ``"ssh-ed25519 AAAA..."`` (no comment)."""
        kind, blob = Path(f"{self.host_key_path}.pub").read_text().split()[:2]
        return f"{kind} {blob}"

    @property
    def known_hosts_line(self) -> str:
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {self.host_key_line}"

    def start(self) -> SshdServer:
        """Start sshd and wait until it accepts connections (raises `RuntimeError`)."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _keygen(self.host_key_path, f"contingency-host-{self.address}")
        self.authorized_keys_path.write_text(
            "".join(f"{k.strip()}\n" for k in self.authorized_keys)
        )
        self.authorized_keys_path.chmod(0o600)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _attempt in range(3 if self._auto_port else 1):
            self._launch()
            if self._wait_ready():
                return self
            self.stop()
            if not (self._auto_port and "Address already in use" in self.log_tail()):
                break
            self.port = free_port(self.address)
        raise RuntimeError(
            f"sshd on {self.address}:{self.port} did not start; log tail:\n{self.log_tail()}"
        )

    def _config_text(self) -> str:
        lines = [
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.base_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]
        if _sshd_version(self.sshd) >= (9, 8):  # failed logins must not lock tests out
            lines.append("PerSourcePenalties no")
        lines.append(_setenv_line({**HOST_ENV, **self.env}))
        return "\n".join(lines) + "\n"

    def _launch(self) -> None:
        self.config_path.write_text(self._config_text())
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
            self._proc = subprocess.Popen(
                [*prefix, str(self.sshd), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if "Server listening on" in self.log_tail():
                try:
                    socket.create_connection((self.address, self.port), timeout=0.5).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.02)
        return False

    def log_tail(self, lines: int = 30) -> str:
        """The last lines sshd logged since the latest start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the listener and the per-connection sshd processes it started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        sessions = children(proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        for child in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    def __enter__(self) -> SshdServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
