"""Background processes the stack starts: spawn detached, record pid, stop by group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests


class StartupError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def spawn(name: str, argv: list[str], env: dict[str, str], run_dir: Path) -> int:
    """Start ``argv`` in its own session, output to ``run_dir/<name>.log``; return pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        cwd=run_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    (run_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:  # a group leader: take its children too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pids(pids: list[int], grace_s: float = 8.0) -> None:
    """SIGTERM every process (group) at once, wait, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            _signal(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.1)


def stop_pid(pid: int, grace_s: float = 8.0) -> None:
    """SIGTERM the process (group), wait, then SIGKILL what is left."""
    stop_pids([pid], grace_s)


def stop_all(run_dir: Path, order: list[str]) -> list[str]:
    """Stop every recorded process, the ones named in ``order`` first; return names."""
    pidfiles = {p.stem: p for p in run_dir.glob("*.pid")} if run_dir.exists() else {}
    names = [n for n in order if n in pidfiles] + sorted(set(pidfiles) - set(order))
    pids = []
    for name in names:
        with contextlib.suppress(ValueError, OSError):
            pids.append(int(pidfiles[name].read_text().strip()))
    stop_pids(pids)
    for name in names:
        pidfiles[name].unlink(missing_ok=True)
    return names


def wait_until(
    check: Callable[[], bool], what: str, timeout_s: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - still starting
            pass
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StartupError(f"{what} did not become ready within {timeout_s:.0f}s{tail}")


def http_ok(url: str, auth: str | None = None) -> bool:
    """GET ``url``; ``auth`` is a Prefect auth string ``user:password`` (basic auth)."""
    basic = tuple(auth.split(":", 1)) if auth and ":" in auth else None
    return requests.get(url, timeout=2, auth=basic).ok  # type: ignore[arg-type]
