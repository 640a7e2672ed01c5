"""One remediation per plan category; each module has ``handle(ctx) -> Outcome``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from inventory.models import PlanName

if TYPE_CHECKING:
    from remediations.context import IncidentContext, Outcome

# plan → "module:function"; a plan not listed here is reported as unsupported.
HANDLERS: dict[PlanName, str] = {
    PlanName.software_crash: "remediations.software_crash:handle",
    PlanName.network_outage: "remediations.network_outage:handle",
    PlanName.hardware_failure: "remediations.hardware_failure:handle",
    PlanName.data_loss: "remediations.data_loss:handle",
    PlanName.runbook: "remediations.runbook:handle",
}


def handler_for(plan: PlanName) -> Callable[[IncidentContext], Outcome] | None:
    path = HANDLERS.get(plan)
    if path is None:
        return None
    module, _, func = path.partition(":")
    return getattr(import_module(module), func)  # type: ignore[no-any-return]
