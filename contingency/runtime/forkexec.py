"""Thin launcher the process worker runs for each flow run (standard library only).

It hands its stdin/stdout/stderr, environment and working directory to the fork
server (``contingency.runtime.forkserver``), which forks an interpreter that has already
imported Prefect and the flows — so a flow run starts in milliseconds instead of
paying ~1.5 s of imports. Signals are forwarded to the forked run and its exit code
is this process's exit code, so the worker's cancellation and crash detection work
unchanged — except that a signal from a worker that is merely shutting down (the run
is not being cancelled) detaches instead, so a restart of the worker never kills a run
waiting at a gate. Without a fork server it execs ``python -m prefect.engine``.
"""

from __future__ import annotations

import base64
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


def _cancelling() -> bool:
    """Is this run being cancelled? Asked of the API; when in doubt, say yes (Prefect's
    own behaviour: a signal from the worker stops the run)."""
    state = _run_state()
    return not state or state.get("type") in ("CANCELLING", "CANCELLED")


def _run_state() -> dict[str, object]:
    """This run's state from the API ({} if it cannot be read)."""
    import urllib.request  # here: it costs ~30 ms at every run's launch, used only here

    api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    run_id = os.environ.get("PREFECT__FLOW_RUN_ID", "")
    if not api.startswith(("http://", "https://")) or not run_id:
        return {}
    headers = {"Accept": "application/json"}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    url = f"{api}/flow_runs/{run_id}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - our API
            return dict(json.load(resp).get("state") or {})
    except (OSError, ValueError):
        return {}


def work_dir() -> str:
    """Where a flow run works: ``<the worker's state dir>/work`` (made if missing), so
    the pool's template names no path of any machine."""
    state = os.environ.get("CONTINGENCY_STATE_DIR") or os.path.expanduser("~/.contingency")
    path = os.path.join(state, "work")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def main() -> int:
    try:
        # Not the worker's temporary directory: under systemd the worker and the fork
        # server each have their own /tmp, and a run can outlive a restarted worker.
        os.chdir(work_dir())
    except OSError as exc:
        print(f"contingency-flow-run: no usable work directory: {exc}", file=sys.stderr)
        return 1  # the worker marks the run Crashed; the reconciler reports it
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
        if not _cancelling():
            # The worker is shutting down or restarting, not cancelling this run: the
            # run (perhaps waiting at a gate for hours) carries on without us.
            os._exit(0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    done = replies.readline()
    if done:
        return int(json.loads(done)["exit"])
    # The fork server died (or was restarted) under a running run: the run is not its
    # child's business any more — it carries on (perhaps at a gate). Wait for it like
    # its parent would, so the worker does not mark a live run Crashed.
    return _wait_orphan(pid)


def _wait_orphan(pid: int) -> int:
    """Wait until process ``pid`` (not our child) is gone; 0 if its run ended final."""
    import time

    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break  # a zombie waiting for its new parent: it has exited
        except OSError:
            break
        time.sleep(0.5)
    return 0 if _final_ok() else 1


def _final_ok() -> bool:
    """Did this run reach a final state other than Crashed (asked of the API)?"""
    state = _run_state()
    return state.get("type") in ("COMPLETED", "FAILED", "CANCELLED")


if __name__ == "__main__":
    sys.exit(main())
