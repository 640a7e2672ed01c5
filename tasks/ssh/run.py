"""Run commands on hosts over SSH — the only module that imports paramiko.

Host keys are pinned (``Host.host_key`` or ``Host.known_hosts``) and checked with
``RejectPolicy``; ``~/.ssh`` and the agent are never consulted. Connections are pooled
per (flow run, host); commands run under ``timeout(1)`` (see `tasks.ssh.models`).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import io
import logging
import re
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
from paramiko.pkey import UnknownKeyType  # what paramiko.UnknownKeyType is; the stubs omit it
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run

from inventory.errors import (
    AuthFailed,
    CommandError,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    SSHError,
)
from inventory.models import Host
from inventory.secrets import redact, resolve_secret
from inventory.settings import Settings, get_settings
from tasks.ssh.models import (
    LOST_MID_COMMAND,
    NO_EXIT_STATUS,
    CommandResult,
    Drained,
    LineSink,
    drain,
    known_hosts_name,
    remote_command,
    where,
)

_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
_NO_TIMEOUT_BIN = re.compile(r"\btimeout: (command )?not found")
_LOST = (paramiko.SSHException, OSError, EOFError)
"""What paramiko raises when the connection dies under a channel."""
_PACKET_RESERVE = 64
"""What paramiko's channel keeps free of each packet's size limit (``Channel._send``)."""
_OPENSSH_REQUEST_PACKETS = 8
_OPENSSH_SFTP_MESSAGE = 256 * 1024 - 1024
"""OpenSSH's sftp-server takes messages up to 256 KiB (``SFTP_MAX_MSG_LENGTH``); a
write request is kept 1 KiB under it. Other servers get one packet's worth (the SFTP
draft's 32 KiB floor)."""
_DEATH_GRACE_S = 0.5
"""After a channel closes without an exit status, how long to wait for the transport
to show whether the connection itself died (paramiko closes channels first)."""


def _pin_host_key(client: paramiko.SSHClient, host: Host) -> None:
    keys, name = client.get_host_keys(), known_hosts_name(host)
    if host.host_key:
        kind, blob = host.host_key.split()[:2]
        try:
            keys.add(name, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
        except (paramiko.SSHException, UnknownKeyType, binascii.Error, ValueError):
            raise HostKeyUnknown(f"{where(host)}: pinned host_key {kind} unusable") from None
    elif host.known_hosts:
        try:
            keys.load(host.known_hosts)
        except OSError as exc:
            raise HostKeyUnknown(f"{where(host)}: cannot read {host.known_hosts}: {exc}") from exc
        if keys.lookup(name) is None:
            raise HostKeyUnknown(f"{where(host)}: no entry for {name} in {host.known_hosts}")
    else:
        raise HostKeyUnknown(f"{where(host)}: no pinned host key (set host_key or known_hosts)")


def _private_key(host: Host, settings: Settings) -> paramiko.PKey:
    try:
        text = resolve_secret(host.key_secret, settings).get_secret_value()
    except (KeyError, ValueError) as exc:  # SecretNotFound names where it looked
        raise AuthFailed(f"{where(host)}: private key unavailable: {exc}") from exc
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError):
            continue
    raise AuthFailed(  # `from None`: parse errors may quote the key material
        f"{where(host)}: secret {host.key_secret!r} is not an unencrypted "
        "ed25519/ecdsa/rsa private key"
    ) from None


def _socket(host: Host, t: float) -> socket.socket:
    """The TCP connection to the host, with Nagle's algorithm off.

    OpenSSH turns it off only for interactive sessions. With it on, each small request
    (open a channel, run a command) waited for the previous packet's delayed ACK: about
    40 ms per command, measured on loopback (``benchmarks/fan_out.py``)."""
    sock = socket.create_connection((host.address, host.port), timeout=t)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


AEAD_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
"""Ciphers offered first. AES-GCM authenticates as it encrypts; paramiko's default,
aes128-ctr with hmac-sha2-256, hashes every packet a second time: measured 1.7 vs 1.0 s
of controller CPU per 512 MiB sent (``benchmarks/restore_throughput.py``). Hosts
without them (OpenSSH before 6.2) still get the rest of paramiko's list."""


def _transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """paramiko's Transport, offering `AEAD_FIRST` before its own preferences."""
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    rest = tuple(c for c in options.ciphers if c not in AEAD_FIRST)
    options.ciphers = tuple(c for c in AEAD_FIRST if c in options.ciphers) + rest
    return transport


