"""One module per plan category: facts in, a plan of typed actions out.

Each module has ``prepare(ctx) -> Plan | Verdict`` (and may have ``replan(ctx, pick)``
for an approver's pick and ``finish(ctx, plan, verdict)`` for its report section); the
executor (``remediations/executor.py``) runs every plan.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING

from inventory.models import PlanName

if TYPE_CHECKING:
    from remediations.context import IncidentContext, Verdict

# plan → module; a plan not listed here is reported as unsupported.
MODULES: dict[PlanName, str] = {
    PlanName.software_crash: "remediations.software_crash",
    PlanName.network_outage: "remediations.network_outage",
    PlanName.hardware_failure: "remediations.hardware_failure",
    PlanName.data_loss: "remediations.data_loss",
    PlanName.security_incident: "remediations.security_incident",
    PlanName.runbook: "remediations.runbook",
}


def handler_for(plan: PlanName) -> Callable[[IncidentContext], Verdict] | None:
    """``handler(ctx)``: the plan's remediation run by the executor."""
    from remediations import executor

    path = MODULES.get(plan)
    if path is None:
        return None
    return partial(executor.run, remediation=import_module(path))  # type: ignore[arg-type]
