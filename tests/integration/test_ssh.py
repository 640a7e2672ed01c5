"""tasks.ssh.run against a real OpenSSH server (started by tests.fixtures_ssh)."""

from __future__ import annotations

import getpass
import logging
import random
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from contingency.lab.sshd import SshdServer, free_port, generate_client_key
from inventory.errors import (
    AuthFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    SSHError,
)
from inventory.models import Host
from inventory.settings import Settings
from tasks.ssh import run as ssh
from tasks.ssh.models import STREAM_LINES, CommandResult
from tasks.ssh.run import SSHConnection, get_connection
from tests.fixtures_ssh import ClientKey

pytestmark = pytest.mark.integration

FAST = Settings(ssh_connect_timeout=2.0)
MiB = 1024 * 1024


def _pgrep(pattern: str) -> list[str]:
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return proc.stdout.split()


def _error_text(exc: BaseException) -> str:
    """The message plus the whole chained traceback, as a log would show it."""
    return "".join(traceback.format_exception(exc))


def test_echo_reports_exit_zero_and_duration(ssh_host: Host) -> None:
    result = get_connection(ssh_host, FAST).run("echo hello", timeout=10)
    assert result.ok and result.exit_code == 0 and not result.timed_out
    assert result.stdout_tail == "hello\n" and result.stderr_tail == ""
    assert 0 < result.duration_s < 5
    assert result.host == "test-sshd" and result.command == "echo hello"
    assert result.started_at.tzinfo is not None


def test_nonzero_exit_is_reported_not_raised(ssh_host: Host) -> None:
    result = get_connection(ssh_host, FAST).run("echo failing >&2; exit 3", timeout=10)
    assert result.exit_code == 3 and not result.ok and not result.timed_out
    assert result.stderr_tail == "failing\n"


def test_stdout_and_stderr_are_both_captured_and_streamed(ssh_host: Host) -> None:
    lines: list[tuple[str, str]] = []
    result = get_connection(ssh_host, FAST).run(
        "echo out1; echo err1 >&2; printf 'no newline'",
        timeout=10,
        on_line=lambda *a: lines.append(a),
    )
    assert result.stdout_tail == "out1\nno newline" and result.stderr_tail == "err1\n"
    assert sorted(lines) == [("stderr", "err1"), ("stdout", "no newline"), ("stdout", "out1")]


def test_10mb_on_both_streams_does_not_deadlock(ssh_host: Host) -> None:
    lines: list[tuple[str, str]] = []
    command = (
        "(yes out | head -c 10485760; echo END-OUT) & "
        "(yes err | head -c 10485760 >&2; echo END-ERR >&2) & wait"
    )
    result = get_connection(ssh_host, FAST).run(
        command, timeout=40, on_line=lambda *a: lines.append(a)
    )
    assert result.ok and not result.timed_out
    assert result.stdout_tail.endswith("out\nEND-OUT\n") and len(result.stdout_tail) == 4096
    assert result.stderr_tail.endswith("err\nEND-ERR\n") and len(result.stderr_tail) == 4096
    assert len(lines) == STREAM_LINES