def _connect(client: paramiko.SSHClient, host: Host, pkey: paramiko.PKey, t: float) -> None:
    try:
        client.connect(
            host.address, host.port, host.user, pkey=pkey, sock=_socket(host, t),
            timeout=t, banner_timeout=t, auth_timeout=t, channel_timeout=t,
            allow_agent=False, look_for_keys=False, transport_factory=_transport,
        )  # fmt: skip
    except paramiko.BadHostKeyException as exc:
        raise HostKeyMismatch(
            f"{where(host)}: host key mismatch: pinned {exc.expected_key.fingerprint}, "
            f"host offered {exc.key.fingerprint}; refusing to connect"
        ) from None
    except paramiko.AuthenticationException as exc:
        raise AuthFailed(
            f"{where(host)}: authentication as {host.user!r} with key "
            f"{host.key_secret!r} failed ({type(exc).__name__})"
        ) from None
    except paramiko.SSHException as exc:
        raise SSHError(f"{where(host)}: SSH handshake failed: {exc}") from exc
    except socket.gaierror as exc:
        raise HostUnreachable(f"{where(host)}: cannot resolve {host.address!r}: {exc}") from exc
    except TimeoutError as exc:
        raise HostUnreachable(f"{where(host)}: no answer within {t:g}s") from exc
    except OSError as exc:
        raise HostUnreachable(f"{where(host)}: {exc.strerror or exc}") from exc


class SSHConnection:
    """One authenticated SSH connection to one host; make one with `connect`."""

    def __init__(self, host: Host, client: paramiko.SSHClient, connect_timeout: float) -> None:
        self.host = host
        self._client = client
        self._timeout = connect_timeout

    @classmethod
    def connect(cls, host: Host, settings: Settings | None = None) -> SSHConnection:
        """Connect and authenticate, or raise an `SSHError` subclass naming the host."""
        settings = settings or get_settings()
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            _pin_host_key(client, host)
            _connect(client, host, _private_key(host, settings), settings.ssh_connect_timeout)
        except BaseException:
            client.close()
            raise
        return cls(host, client, settings.ssh_connect_timeout)

    @property
    def transport(self) -> Any:
        return self._client.get_transport()

    @property
    def is_active(self) -> bool:
        return self.transport is not None and self.transport.is_active()

    def run(
        self, command: str, timeout: float, on_line: LineSink | None = None,
        stdin: bytes | None = None, hold: threading.Event | None = None,
    ) -> CommandResult:  # fmt: skip
        """Run ``command`` with ``sh -c`` on the host; a non-zero exit is not an error.

        ``stdin`` (small: it is sent before the output is read) is written to the
        command's standard input, then closed — a way to hand a command a credential
        that must not show in the host's ``ps`` or in the recorded command. With ``hold``,
        standard input is closed only once ``hold`` is set (or at the deadline): a
        command running beside other work can wait for it to end by reading its input.

        The first 200 output lines go to ``on_line(stream, line)``; lines and tails are
        redacted. At the deadline the channel is closed, the result says ``timed_out``
        and the host kills the command a second later.

        Errors before the command is sent (not connected, no session) raise `SSHError`.
        Once it may have been sent, a lost connection is not raised: the result says
        ``outcome == "unknown"`` (``exit_code`` None, ``connection_lost``) with the
        output received so far — the command may have run.
        """
        started_at, t0 = datetime.now(UTC), time.monotonic()
        if not self.is_active:
            raise SSHError(f"{where(self.host)}: not connected")
        try:
            chan = self.transport.open_session(timeout=self._timeout)
        except _LOST as exc:
            raise SSHError(f"{where(self.host)}: cannot start command: {exc}") from exc
        try:
            chan.exec_command(remote_command(command, timeout))
            if stdin is not None:
                chan.sendall(stdin)
            if hold is not None:
                hold.wait(max(0.0, t0 + timeout - time.monotonic()))
            if stdin is not None or hold is not None:
                chan.shutdown_write()
        except _LOST as exc:
            chan.close()
            if not self._died():  # the host refused the request: nothing ran
                raise SSHError(f"{where(self.host)}: cannot start command: {exc}") from exc
            got = Drained(-1, False, "", "", f"{type(exc).__name__}: {exc}")
            return self._unknown(got, command, started_at, t0)
        try:
            got = drain(chan, t0 + timeout, on_line, lost_on=_LOST)
        finally:
            chan.close()
        if got.no_status:
            return self._unknown(got, command, started_at, t0)
        result = got.result(self.host.name, command, started_at, time.monotonic() - t0)
        if got.status == 127 and _NO_TIMEOUT_BIN.search(got.stderr_tail):
            raise CommandError(f"{where(self.host)}: timeout(1) from coreutils is missing", result)
        return result

    def _unknown(
        self, got: Drained, command: str, started_at: datetime, t0: float
    ) -> CommandResult:
        """The result of a command whose exit status never came back."""
        lost = got.error is not None or self._died()
        message = LOST_MID_COMMAND if lost else NO_EXIT_STATUS
        if got.error:
            message += f" ({got.error})"
        return got.result(self.host.name, command, started_at, time.monotonic() - t0, lost, message)

    def _died(self) -> bool:
        """Whether the transport is dead, or dies within `_DEATH_GRACE_S`."""
        deadline = time.monotonic() + _DEATH_GRACE_S
        while self.is_active and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.is_active

    def open_sftp(self) -> Any:
        """An SFTP session (paramiko ``SFTPClient``) on this connection."""
        try:
            return self._client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            raise SSHError(f"{where(self.host)}: cannot open SFTP: {exc}") from exc

    def open_upload(self, sftp: Any, path: str) -> Any:
        """``path`` opened for writing on ``sftp`` (from `open_sftp`), pipelined, each
        write request as large as the server takes, in whole SSH packets.

        paramiko sends 32 KiB of data per request, which with the request's header is
        just over the channel's packet limit: every request went out as two packets, the
        second a few dozen bytes, each with its own encryption, MAC and send (0.3 s of
        2.7 s per 512 MiB). And every request gets its own answer, which this process
        reads, decrypts and matches: to an OpenSSH server, a request fills eight packets
        (~255 KiB), an eighth of the answers; measured 4.2 → 2.6 s of this process's CPU,
        5.4 → 3.7 s wall per GiB relayed (medians of six alternating rounds)."""
        f = sftp.open(path, "wb")
        f.set_pipelined(True)
        header = 4 + 1 + 4 + 4 + len(f.handle) + 8 + 4  # length, type, id, handle, offset, size
        packet = sftp.sock.out_max_packet_size - _PACKET_RESERVE
        if self.transport.remote_version.startswith("SSH-2.0-OpenSSH"):
            room = min(_OPENSSH_REQUEST_PACKETS * packet, _OPENSSH_SFTP_MESSAGE) - header
        else:
            room = min(f.MAX_REQUEST_SIZE, packet - header)
        f.MAX_REQUEST_SIZE = max(1024, room)
        return f

    def put_file(self, local: Path, remote: str) -> None:
        """Copy a local file to ``remote`` on the host."""
        with self.open_sftp() as sftp:
            try:
                sftp.put(str(local), remote)
            except (paramiko.SSHException, OSError) as exc:
                msg = f"{where(self.host)}: cannot upload {local} to {remote}: {exc}"
                raise SSHError(msg) from exc

    def close(self) -> None:
        self._client.close()


