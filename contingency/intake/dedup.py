"""The intake's fast path for re-sent alerts: idempotency keys this replica has answered.

Prefect's flow-run idempotency key stays the source of truth (it is what makes several
replicas agree). This cache only short-circuits keys *this* replica already saw answered
by Prefect, so a re-send is acknowledged without an API round trip. It never answers a
key it has not seen answered, so it can never invent an incident; and entries live only
``ttl_s`` (30 s by default), so it cannot hide for long that a run died: the next re-send
after that goes to Prefect, and a dead run gets a successor (``starter.py``)::

    cache = AnsweredCache(max_entries=10_000, ttl_s=30)
    run_id = cache.get(alert.idempotency_key())
    if run_id is None:
        run_id = create_flow_run(...)            # Prefect decides new / duplicate
        cache.put(alert.idempotency_key(), run_id)
"""

from __future__ import annotations

import time
from collections import OrderedDict


class AnsweredCache:
    """Bounded LRU of idempotency key → flow run id, each entry valid for ``ttl_s``.

    ``max_entries <= 0`` disables it (every alert goes to Prefect).
    """

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 30.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float | None = None) -> str | None:
        """The flow run id answered for ``key``, or None (unknown, expired or disabled)."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        run_id, stored = entry
        if (time.monotonic() if now is None else now) - stored > self.ttl_s:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return run_id

    def put(self, key: str, run_id: str, now: float | None = None) -> None:
        """Record Prefect's answer for ``key``; the least recently used entry makes room."""
        if not self.enabled:
            return
        self._entries[key] = (run_id, time.monotonic() if now is None else now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