def test_timeout_is_reported_and_the_remote_process_is_killed(ssh_host: Host) -> None:
    marker = f"30.{random.randrange(10**8, 10**9)}"  # `sleep 30.NNN`: unique in ps
    seen: list[list[str]] = []

    def on_line(stream: str, line: str) -> None:
        deadline = time.monotonic() + 1
        while not seen and time.monotonic() < deadline:
            if pids := _pgrep(f"sleep {marker}"):
                seen.append(pids)
            time.sleep(0.02)

    result = get_connection(ssh_host, FAST).run(f"echo started; sleep {marker}", 2, on_line)
    assert seen, "the remote sleep never showed up in ps"
    assert result.timed_out and result.exit_code is None and not result.ok
    assert 2 <= result.duration_s < 4
    assert result.stdout_tail == "started\n"
    deadline = time.monotonic() + 10
    while _pgrep(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pgrep(f"sleep {marker}"), "remote sleep survived the timeout"
    # the connection is still usable afterwards
    assert get_connection(ssh_host, FAST).run("true", timeout=5).ok


def test_host_key_mismatch_refuses_before_running_anything(ssh_host: Host, tmp_path: Path) -> None:
    other = generate_client_key(tmp_path / "other_host_key")
    impostor = ssh_host.model_copy(update={"host_key": other})
    flag = tmp_path / "ran"
    with pytest.raises(HostKeyMismatch) as info:
        get_connection(impostor, FAST).run(f"touch {flag}", timeout=5)
    message = str(info.value)
    assert "test-sshd" in message and f"127.0.0.1:{ssh_host.port}" in message
    assert "mismatch" in message
    assert not flag.exists()


def test_known_hosts_file_is_an_alternative_pin(
    ssh_host: Host, sshd: SshdServer, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd.known_hosts_line}\n")
    via_file = ssh_host.model_copy(update={"host_key": None, "known_hosts": str(known)})
    assert SSHConnection.connect(via_file, FAST).run("true", timeout=5).ok

    known.write_text(f"[127.0.0.1]:1 {sshd.host_key_line}\n")
    with pytest.raises(HostKeyUnknown, match=r"no entry for \[127\.0\.0\.1\]:\d+"):
        SSHConnection.connect(via_file, FAST)


def test_no_pinned_key_is_refused_with_a_clear_error(ssh_host: Host) -> None:
    unpinned = ssh_host.model_copy(update={"host_key": None})
    with pytest.raises(HostKeyUnknown, match="test-sshd .*no pinned host key"):
        SSHConnection.connect(unpinned, FAST)


def test_wrong_client_key_fails_auth_without_leaking_it(
    ssh_host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = tmp_path / "stranger"
    generate_client_key(stranger)
    private = stranger.read_text()
    monkeypatch.setenv("CONTINGENCY_SECRET_STRANGER_KEY", private)
    host = ssh_host.model_copy(update={"key_secret": "stranger-key"})
    with pytest.raises(AuthFailed) as info:
        SSHConnection.connect(host, FAST)
    assert "test-sshd" in str(info.value) and "stranger-key" in str(info.value)
    _assert_no_key_material(_error_text(info.value), private)


def test_unparseable_or_missing_key_secret_fails_auth_without_leaking_it(
    ssh_host: Host, monkeypatch: pytest.MonkeyPatch, ssh_client_key: ClientKey
) -> None:
    broken = ssh_client_key.private_text.replace("A", "B")
    monkeypatch.setenv("CONTINGENCY_SECRET_BROKEN_KEY", broken)
    with pytest.raises(AuthFailed, match="not an unencrypted") as info:
        SSHConnection.connect(ssh_host.model_copy(update={"key_secret": "broken-key"}), FAST)
    _assert_no_key_material(_error_text(info.value), broken)

    with pytest.raises(AuthFailed, match="private key unavailable"):
        SSHConnection.connect(ssh_host.model_copy(update={"key_secret": "absent-key"}), FAST)


def _assert_no_key_material(text: str, private: str) -> None:
    assert "PRIVATE KEY" not in text
    for line in private.splitlines():
        if len(line) >= 16 and "PRIVATE KEY" not in line:
            assert line not in text


def test_closed_port_is_unreachable_quickly(ssh_host: Host) -> None:
    closed = ssh_host.model_copy(update={"port": free_port()})
    started = time.monotonic()
    with pytest.raises(HostUnreachable, match=r"test-sshd \(127\.0\.0\.1:\d+\)"):
        SSHConnection.connect(closed, FAST)
    assert time.monotonic() - started < FAST.ssh_connect_timeout


def test_silent_port_fails_within_the_connect_timeout(ssh_host: Host) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks SSH
        host = ssh_host.model_copy(update={"port": silent.getsockname()[1]})
        started = time.monotonic()
        with pytest.raises(SSHError, match="test-sshd"):
            SSHConnection.connect(host, Settings(ssh_connect_timeout=1.0))
        assert time.monotonic() - started < 3


def test_pool_reuses_one_connection_per_run_and_host(
    ssh_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_connection(ssh_host, FAST)
    assert first.run("true", timeout=5).ok
    second = get_connection(ssh_host, FAST)
    assert second.run("true", timeout=5).ok
    assert second is first and second.transport is first.transport

    monkeypatch.setattr(ssh, "current_run_id", lambda: "another-run")
    assert get_connection(ssh_host, FAST).transport is not first.transport
    assert ssh.close_all("another-run") == 1
    monkeypatch.undo()

    first.close()  # a dead transport is replaced transparently
    third = get_connection(ssh_host, FAST)
    assert third is not first and third.run("echo again", timeout=5).stdout_tail == "again\n"


def test_pool_connects_once_under_concurrency(ssh_host: Host) -> None:
    got: list[SSHConnection] = []
    threads = [
        threading.Thread(target=lambda: got.append(get_connection(ssh_host, FAST)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in got}) == 1


def test_put_file_over_sftp(ssh_host: Host, tmp_path: Path) -> None:
    local = tmp_path / "payload.txt"
    local.write_text("payload\n")
    remote = tmp_path / "uploaded.txt"
    get_connection(ssh_host, FAST).put_file(local, str(remote))
    assert remote.read_text() == "payload\n"


def _upload(conn: SSHConnection, remote: Path, data: bytes) -> int:
    """``data`` written through `open_upload` in 1 MiB writes; the request size used."""
    sftp = conn.open_sftp()
    try:
        with conn.open_upload(sftp, str(remote)) as f:
            size = int(f.MAX_REQUEST_SIZE)
            for at in range(0, len(data), 1 << 20):
                f.write(data[at : at + (1 << 20)])
    finally:
        sftp.close()
    return size


def test_uploads_to_openssh_fill_several_packets_per_request(
    ssh_host: Host, tmp_path: Path
) -> None:
    """OpenSSH's sftp-server takes ~255 KiB write requests: eight packets, one answer."""
    data = random.randbytes(5 * (1 << 20) + 12345)
    remote = tmp_path / "big.bin"
    conn = SSHConnection.connect(ssh_host, FAST)
    try:
        size = _upload(conn, remote, data)
    finally:
        conn.close()
    assert 7 * 32 * 1024 < size < 256 * 1024 - 1024
    assert remote.read_bytes() == data


def test_uploads_to_another_server_stay_one_packet_per_request_stub_banner(
    ssh_host: Host, tmp_path: Path
) -> None:
    """A server that is not OpenSSH (its banner stubbed: the one SFTP server here is
    OpenSSH's) gets requests of one packet, which every SFTP server takes."""
    data = random.randbytes(3 * (1 << 20) + 7)
    remote = tmp_path / "small.bin"
    conn = SSHConnection.connect(ssh_host, FAST)
    try:
        conn.transport.remote_version = "SSH-2.0-SomeOtherServer_1.0"
        size = _upload(conn, remote, data)
    finally:
        conn.close()
    assert 30 * 1024 < size <= 32 * 1024
    assert remote.read_bytes() == data


def test_sshd_env_and_known_hosts_line(
    tmp_path: Path, ssh_client_key: ClientKey, ssh_home: Path
) -> None:
    with SshdServer(
        tmp_path / "s", authorized_keys=[ssh_client_key.public], env={"LAB_HOST_DIR": "/x y"}
    ) as server:
        host = Host(
            name="env-host",
            address=server.address,
            port=server.port,
            user=getpass.getuser(),
            key_secret=ssh_client_key.secret_name,
            host_key=server.host_key_line,
        )
        conn = SSHConnection.connect(host, FAST)
        try:
            assert conn.run('echo "$LAB_HOST_DIR"', timeout=5).stdout_tail == "/x y\n"
        finally:
            conn.close()
        assert server.known_hosts_line == f"[127.0.0.1]:{server.port} {server.host_key_line}"
        pid = server.pid
    assert pid is not None and not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect API (SQLite) for the task test; ~10 s to start."""
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_run_ssh_task_streams_redacted_lines_over_one_pooled_connection(
    ssh_host: Host, sshd: SshdServer, ssh_client_key: ClientKey, prefect_harness: None
) -> None:
    from prefect import flow

    from tasks.ssh.run import run_ssh

    @flow
    def two_commands() -> tuple[CommandResult, CommandResult, str]:
        first = run_ssh(ssh_host, f"echo one; cat {ssh_client_key.path} >&2; exit 4", 10)
        second = run_ssh(ssh_host, "sleep 5", timeout=1)
        return first, second, ssh.current_run_id()

    records = _Records()
    task_logger = logging.getLogger("prefect.task_runs")
    task_logger.addHandler(records)
    try:
        first, second, run_id = two_commands()
    finally:
        task_logger.removeHandler(records)
    assert first.exit_code == 4 and first.stdout_tail == "one\n"
    assert second.timed_out and second.exit_code is None
    assert "[test-sshd stdout] one" in records.messages
    assert any("exit 4 after" in m for m in records.messages)
    assert any("timed out after" in m for m in records.messages)
    logged = "\n".join(records.messages)
    _assert_no_key_material(logged + first.stderr_tail, ssh_client_key.private_text)
    assert run_id != "no-run"
    assert ssh.close_all(run_id) == 1
    assert sshd.log_tail(200).count("Accepted publickey") == 1
