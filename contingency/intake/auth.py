"""HMAC-SHA256 signature checks for the intake (Grafana and generic webhooks).

Pure functions plus a small replay cache; no secret is ever logged or put in an error.
Grafana signs ``body`` or, with its timestamp header, ``timestamp + ":" + body`` (hex digest).
Grafana's timestamp header has no default name (the contact point's "Timestamp Header"
option), so the header to read must be a setting, not a constant.
The generic endpoint signs ``timestamp + "." + body`` and sends ``sha256=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence

from pydantic import SecretStr

from inventory.errors import SignatureError

SKEW_SECONDS = 300


def _digest(secret: SecretStr, message: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def _matches(secrets: Sequence[SecretStr], message: bytes, given: str) -> bool:
    ok = False
    for secret in secrets:  # check every secret so timing does not reveal which one matched
        ok |= hmac.compare_digest(_digest(secret, message).encode(), given.strip().lower().encode())
    return ok


def _check_timestamp(timestamp: str, now: float | None, skew: int) -> None:
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("timestamp is not unix seconds") from exc
    if abs((now if now is not None else time.time()) - ts) > skew:
        raise SignatureError(f"timestamp outside ±{skew} s")


def precheck_grafana(
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    skew: int = SKEW_SECONDS,
) -> None:
    """What can be checked before the body is read (the signature is over the body)."""
    if not signature:
        raise SignatureError("missing X-Grafana-Alerting-Signature")
    if timestamp is not None:
        _check_timestamp(timestamp, now, skew)


def precheck_generic(
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    skew: int = SKEW_SECONDS,
) -> None:
    """What can be checked before the body is read (the signature is over the body)."""
    if not signature or not signature.startswith("sha256="):
        raise SignatureError("missing or malformed X-Contingency-Signature (sha256=<hex>)")
    if timestamp is None:
        raise SignatureError("missing X-Contingency-Timestamp")
    _check_timestamp(timestamp, now, skew)


def verify_grafana(
    secrets: Sequence[SecretStr],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    skew: int = SKEW_SECONDS,
) -> None:
    if not signature:
        raise SignatureError("missing X-Grafana-Alerting-Signature")
    message = body
    if timestamp is not None:
        _check_timestamp(timestamp, now, skew)
        message = timestamp.encode() + b":" + body
    if not _matches(secrets, message, signature):
        raise SignatureError("bad signature")


def verify_generic(
    secrets: Sequence[SecretStr],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    skew: int = SKEW_SECONDS,
) -> str:
    """Verify and return the hex digest (the replay-cache key)."""
    if not signature or not signature.startswith("sha256="):
        raise SignatureError("missing or malformed X-Contingency-Signature (sha256=<hex>)")
    if timestamp is None:
        raise SignatureError("missing X-Contingency-Timestamp")
    _check_timestamp(timestamp, now, skew)
    given = signature.removeprefix("sha256=")
    if not _matches(secrets, timestamp.encode() + b"." + body, given):
        raise SignatureError("bad signature")
    return given.strip().lower()


class ReplayCache:
    """Signatures seen within the window; a second use is a replay. Bounded in size."""

    def __init__(self, window: int = 2 * SKEW_SECONDS, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._window = window
        self._max = max_entries

    def check_and_add(self, key: str, now: float | None = None) -> bool:
        """True when ``key`` is new (and records it); False when it is a replay."""
        now = time.monotonic() if now is None else now
        while self._seen and (
            next(iter(self._seen.values())) < now - self._window or len(self._seen) >= self._max
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True
