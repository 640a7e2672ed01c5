"""The three clocks of an incident, for its report and for `contingency stats`.

- time to acknowledge: the alert started firing → the incident flow started handling it;
- time to approve: each gate opened → approved (summed over the gates that approved);
- time to recover: the alert started firing → the plan finished with the target
  recovered (only for outcomes that mean recovered; otherwise None).

>>> from datetime import datetime, timedelta, UTC
>>> t0 = datetime(2026, 11, 1, tzinfo=UTC)
>>> incident_times(t0, t0 + timedelta(seconds=2), [], "recovered", t0 + timedelta(seconds=9))
IncidentTimes(acknowledge_s=2.0, approve_s=None, recover_s=9.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from inventory.outcomes import Outcome


class IncidentTimes(BaseModel):
    acknowledge_s: float | None = None
    approve_s: float | None = None
    recover_s: float | None = None

    def as_rows(self) -> dict[str, str]:
        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:.1f}s"

        return {
            "time to acknowledge": fmt(self.acknowledge_s),
            "time to approve": fmt(self.approve_s),
            "time to recover": fmt(self.recover_s),
        }


def incident_times(
    alert_start: datetime,
    handling_start: datetime,
    gates: Iterable[tuple[datetime, datetime, str]],
    outcome: str,
    ended: datetime,
) -> IncidentTimes:
    """``gates``: (opened, closed, status) of each sign-off gate. Pure."""
    approved = [(c - o).total_seconds() for o, c, status in gates if status == "approved"]
    return IncidentTimes(
        acknowledge_s=round(max((handling_start - alert_start).total_seconds(), 0.0), 3),
        approve_s=round(sum(approved), 3) if approved else None,
        recover_s=round((ended - alert_start).total_seconds(), 3)
        if Outcome.parse(outcome).recovers
        else None,
    )
