"""The typed summary of one incident: what `contingency stats` and ``/metrics`` read.

Written beside the markdown report as a Prefect table artifact (key
``incident-facts-<run id>``, one row) by the incident flow, and by the reconciler for a
run that died. Readers parse the row back into :class:`IncidentSummary`; nobody reads
figures out of the markdown.

>>> s = IncidentSummary(run_id="r1", plan="software_crash", outcome=Outcome.recovered,
...                     recover_s=9.5, gates=["approved"])
>>> IncidentSummary.from_row(s.row()).outcome.recovers, s.ok
(True, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, Field

from inventory.outcomes import Outcome

log = logging.getLogger("contingency.report")
KEY_PREFIX = "incident-facts-"


def summary_key(run_id: str) -> str:
    return f"{KEY_PREFIX}{run_id}"


class IncidentSummary(BaseModel):
    run_id: str
    plan: str = "unroutable"
    target: str = ""
    outcome: Outcome
    message: str = ""
    recover_s: float | None = None
    acknowledge_s: float | None = None
    approve_s: float | None = None
    gates: list[str] = Field(default_factory=list)
    """Each sign-off gate's ending (``approved``, ``rejected``, ``expired``, ...)."""
    steps: int = 0
    steps_failed: int = 0
    drill: bool = False
    dry_run: bool = False
    severity: str = ""
    """The severity level's name (``inventory/severity.py``); "" before levels existed."""

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def gates_expired(self) -> int:
        return sum(g == "expired" for g in self.gates)

    def row(self) -> dict[str, Any]:
        """One table row: scalars, lists as JSON text (the UI shows it as a table)."""
        data = self.model_dump(mode="json")
        data["gates"] = json.dumps(data["gates"])
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> IncidentSummary:
        data = dict(row)
        if isinstance(data.get("gates"), str):
            data["gates"] = json.loads(data["gates"] or "[]")
        data["outcome"] = Outcome.parse(str(data.get("outcome", "")))
        return cls.model_validate(data)


def publish_summary(summary: IncidentSummary, flow_run_id: Any = None) -> None:
    """The summary as the run's table artifact (``flow_run_id`` for a run that died)."""
    from prefect.artifacts import create_table_artifact

    if flow_run_id is None:
        create_table_artifact(
            table=[summary.row()],
            key=summary_key(summary.run_id),
            description=f"{summary.outcome}: incident facts",
        )
        return
    from prefect.client.schemas.actions import ArtifactCreate

    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=summary_key(summary.run_id),
                type="table",
                data=json.dumps([summary.row()]),
                description=f"{summary.outcome}: incident facts",
                flow_run_id=flow_run_id,
            )
        )


def parse_artifact(data: object) -> IncidentSummary | None:
    """The summary in a table artifact's data (a JSON list of one row), or None."""
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            return IncidentSummary.from_row(rows[0])
    except (ValueError, TypeError) as exc:
        log.warning("unreadable incident summary: %s", type(exc).__name__)
    return None


def state_outcome(state: Any) -> Outcome:
    """The outcome of a run without a summary (an old run, or one that died before it
    wrote one), from its final state: ``Interrupted`` → interrupted, any other crash →
    crashed, else the state's name (``Outcome.parse``: other names, ``Completed`` too,
    read ``failed``; a caller that knows better, e.g. ``ok`` from the state, says so).

    >>> from prefect.states import Crashed, Failed
    >>> [str(state_outcome(s)) for s in (Crashed(name="Interrupted"), Crashed(), None)]
    ['interrupted', 'crashed', 'crashed']
    >>> str(state_outcome(Failed(name="Escalated")))
    'failed'
    """
    name = str(getattr(state, "name", "") or "").lower()
    if name == Outcome.interrupted:
        return Outcome.interrupted
    if state is None or state.is_crashed():
        return Outcome.crashed
    return Outcome.parse(name)


def _filters(run_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
    """``read_artifacts`` arguments for the summaries of ``run_ids``, 50 keys a call
    (a few versions per key stay under the API's page of 200), newest version first."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    keys = [summary_key(str(r)) for r in run_ids]
    for i in range(0, len(keys), 50):
        yield {
            "artifact_filter": ArtifactFilter(key=ArtifactFilterKey(any_=keys[i : i + 50])),
            "sort": ArtifactSort.CREATED_DESC,
            "limit": 200,
        }


def _collect(artifacts: Iterable[Any], out: dict[str, IncidentSummary]) -> None:
    for a in artifacts:  # newest first: the first readable version of a key wins
        run_id = (a.key or "")[len(KEY_PREFIX) :]
        if run_id and run_id not in out and (s := parse_artifact(a.data)) is not None:
            out[run_id] = s


def read_summaries(client: Any, run_ids: Iterable[str]) -> dict[str, IncidentSummary]:
    """run id → its latest summary, for the runs that have one (sync client)."""
    out: dict[str, IncidentSummary] = {}
    for kwargs in _filters(run_ids):
        _collect(client.read_artifacts(**kwargs), out)
    return out


async def aread_summaries(client: Any, run_ids: Iterable[str]) -> dict[str, IncidentSummary]:
    """:func:`read_summaries` with an async client (the intake's ``/metrics``)."""
    out: dict[str, IncidentSummary] = {}
    for kwargs in _filters(run_ids):
        _collect(await client.read_artifacts(**kwargs), out)
    return out
