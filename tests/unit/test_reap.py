"""Exit statuses of spawned children are never lost to ``subprocess``: a child reaped
by ``alive`` must not be waited for again by pid once a later child reuses that pid.
CPython drops a ``Popen`` the moment ``alive`` lets go of it, while its pid is still
free; one still referenced elsewhere (a traceback, a caller) is dropped later, and
``subprocess`` then polls that pid again — the case these tests make.

Real processes; the pid is reused on purpose through ``/proc/sys/kernel/ns_last_pid``
(root), as a long-running supervisor gets it after the pid counter wraps."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

from contingency.runtime import processes
from contingency.runtime.processes import _stat, alive, reap, spawn
from tests.fixtures_stack import wait_for

LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def _gone(pid: int) -> None:
    wait_for(lambda: not alive(pid), 10, f"{pid} gone")


def _spawn_as(pid: int, argv: list[str], run_dir: Path) -> int:
    """spawn() with the given pid: the kernel's last pid set just below it (another
    process forking at that moment may take it: tried again)."""
    for _ in range(50):
        LAST_PID.write_text(str(pid - 1))
        got = spawn("again", argv, dict(os.environ), run_dir)
        if got == pid:
            return got
        os.kill(got, signal.SIGKILL)
        _gone(got)
    raise AssertionError(f"pid {pid} could not be taken again")


def _zombie(pid: int) -> None:
    wait_for(lambda: (_stat(pid) or ("",))[0] == "Z", 10, f"{pid} exited, not yet reaped")


def test_a_reaped_childs_popen_knows_it(tmp_path: Path) -> None:
    first = spawn("first", ["sleep", "60"], dict(os.environ), tmp_path)
    held = processes._children[first]
    os.kill(first, signal.SIGKILL)
    _gone(first)
    assert held.returncode == -signal.SIGKILL
    assert os.waitstatus_to_exitcode(reap()[first]) == -signal.SIGKILL


def test_a_reused_pids_exit_status_reaches_reap(tmp_path: Path) -> None:
    first = spawn("first", ["sleep", "60"], dict(os.environ), tmp_path)
    held = processes._children[first]  # referenced elsewhere: dropped after the reap
    os.kill(first, signal.SIGKILL)
    _gone(first)
    reap()
    again = _spawn_as(first, ["sh", "-c", "sleep 0.3; exit 7"], tmp_path)
    del held  # dropped while the pid's new owner runs
    gc.collect()
    _zombie(again)
    # any later Popen runs subprocess's clean-up of the Popens it kept
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert not alive(again)
    status = reap().get(again)
    assert status is not None, "the exit status of the pid's new owner was taken"
    assert os.waitstatus_to_exitcode(status) == 7
