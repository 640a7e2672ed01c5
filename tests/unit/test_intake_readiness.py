"""Pure parts of ``/readyz``: worker liveness, the state-directory probe on a real
directory, and the verdict (names, timeouts, no leaked messages, the 1 s cache). The real
processes are in tests/integration/test_intake_readiness.py."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import Worker, WorkerStatus

from contingency.intake.readiness import (
    CheckFailed,
    Readiness,
    is_live,
    live_workers,
    probe_state_dir,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def worker(status: WorkerStatus, beat_s_ago: float | None) -> Worker:
    beat = None if beat_s_ago is None else NOW - timedelta(seconds=beat_s_ago)
    return Worker(name="w", work_pool_id=uuid4(), status=status, last_heartbeat_time=beat)


def test_a_worker_is_live_if_online_or_it_beat_recently() -> None:
    assert is_live(worker(WorkerStatus.ONLINE, None), NOW)
    assert is_live(worker(WorkerStatus.OFFLINE, 30), NOW)
    assert not is_live(worker(WorkerStatus.OFFLINE, 120), NOW)
    assert not is_live(worker(WorkerStatus.OFFLINE, None), NOW)
    fleet = [worker(WorkerStatus.OFFLINE, 500), worker(WorkerStatus.OFFLINE, 10)]
    assert len(live_workers(fleet, NOW)) == 1


def test_state_dir_probe_writes_and_cleans_up(tmp_path: Path) -> None:
    assert probe_state_dir(tmp_path) == "writable"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckFailed, match=r"\(ENOENT\)"):
        probe_state_dir(tmp_path / "missing")


def test_verdict_names_failures_without_their_messages() -> None:
    async def ok() -> str:
        return "fine"

    async def refused() -> str:
        raise ConnectionError("http://user:s3cret@prefect/api refused")

    async def named() -> str:
        raise CheckFailed("no live worker in work pool 'p'")

    async def hangs() -> str:
        await asyncio.sleep(10)
        return "never"

    r = Readiness({"a": ok, "b": refused, "c": named, "d": hangs}, timeout_s=0.2)
    ready, body = asyncio.run(r.verdict())
    assert not ready and body["failing"] == ["b", "c", "d"]
    assert body["checks"]["a"] == {"ok": True, "detail": "fine"}
    assert body["checks"]["b"] == {"ok": False, "detail": "ConnectionError"}
    assert body["checks"]["c"]["detail"] == "no live worker in work pool 'p'"
    assert body["checks"]["d"]["detail"] == "no answer within 0.2 s"
    assert "s3cret" not in str(body)


def test_verdict_is_cached_and_shared_by_concurrent_probes() -> None:
    calls = 0

    async def slow_ok() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "ok"

    r = Readiness({"a": slow_ok}, ttl_s=1.0)

    async def storm() -> list[bool]:
        return [ready for ready, _ in await asyncio.gather(*(r.verdict() for _ in range(50)))]

    assert asyncio.run(storm()) == [True] * 50
    assert calls == 1
    asyncio.run(r.verdict(now=10**9))  # far later: checked again
    assert calls == 2
