"""Component logs are rotated while their writer keeps them open (copytruncate)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from contingency.runtime.processes import rotate_logs

WRITER = """
import sys, time
with open(sys.argv[1], "ab", buffering=0) as fh:
    n = 0
    while True:
        fh.write(b"line %d " % n + b"x" * 1000 + b"\\n"); n += 1
        time.sleep(0.001)
"""


def test_rotation_under_a_live_writer(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    other = tmp_path / "intake.log"
    other.write_bytes(b"small\n")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log)])
    try:
        for _round in range(5):
            while not log.exists() or log.stat().st_size <= 64_000:
                time.sleep(0.01)
            assert rotate_logs(tmp_path, max_bytes=64_000, keep=3) == ["worker.log"]
        time.sleep(0.2)
        # the writer goes on at the new end of the truncated file, not at its old offset
        size = log.stat().st_size
        assert 0 < size < 64_000 + 200_000
        assert log.read_bytes().startswith(b"line ")
    finally:
        writer.kill()
        writer.wait()
    kept = sorted(p.name for p in tmp_path.glob("worker.log.*"))
    assert kept == ["worker.log.1", "worker.log.2", "worker.log.3"]  # the oldest dropped
    first = int((tmp_path / "worker.log.3").read_bytes().split()[1])
    newest = int((tmp_path / "worker.log.1").read_bytes().split()[1])
    assert first < newest  # .1 is the most recent rotated content
    assert other.read_bytes() == b"small\n"  # under the limit: untouched
    assert rotate_logs(tmp_path, max_bytes=10**9, keep=3) == []
