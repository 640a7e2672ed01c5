"""Calls to the Prefect API that must survive an API outage (a server restart, a blip).

The end of an incident — releasing its target lock, publishing its report, tagging it —
must not be lost because the server was restarting at that moment: these calls retry
for a bounded time and then raise, so the reconciler finishes the story instead.

This is also the one module that touches Prefect's private API (``prefect.*._*``):
the leased concurrency slots behind target locks and the reconciler's mutex. The thin
wrappers below keep that dependency in one place; elsewhere, import them (and
``get_client``) from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
    from pydantic import BaseModel

__all__ = [
    "acquire_slots_with_lease",
    "get_client",
    "maintain_lease",
    "read_records",
    "release_slots_with_lease",
    "retry_api",
]

log = logging.getLogger("contingency.api")
T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")


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


# -- Prefect's private concurrency-lease API (prefect.concurrency._sync / ._leases) -------
# Imported when called, as before: the private modules load Prefect's concurrency
# machinery, which most importers of this module never use.


def acquire_slots_with_lease(
    names: list[str],
    slots: int,
    *,
    timeout_seconds: float | None = None,
    strict: bool = False,
    lease_duration: float = 300,
    holder: ConcurrencyLeaseHolder | None = None,
    suppress_warnings: bool = False,
) -> ConcurrencyLimitWithLeaseResponse:
    """Take ``slots`` of each named concurrency limit as a lease (``TimeoutError`` when
    none frees within ``timeout_seconds``); the response's ``lease_id`` releases it."""
    from prefect.concurrency._sync import acquire_concurrency_slots_with_lease

    return acquire_concurrency_slots_with_lease(
        names,
        slots,
        timeout_seconds=timeout_seconds,
        strict=strict,
        lease_duration=lease_duration,
        holder=holder,
        suppress_warnings=suppress_warnings,
    )


def release_slots_with_lease(lease_id: UUID) -> None:
    """Give back the slots held by a lease (raises if it is already gone)."""
    from prefect.concurrency._sync import release_concurrency_slots_with_lease

    release_concurrency_slots_with_lease(lease_id)


@contextmanager
def maintain_lease(
    lease_id: UUID, lease_duration: float, raise_on_lease_renewal_failure: bool = False
) -> Iterator[None]:
    """Renew a lease in the background for as long as the block runs."""
    from prefect.concurrency._leases import maintain_concurrency_lease

    with maintain_concurrency_lease(
        lease_id, lease_duration, raise_on_lease_renewal_failure=raise_on_lease_renewal_failure
    ):
        yield


def run_link(run_id: object) -> str:
    """The flow run's page in the Prefect UI ("" if no UI URL is configured)."""
    from prefect.utilities.urls import url_for

    try:
        return url_for("flow-run", obj_id=str(run_id)) or ""
    except Exception:  # noqa: BLE001 - a link is a nicety
        return ""


def read_records(client: object, prefix: str, model: type[M]) -> list[M]:
    """Every Prefect variable named ``<prefix>…`` whose value is a valid ``model``, in
    the API's order (the records kept as variables: follow-up actions, security holds,
    training sessions); a value that does not validate is skipped."""
    found = []
    for var in client.read_variables():  # type: ignore[attr-defined]
        if var.name.startswith(prefix) and isinstance(var.value, dict):
            try:
                found.append(model.model_validate(var.value))
            except ValueError:
                continue
    return found
