"""``GET /readyz``: can this intake start incidents right now?

``/healthz`` only says the process answers (liveness). Readiness runs named checks
concurrently, each bounded by a short timeout, and caches the verdict for about a second
so a storm of load-balancer probes costs Prefect at most one round of calls per second::

    readiness = Readiness({"prefect_api": check_api, "state_dir": check_dir}, ttl_s=1.0)
    ready, body = await readiness.verdict()   # 200 if ready else 503, body as JSON

A check returns a short detail on success and raises on failure. The answer never carries
an exception's message (it could hold an URL or a path with credentials): only a
``CheckFailed`` detail the check wrote itself, or the exception's type name.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import Worker, WorkerStatus

from inventory.errors import CheckFailed

Check = Callable[[], Awaitable[str]]
HEARTBEAT_S = 90.0
"""A worker whose last heartbeat is younger than this counts as live (Prefect workers beat
every 30 s by default)."""


def is_live(worker: Worker, now: datetime, heartbeat_s: float = HEARTBEAT_S) -> bool:
    """ONLINE, or a heartbeat within ``heartbeat_s`` (the server marks workers OFFLINE lazily)."""
    if worker.status == WorkerStatus.ONLINE:
        return True
    beat = worker.last_heartbeat_time
    if beat is None:
        return False
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return now - beat <= timedelta(seconds=heartbeat_s)


def live_workers(workers: Iterable[Worker], now: datetime | None = None) -> list[Worker]:
    now = now or datetime.now(UTC)
    return [w for w in workers if is_live(w, now)]


def probe_state_dir(path: Path) -> str:
    """Create, write and delete a temporary file in ``path``; ``CheckFailed`` naming the
    errno (``EROFS``, ``ENOSPC``, ``EACCES``, ``ENOENT`` ...) if the disk refuses."""
    try:
        fd, name = tempfile.mkstemp(prefix=".readyz-", dir=path)
        try:
            os.write(fd, b"ready\n")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        raise CheckFailed(f"state directory not writable ({code})") from None
    return "writable"


class Readiness:
    """Runs ``checks`` (name → async check) at most once per ``ttl_s``; concurrent probes
    share one run. Each check gets ``timeout_s``."""

    def __init__(
        self, checks: Mapping[str, Check], ttl_s: float = 1.0, timeout_s: float = 2.0
    ) -> None:
        self.checks = dict(checks)
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.runs = 0
        self._lock = asyncio.Lock()
        self._cached: tuple[float, bool, dict[str, Any]] | None = None

    async def _one(self, check: Check) -> dict[str, Any]:
        try:
            detail = await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            return {"ok": False, "detail": f"no answer within {self.timeout_s:g} s"}
        except CheckFailed as exc:
            return {"ok": False, "detail": exc.detail}
        except Exception as exc:  # noqa: BLE001 - a failed check is the answer, not an error
            return {"ok": False, "detail": type(exc).__name__}
        return {"ok": True, "detail": detail}

    async def verdict(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """(ready, body): body is ``{"ready": ..., "checks": {name: {ok, detail}}}`` plus
        ``"failing": [names]`` when not ready."""
        async with self._lock:
            clock = time.monotonic() if now is None else now
            if self._cached is not None and clock - self._cached[0] < self.ttl_s:
                return self._cached[1], self._cached[2]
            names = list(self.checks)
            results = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
            self.runs += 1
            checks = dict(zip(names, results, strict=True))
            failing = [n for n, r in checks.items() if not r["ok"]]
            body: dict[str, Any] = {"ready": not failing, "checks": checks}
            if failing:
                body["failing"] = failing
            stamp = time.monotonic() if now is None else now
            self._cached = (stamp, not failing, body)
            return not failing, body
