"""Thin launcher the process worker runs for each flow run (standard library only).

It hands its stdin/stdout/stderr, environment and working directory to the fork
server (``contingency.forkserver``), which forks an interpreter that has already
imported Prefect and the flows — so a flow run starts in milliseconds instead of
paying ~1.5 s of imports. Signals are forwarded to the forked run and its exit code
is this process's exit code, so the worker's cancellation and crash detection work
unchanged. Without a fork server it execs ``python -m prefect.engine`` as usual.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

ENV = "CONTINGENCY_FORKSERVER"


def _fallback() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])  # noqa: S606


def main() -> int:
    path = os.environ.get(ENV)
    if not path:
        _fallback()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        _fallback()
    request = json.dumps(
        {"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}
    ).encode()
    socket.send_fds(sock, [struct.pack("!I", len(request)) + request], [0, 1, 2])
    replies = sock.makefile("rb")
    hello = replies.readline()
    if not hello:
        return 1
    pid = int(json.loads(hello)["pid"])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    done = replies.readline()
    return int(json.loads(done)["exit"]) if done else 1


if __name__ == "__main__":
    sys.exit(main())
