"""The gate's watchdog: reminders, backup approvers, expiry and "alert cleared".

Runs in a thread of the paused flow process. At ``remind_after_s`` it reminds the
command center, at ``backup_after_s`` the backup approvers — each person with their
own still-valid one-time code, on their own channels only — and at ``abort_after_s``
it closes the gate as ``expired`` by resuming the run with the gate's secret nonce —
a timeout never approves. It also closes the gate as ``cleared`` when the intake tags
the run ``alert-resolved``.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from prefect.context import FlowRunContext

from tasks.prefect_api import get_client, resume_with_input

if TYPE_CHECKING:
    from tasks.gate.approval import GatePolicy

log = logging.getLogger("contingency.gate")
RESOLVED_TAG = "alert-resolved"


class GateWatch:
    def __init__(
        self,
        policy: GatePolicy,
        nonce: str,
        send: Callable[[str, dict[str, str]], None],
        codes: Callable[[], dict[str, str]],
        system_input: Callable[[str, str], dict[str, str]] | None = None,
    ) -> None:
        """``send(event, codes)`` pages; ``codes()`` is the gate's current person → code
        map (codes are per person: the pager sends each to its person only);
        ``system_input(decision, comment)``: the form's answer that closes it (default:
        the sign-off form's, carrying the nonce as its code)."""
        self.system_input = system_input
        self.policy = policy
        self.nonce = nonce
        self.send = send
        self.codes = codes
        self.started = time.monotonic()
        self._stop = threading.Event()
        ctx = FlowRunContext.get()
        self.run_id = ctx.flow_run.id if ctx and ctx.flow_run else None
        ctx_copy = contextvars.copy_context()  # Prefect settings and run context
        self._thread = threading.Thread(
            target=ctx_copy.run, args=(self._run,), name="gate-watch", daemon=True
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __enter__(self) -> GateWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _close(self, decision: str, comment: str) -> None:
        if self.run_id is None:
            return
        run_input = (
            self.system_input(decision, comment)
            if self.system_input is not None
            else {
                "decision": decision,
                "approver": "system",
                "code": self.nonce,
                "comment": comment,
            }
        )
        try:
            with get_client(sync_client=True) as client:
                resume_with_input(client, self.run_id, run_input)
        except Exception as exc:  # noqa: BLE001 - try again on the next tick
            log.warning("gate watch: could not close the gate (%s)", type(exc).__name__)

    def _resolved(self) -> bool:
        if self.run_id is None:
            return False
        try:
            with get_client(sync_client=True) as client:
                return RESOLVED_TAG in (client.read_flow_run(self.run_id).tags or [])
        except Exception:  # noqa: BLE001 - the API may be restarting
            return False

    def _run(self) -> None:
        p = self.policy
        steps = [(p.remind_after_s, "remind"), (p.backup_after_s, "backup")]
        tick = max(min(p.poll_s * 2, 2.0), 0.5)
        while not self._stop.wait(tick):
            elapsed = self.elapsed()
            while steps and elapsed >= steps[0][0]:
                _, step = steps.pop(0)
                event = "gate_reminder" if step == "remind" else "gate_backup"
                log.warning("gate watch: %s after %.0fs", event, elapsed)
                self.send(event, self.codes())
            if elapsed >= p.abort_after_s:
                self._close("expired", f"no decision within {p.abort_after_s:.0f}s")
            elif self._resolved():
                self._close("cleared", "the alert resolved while the gate waited")
