"""The intake's dispatcher process: it stops when its intake's pipe closes, and its
counters reach the intake's /metrics once each, across restarts. The dispatching
itself is tested through the real stack (tests/faults/test_intake_faults.py)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from contingency.intake.dispatch_process import COUNTERS_FILE, DispatchProcess
from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outbox import Outbox
from contingency.runtime.processes import alive, free_port
from inventory.errors import CheckFailed
from inventory.settings import Settings


def _proc(tmp_path: Path) -> tuple[DispatchProcess, IntakeMetrics]:
    settings = Settings(state_dir=tmp_path)
    metrics = IntakeMetrics()
    return DispatchProcess(settings, Outbox(settings.outbox_path), metrics), metrics


def _write(proc: DispatchProcess, pid: int, started: float, absorbed: float) -> None:
    proc.counters_path.write_text(
        json.dumps(
            {
                "pid": pid,
                "counters": [
                    ["contingency_incidents_started", {"plan": "software_crash"}, started],
                    ["contingency_alerts_absorbed", {}, absorbed],
                ],
            }
        )
    )


def _value(metrics: IntakeMetrics, sample: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_counters_are_added_once_and_a_restarted_dispatcher_counts_on(tmp_path: Path) -> None:
    proc, metrics = _proc(tmp_path)
    started = 'contingency_incidents_started_total{plan="software_crash"}'
    _write(proc, 100, 3, 2)
    proc.sync_metrics()
    proc.sync_metrics()  # the same file read twice adds nothing
    assert _value(metrics, started) == 3
    assert _value(metrics, "contingency_alerts_absorbed_total") == 2
    _write(proc, 100, 5, 2)
    proc.sync_metrics()
    assert _value(metrics, started) == 5
    _write(proc, 200, 1, 4)  # a new dispatcher process counts from zero
    proc.sync_metrics()
    assert _value(metrics, started) == 6
    assert _value(metrics, "contingency_alerts_absorbed_total") == 6
    proc.counters_path.write_text("{not json")  # half-written never happens; still harmless
    proc.sync_metrics()
    assert _value(metrics, started) == 6


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DispatchProcess:
    """A dispatcher process whose Prefect API is a closed port (it keeps the alerts)."""
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    return _proc(tmp_path)[0]


def test_the_process_runs_publishes_its_counters_and_stops_with_its_pipe(
    offline: DispatchProcess, tmp_path: Path
) -> None:
    async def run() -> None:
        _write(offline, 1, 0, 0)  # a previous dispatcher's counters
        offline.start()
        assert offline._proc is not None
        pid = offline._proc.pid
        with pytest.raises(CheckFailed, match="starting"):  # not warmed up yet
            offline.ready()
        deadline = time.monotonic() + 60
        while json.loads((tmp_path / "intake" / COUNTERS_FILE).read_text())["pid"] != pid:
            assert time.monotonic() < deadline, "no counters file from the dispatcher"
            assert alive(pid)
            await asyncio.sleep(0.1)
        assert offline.ready() == f"dispatcher running (pid {pid})"
        offline.poke()
        assert alive(pid)
        began = time.monotonic()
        await offline.stop()
        assert not alive(pid)
        assert time.monotonic() - began < 10  # it stopped, it was not killed after 15 s

    asyncio.run(run())


def test_a_dead_dispatcher_is_started_again_on_the_next_poke_or_probe(
    offline: DispatchProcess,
) -> None:
    async def run() -> None:
        offline.start()
        assert offline._proc is not None
        first = offline._proc.pid
        os.kill(first, 9)
        offline._proc.wait(10)
        offline.start()  # what every stored post does before its poke
        second = offline._proc.pid
        assert second != first and alive(second)
        os.kill(second, 9)
        offline._proc.wait(10)
        with pytest.raises(CheckFailed, match="not running .exit code -9.; started again"):
            offline.ready()  # /readyz says so, and starts it again
        assert offline._proc.pid not in (first, second) and alive(offline._proc.pid)
        await offline.stop()

    asyncio.run(run())
