"""Intake memory under a 256 MiB request header (one unauthenticated connection).

Starts the intake exactly as ``contingency up`` does (the uvicorn argv that
``contingency intake`` execs, ``contingency.cli.components.intake_argv``, with the
guarded protocol ``--http contingency.intake.protocol:GuardedHttpTools``) against a
closed Prefect port — the attack never gets past the request head, so no Prefect is
needed. Then:

1. idle: a few requests, a pause, the intake's ``VmRSS``;
2. attack: ``POST /webhook/generic`` with one header of 256 MiB streamed in 64 KiB chunks
   from a raw socket, stopping when the intake answers or closes (``--ignore-answer``:
   keep sending until the connection is reset); the peak RSS is ``VmHWM`` after resetting
   it (``/proc/<pid>/clear_refs``) just before the attack, and ``VmRSS`` sampled every
   5 ms during it.

Prints idle RSS, peak RSS, their difference and ratio, the answer and how many bytes the
intake accepted. Target: peak within 20 MB of idle. ``--unguarded`` runs plain uvicorn
httptools (the behaviour before the guard) for comparison.

    .venv/bin/python -m benchmarks.intake_headers [--ignore-answer] [--unguarded]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests

from contingency.cli.components import intake_argv
from contingency.runtime.processes import StartupError, free_port, http_ok, wait_until

HEADER_BYTES = 256 * 1024 * 1024
CHUNK = 64 * 1024
MB = 1024 * 1024


def status_kb(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def start_intake(state_dir: Path, unguarded: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port, dead = free_port(), free_port()
    argv = intake_argv("127.0.0.1", port)  # what `contingency intake` execs
    if unguarded:
        i = argv.index("--http")
        del argv[i : i + 2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env |= {
        "PREFECT_API_URL": f"http://127.0.0.1:{dead}/api",
        "PREFECT_CLIENT_MAX_RETRIES": "0",
        "CONTINGENCY_STATE_DIR": str(state_dir),
        "CONTINGENCY_WEBHOOK_TOKEN": "bench-token",
    }
    proc = subprocess.Popen([*argv, "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/healthz"), "intake", 60)
    except StartupError:
        proc.kill()
        raise
    return proc, url


def big_header_attack(
    url: str, total: int = HEADER_BYTES, ignore_answer: bool = False, timeout_s: float = 120
) -> tuple[bytes, int, float]:
    """Stream one ``total``-byte header; return (answer bytes, bytes sent, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    answer, sent, start = b"", 0, time.monotonic()
    chunk = b"a" * CHUNK
    try:
        sock.sendall(b"POST /webhook/generic HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < total and time.monotonic() - start < timeout_s:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and not ignore_answer:
                break  # the intake answered (or closed): stop sending
            sock.sendall(chunk)
            sent += len(chunk)
        if sent >= total:
            sock.sendall(b"\r\nContent-Length: 0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        sock.settimeout(timeout_s)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError, OSError):
        pass
    finally:
        sock.close()
    return answer, sent, time.monotonic() - start


def measure(unguarded: bool, ignore_answer: bool) -> dict[str, float | str | int]:
    with tempfile.TemporaryDirectory(prefix="contingency-hdr-") as tmp:
        proc, url = start_intake(Path(tmp), unguarded)
        try:
            for _ in range(20):  # warm: the 401 path and /healthz
                requests.post(f"{url}/webhook/generic", json={}, timeout=5)
                requests.get(f"{url}/healthz", timeout=5)
            time.sleep(1.0)
            idle = status_kb(proc.pid, "VmRSS")
            reset_peak(proc.pid)
            samples: list[int] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    try:
                        samples.append(status_kb(proc.pid, "VmRSS"))
                    except (OSError, KeyError):
                        return
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            answer, sent, took = big_header_attack(url, ignore_answer=ignore_answer)
            time.sleep(0.2)
            done.set()
            sampler.join()
            peak = max([status_kb(proc.pid, "VmHWM"), *samples])
            still = requests.get(f"{url}/healthz", timeout=10).ok
        finally:
            proc.terminate()
            proc.wait(10)
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(no answer: reset)"
    return {
        "idle_kb": idle,
        "peak_kb": peak,
        "answer": status,
        "sent": sent,
        "seconds": took,
        "healthy_after": str(still),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--unguarded", action="store_true", help="plain uvicorn httptools")
    ap.add_argument("--ignore-answer", action="store_true", help="keep sending after it")
    args = ap.parse_args()
    r = measure(args.unguarded, args.ignore_answer)
    idle, peak = int(r["idle_kb"]), int(r["peak_kb"])
    print(f"protocol        {'httptools (unguarded)' if args.unguarded else 'GuardedHttpTools'}")
    print(f"idle RSS        {idle / 1024:8.1f} MB")
    print(f"peak RSS        {peak / 1024:8.1f} MB  (under the 256 MiB-header attack)")
    print(f"difference      {(peak - idle) / 1024:+8.1f} MB  (target: <= +20 MB)")
    print(f"ratio           {peak / idle:8.3f}")
    print(f"answer          {r['answer']}")
    print(f"bytes sent      {int(r['sent']):,} in {float(r['seconds']):.2f} s")
    print(f"healthy after   {r['healthy_after']}")


if __name__ == "__main__":
    main()