_pool: dict[tuple[str, str], SSHConnection] = {}
_pool_lock = threading.Lock()
_key_locks: dict[tuple[str, str], threading.Lock] = {}


def current_run_id() -> str:
    """The flow run id of the calling flow or task, or ``"no-run"``."""
    return str(runtime_flow_run.id or "no-run")


def get_connection(host: Host, settings: Settings | None = None) -> SSHConnection:
    """The current flow run's connection to ``host``, (re)connected if needed."""
    key = (current_run_id(), host.name)
    with _pool_lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        conn = _pool.get(key)
        if conn is not None and conn.host == host and conn.is_active:
            return conn
        if conn is not None:
            conn.close()
        conn = SSHConnection.connect(host, settings)
        with _pool_lock:
            _pool[key] = conn
        return conn


def close_all(run_id: str | None = None) -> int:
    """Close the pooled connections of one flow run (or all); return how many."""
    with _pool_lock:
        keys = [k for k in _pool if run_id is None or k[0] == str(run_id)]
        conns = [_pool.pop(k) for k in keys]
        for k in keys:
            _key_locks.pop(k, None)
    for conn in conns:
        conn.close()
    return len(conns)


atexit.register(close_all)


def _task_run_name(parameters: dict[str, Any]) -> str:
    command = " ".join(str(parameters["command"]).split())
    short = command if len(command) <= 60 else command[:57] + "..."
    return f"ssh {parameters['host'].name}: {redact(short)}"


# Prefect's TaskRunNameCallbackWithParameters protocol demands a classmethod no function has.
@task(name="ssh", task_run_name=_task_run_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def run_ssh(host: Host, command: str, timeout: float | None = None) -> CommandResult:
    """Run ``command`` (from the inventory, never alert text) on ``host``, streaming output.

    Returns the `CommandResult`: a non-zero exit, a timeout (default
    ``settings.ssh_command_timeout``) or a connection lost after the command was sent
    (``outcome == "unknown"``: it may have run) is reported, not raised; connection
    problems before it was sent raise `HostUnreachable`, `AuthFailed`, `HostKeyError`,
    `SSHError`.

    Example (inside a flow: it runs on the real host)::

        @flow
        def restart(host: Host) -> bool:
            return run_ssh(host, "systemctl restart nginx", timeout=30).ok
    """
    logger = get_run_logger()
    settings = get_settings()

    def on_line(stream: str, line: str) -> None:
        logger.info("[%s %s] %s", host.name, stream, line)

    conn = get_connection(host, settings)
    result = conn.run(command, timeout or settings.ssh_command_timeout, on_line)
    if result.outcome == "unknown":
        outcome, level = f"outcome unknown, {result.message},", logging.ERROR
    else:
        outcome = "timed out" if result.timed_out else f"exit {result.exit_code}"
        level = logging.INFO if result.ok else logging.WARNING
    logger.log(level, "%s: %s after %.2fs", where(host), outcome, result.duration_s)
    return result
