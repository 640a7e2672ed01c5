import asyncio
from collections.abc import AsyncIterator

import pytest

from contingency.intake.limits import BodyTooLarge, TokenBucket, read_limited


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


def test_read_limited_by_header_and_by_bytes() -> None:
    assert asyncio.run(read_limited("3", _stream([b"abc"]), limit=3)) == b"abc"
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited("4", _stream([]), limit=3))
    with pytest.raises(BodyTooLarge):  # no Content-Length, too many bytes
        asyncio.run(read_limited(None, _stream([b"ab", b"cd"]), limit=3))


def test_token_bucket_burst_then_retry_after() -> None:
    bucket = TokenBucket(rate=2.0, burst=2)
    key = ("127.0.0.1", "/webhook/generic")
    assert bucket.take(key, now=0.0) == 0.0
    assert bucket.take(key, now=0.0) == 0.0
    wait = bucket.take(key, now=0.0)
    assert wait == pytest.approx(0.5)
    assert TokenBucket.retry_after(wait) == "1"
    assert bucket.take(key, now=0.5) == 0.0
    assert bucket.take(("10.0.0.2", "/webhook/generic"), now=0.0) == 0.0
    assert TokenBucket(rate=0, burst=0).take(key) == 0.0
