"""Wait at a pause for a typed decision, surviving API outages.

Like ``prefect.flow_runs.pause_flow_run(wait_for_input=...)`` but the poll loop
tolerates the API being down (a server restart, a network blip) for as long as the
gate lives, and polls every ``poll_s`` (default 0.5 s) so a decision resumes the flow
within about a second.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar, cast

import httpx
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused, State
from prefect.utilities.engine import propose_state_sync
from pydantic import ValidationError

from inventory.errors import (
    GateInterrupted,
)
from tasks.prefect_api import get_client

log = logging.getLogger("contingency.gate")
I = TypeVar("I", bound=RunInput)  # noqa: E741
API_ERRORS = (httpx.HTTPError, PrefectHTTPStatusError, OSError)


def _retry(what: str, fn, deadline: float):  # type: ignore[no-untyped-def]
    while True:
        try:
            return fn()
        except API_ERRORS as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("gate: %s: API unreachable (%s); retrying", what, type(exc).__name__)
            time.sleep(2)


def wait_for_input(form: type[I], key: str, timeout_s: float, poll_s: float = 0.5) -> I:
    """Pause the current flow run under ``key`` and return the submitted input."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        raise RuntimeError("a gate can only wait inside a flow run")
    run_id = ctx.flow_run.id
    state: State[Any] = Paused(
        timeout_seconds=int(timeout_s) + 300, reschedule=False, pause_key=key
    )
    keyset = keyset_from_paused_state(state)
    # Prefect's Keyset is a dict of three literal keys; StateDetails types it dict[str, str]
    state.state_details.run_input_keyset = cast(dict[str, str], keyset)
    deadline = time.monotonic() + timeout_s + 600
    with get_client(sync_client=True) as client:
        new = _retry(
            "pause", lambda: propose_state_sync(client, state, flow_run_id=run_id), deadline
        )
        if not new.is_running():
            if not new.is_paused():
                raise GateInterrupted(f"flow run could not pause: {new.type.value}")
            _retry("save form", lambda: form.save(keyset, flow_run_id=run_id), deadline)
            while True:
                time.sleep(poll_s)
                try:
                    current = client.read_flow_run(run_id).state
                except API_ERRORS as exc:
                    log.warning("gate: API unreachable (%s); still waiting", type(exc).__name__)
                    time.sleep(2)
                    continue
                if current is None or current.is_paused():
                    continue
                if current.is_running():
                    break
                raise GateInterrupted(f"flow run left the gate as {current.name}")
    try:
        return _retry("load decision", lambda: form.load(keyset, flow_run_id=run_id), deadline)
    except (ValidationError, ValueError, KeyError) as exc:
        # Resumed without a decision (the state forced to Running through the API):
        # not a decision, and never a silent death — the gate is interrupted.
        raise GateInterrupted(
            f"the run was resumed without a decision ({type(exc).__name__})"
        ) from None
