"""The seam through which network and hardware plans tell people what happened.

``notify(inv, event, fields, roles)`` sends through `tasks.notify` when it is there and
always writes one ``NOTIFY`` log line, so the message is in the run's logs even when no
channel is configured. It never raises: a pager must not break a plan::

    notify(inv, "escalation", {"alert": "LinkDown", "target": "uplink-a",
                               "summary": "both uplinks down"}, roles=("operations",))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from inventory.models import Inventory, RoleName
from inventory.secrets import redact

log = logging.getLogger("contingency.notices")


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run
        return log


def notify(
    inv: Inventory,
    event: str,
    fields: dict[str, Any],
    roles: Iterable[str] = ("operations",),
) -> int:
    """Send ``event`` (a `tasks.notify` template) to ``roles``; return deliveries made."""
    wanted = tuple(RoleName(r) for r in roles)
    _logger().error(
        "NOTIFY %s to %s: %s on %s: %s",
        event,
        ",".join(r.value for r in wanted),
        fields.get("alert", "?"),
        fields.get("target", "?"),
        redact(str(fields.get("summary", ""))),
    )
    try:
        from tasks.notify import send

        return sum(d.ok for d in send(event, inv, {"link": "", **fields}, roles=wanted))
    except Exception as exc:  # noqa: BLE001 - never let paging break a plan
        log.warning("notify %s failed: %s", event, type(exc).__name__)
        return 0
