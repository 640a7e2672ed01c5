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
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
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
    "resume_with_input",
    "retry_api",
    "share_api_tls_context",
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


def share_api_tls_context() -> None:
    """Let every Prefect API client of this process share one verified TLS context.

    Prefect builds a fresh ``SSLContext`` for each client it makes, parsing the whole CA
    bundle (~25 ms of CPU); a flow run makes several before its first command, and the
    worker a few for every run it starts. Called once at a process's start (the fork
    server before it forks, the worker): the context Prefect asks for (the same CA
    file, verification unchanged) is built once; a changed bundle is read when the
    process restarts. Only Prefect's client module sees the change (other users of
    ``ssl`` are untouched), and a Prefect that builds its contexts differently simply
    pays the cost again."""
    import ssl
    import types

    import certifi
    from prefect.client import orchestration
    from prefect.settings import PREFECT_API_SSL_CERT_FILE

    if getattr(orchestration, "ssl", None) is not ssl:
        return  # not Prefect's module-level ``ssl`` (or already shared)
    real = ssl.create_default_context
    shared: dict[str, ssl.SSLContext] = {}

    def create_default_context(
        purpose: Any = ssl.Purpose.SERVER_AUTH,
        *,
        cafile: Any = None,
        capath: Any = None,
        cadata: Any = None,
    ) -> ssl.SSLContext:
        if (
            purpose is not ssl.Purpose.SERVER_AUTH
            or not isinstance(cafile, str)
            or capath
            or cadata
        ):
            return real(purpose, cafile=cafile, capath=capath, cadata=cadata)
        if cafile not in shared:  # Prefect never changes the verified context it gets
            shared[cafile] = real(cafile=cafile)
        return shared[cafile]

    shim = types.ModuleType("ssl")
    shim.__dict__.update(ssl.__dict__)
    shim.create_default_context = create_default_context  # type: ignore[attr-defined]
    orchestration.ssl = shim  # type: ignore[attr-defined]
    create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


def run_link(run_id: object) -> str:
    """The flow run's page in the Prefect UI ("" if no UI URL is configured)."""
    from prefect.utilities.urls import url_for

    try:
        return url_for("flow-run", obj_id=str(run_id)) or ""
    except Exception:  # noqa: BLE001 - a link is a nicety
        return ""


def create_record(client: object, name: str, value: BaseModel, tag: str) -> bool:
    """Store ``value`` as the Prefect variable ``name`` (a record: training session, plan
    review); False if a record of that name exists already (the same one, recorded once)."""
    from prefect.client.schemas.actions import VariableCreate

    if client.read_variable_by_name(name) is not None:  # type: ignore[attr-defined]
        return False
    client.create_variable(  # type: ignore[attr-defined]
        VariableCreate(name=name, value=value.model_dump(mode="json"), tags=[tag])
    )
    return True


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


FORM_WAIT_S = 10.0
BUSY_S = 60.0
"""How long an answer is sent again while Prefect's database is busy (HTTP 503)."""


_SEND_AGAIN = frozenset({408, 429, 502, 503})  # the codes Prefect's own client retries


def _send_again(exc: Exception) -> bool:
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code in _SEND_AGAIN
    return True  # a transport error: no answer reached us


def _why(exc: Exception) -> str:
    if isinstance(exc, PrefectHTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


@contextmanager
def _without_client_retries() -> Iterator[None]:
    """Prefect's client off its own retries (five, 2 to 32 s apart) for one call."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}):
        yield


def resume_with_input(
    client: object,
    run_id: UUID,
    run_input: Mapping[str, object],
    wait_s: float = FORM_WAIT_S,
    busy_s: float = BUSY_S,
) -> Any:  # noqa: ANN401 - Prefect's OrchestrationResult
    """Answer a paused run's form (a sign-off, triage or review); the server's result.

    Prefect marks a run Paused a moment before it stores the form's schema, and an
    answer in that window is refused with "Run input schema not found". The form is
    opening, not gone: the answer is sent again for up to ``wait_s`` seconds.

    On SQLite, Prefect answers 503 when another write landed while the resume's own
    transaction was reading (the run, the variables, the form): a race the next try
    usually wins, and one a busy stack can lose a few times running. Prefect's client
    would try five more times, 2 to 32 s apart; the answer is sent again every few
    hundred milliseconds instead, for up to ``busy_s`` seconds, then the 503 is raised.
    The other answers Prefect's client would retry (408, 429, 502, no answer at all) are
    sent again the same way."""
    now = time.monotonic()
    deadline, busy_deadline = now + wait_s, now + busy_s
    busy = 0
    while True:
        try:
            with _without_client_retries():
                result = client.resume_flow_run(run_id, run_input=dict(run_input))  # type: ignore[attr-defined]
        except (PrefectHTTPStatusError, httpx.TransportError) as exc:
            if not _send_again(exc) or time.monotonic() >= busy_deadline:
                raise
            busy += 1
            log.info("resume of %s: %s (%d); sending again", run_id, _why(exc), busy)
            time.sleep(random.uniform(0.1, 0.6))
            continue
        status = str(getattr(result.status, "value", result.status)).upper()
        reason = str(getattr(result.details, "reason", "") or "")
        if status == "ACCEPT" or "schema not found" not in reason.lower():
            return result
        if time.monotonic() >= deadline:
            return result
        time.sleep(0.2)
