"""Security holds: a host under a security incident is left as it is — automatic
restarts, fencing and every other plan's changes wait (``remediations/rails.py``), so
evidence is not destroyed. Only the security-incident plan itself still acts.

A hold is a Prefect variable ``contingency_hold_<digest>`` (every machine sees it) set
when the security plan starts on a host; a person releases it
(``contingency security release HOST --as NAME``, the command center).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

PREFIX = "contingency_hold_"


class Hold(BaseModel):
    host: str
    run_id: str
    since: datetime
    reason: str = ""


def _name(host: str) -> str:
    return PREFIX + hashlib.sha256(host.encode()).hexdigest()[:20]


def hold(client: Any, host: str, run_id: str, reason: str) -> Hold:
    """Hold ``host`` for incident ``run_id`` (an existing hold is kept as it is)."""
    from prefect.client.schemas.actions import VariableCreate

    existing = read(client, host)
    if existing is not None:
        return existing
    new = Hold(host=host, run_id=run_id, since=datetime.now(UTC), reason=reason[:500])
    client.create_variable(
        VariableCreate(name=_name(host), value=new.model_dump(mode="json"), tags=["security"])
    )
    return new


def read(client: Any, host: str) -> Hold | None:
    var = client.read_variable_by_name(_name(host))
    if var is None or not isinstance(var.value, dict):
        return None
    try:
        return Hold.model_validate(var.value)
    except ValueError:
        return None


def read_all(client: Any) -> list[Hold]:
    from tasks.prefect_api import read_records

    return sorted(read_records(client, PREFIX, Hold), key=lambda h: h.since)


def release(client: Any, host: str) -> Hold | None:
    """Lift the hold on ``host``; the hold that was lifted (None: there was none)."""
    existing = read(client, host)
    if existing is not None:
        client.delete_variable_by_name(_name(host))
    return existing
