"""Fault: the state directory's disk fills up while an incident waits at its gate.

The whole stack's state directory (Prefect's SQLite database, the fork server's socket
and pid files, logs, reports, the lab inbox) lives on a real 256 MiB ext4 filesystem,
loop-mounted for this test and filled to the last block with ``dd``. While it is full
nothing may die for good: after space comes back the gate is still there, an approval
acts once, the report is written, the lock is released and the next alert acts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contingency.cli.gates import decide, open_gates
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from tests.faults.test_reliability import _alert, _lock_free, _report, _restarts, _run
from tests.fixtures_stack import (
    Stack,
    approval_code,
    pointed_at,
    start_stack,
    stop_stack,
    wait_for,
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    image, mount = tmp_path / "state.img", tmp_path / "state"
    subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        with contextlib.suppress(Exception):
            stop_stack(mount)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "status=none"],
        check=False,
        capture_output=True,
    )
    # the last blocks, byte by byte, until the filesystem refuses
    with open(mount / "filler-tail", "ab") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    return filler


def test_full_state_disk_while_a_gate_waits_loses_nothing(small_disk: Path) -> None:
    stack: Stack = start_stack(small_disk)
    host = service_host(stack.settings, "report")
    with pointed_at(stack):
        crash_service(stack.settings, "report")
        run_id = _alert(stack, "report")
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 90, "gate")
        code = approval_code(stack, run_id)
        _fill(small_disk)
        free = os.statvfs(small_disk)
        assert free.f_bavail * free.f_frsize < 64 * 1024  # full: writes fail (ENOSPC)
        time.sleep(15)  # the gate waits on a full disk
        for name in ("filler", "filler-tail"):
            (small_disk / name).unlink()
        # The fork server, the run and the gate outlived the full disk.
        assert (small_disk / "run" / "forkserver.sock").exists()
        wait_for(lambda: _run(run_id).state.is_paused(), 30, "still waiting at the gate")
        before = _restarts(stack, "report")
        decide(run_id, "approve", "zhang.wei", code, "after the disk was freed")
        run = wait_for_run(run_id, timeout_s=90)
        assert run.state is not None and run.state.is_completed(), run.state
        assert _restarts(stack, "report") == before + 1
        assert "recovered" in _report(stack, run_id)
        wait_for(lambda: _lock_free("report"), 60, "lock of report released")
        # The next alert for the target acts: it reaches its own gate (not "joined").
        labctl(stack.settings, host, "kill", "report")
        nxt = _alert(stack, "report")
        wait_for(lambda: any(g.flow_run_id == nxt for g in open_gates()), 90, "next gate")
