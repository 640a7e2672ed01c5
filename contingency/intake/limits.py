"""Request limits for the intake: a bounded streaming body reader and a per-source token bucket."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

from inventory.errors import BodyTooLarge

MAX_BODY_BYTES = 256 * 1024


async def read_limited(
    content_length: str | None, stream: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES
) -> bytes:
    """Read at most ``limit`` bytes; refuse early on a large Content-Length, never buffer more."""
    if content_length is not None:
        try:
            if int(content_length) > limit:
                raise BodyTooLarge(f"body over {limit} bytes")
        except ValueError:
            pass  # a malformed header: fall back to counting the bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class TokenBucket:
    """Per-key token buckets in memory: ``rate`` tokens a second, at most ``burst`` saved.

    ``take`` returns 0.0 when allowed, else the seconds until a token is available
    (for Retry-After). ``rate <= 0`` disables the limit.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self._max = rate, burst, max_keys
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str], now: float | None = None) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if key not in self._buckets and len(self._buckets) >= self._max:
                self._buckets.pop(next(iter(self._buckets)))
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
