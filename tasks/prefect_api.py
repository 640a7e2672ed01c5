"""Calls to the Prefect API that must survive an API outage (a server restart, a blip).

The end of an incident — releasing its target lock, publishing its report, tagging it —
must not be lost because the server was restarting at that moment: these calls retry
for a bounded time and then raise, so the reconciler finishes the story instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from prefect.exceptions import PrefectHTTPStatusError

log = logging.getLogger("contingency.api")
T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.HTTPError | OSError | TimeoutError)


def retry_api(fn: Callable[[], T], what: str, timeout_s: float = 120.0) -> T:
    """``fn()``, retried every 2 s while the API is unreachable, for ``timeout_s``.

    >>> retry_api(lambda: 42, "answer")
    42
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except Exception as exc:
            if not _transient(exc) or time.monotonic() > deadline:
                raise
            log.warning("%s: Prefect API unreachable (%s); retrying", what, type(exc).__name__)
            time.sleep(2)
