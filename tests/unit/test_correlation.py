"""Correlation as data: tests/unit/cases/correlation.yaml gives a topology and a burst of
alerts, and the incidents that must come out. The real dispatcher runs each case against
an in-memory stand-in for Prefect's flow runs (the end-to-end run on the network lab and
a real Prefect server is
tests/integration/test_network_e2e.py::test_a_cut_link_storm_is_one_incident_that_pages_each_role_once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from contingency.intake.dispatch import Dispatcher
from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outbox import Outbox
from contingency.intake.schemas import IncidentRef, fingerprint_of
from inventory.alert import Alert
from inventory.correlation import covering, parse_cause_tag
from inventory.loader import load_inventory
from inventory.models import Inventory

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "correlation.yaml").read_text())


class PrefectStandIn:
    """Flow runs in memory, keyed by idempotency key: what the dispatcher asks of Prefect."""

    def __init__(self, open_: list[dict[str, str]]) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.absorbed: dict[str, list[Alert]] = {}
        for i, o in enumerate(open_):
            self.runs[f"open-{i}"] = {
                "id": f"open-{i}",
                "tags": [f"cause:{o['cause']}"],
                "fingerprint": o["fingerprint"],
                "existing": True,
            }

    async def open_causes(self) -> dict[tuple[str, str], tuple[str, str]]:
        out = {}
        for run in self.runs.values():
            for tag in run["tags"]:
                if (cause := parse_cause_tag(tag)) is not None:
                    out.setdefault(cause, (run["id"], run["fingerprint"]))
        return out

    async def start(self, alert: Alert, join_open: bool = False, tags: Any = None,
                    work_queue: Any = None) -> IncidentRef:  # fmt: skip
        for run in self.runs.values():
            if run["fingerprint"] == alert.fingerprint:
                return IncidentRef(fingerprint=alert.fingerprint, status="firing",
                                   flow_run_id=run["id"], deduplicated=True)  # fmt: skip
        run_id = f"run-{len(self.runs)}"
        self.runs[run_id] = {"id": run_id, "tags": list(tags or []),
                             "fingerprint": alert.fingerprint, "existing": False}  # fmt: skip
        return IncidentRef(fingerprint=alert.fingerprint, status="firing", flow_run_id=run_id)

    async def record_absorbed(self, run_id: str, alerts: list[Alert]) -> None:
        self.absorbed.setdefault(run_id, []).extend(alerts)

    async def ended(self, run_ids: list[str]) -> dict[str, datetime]:
        return {}


def inventory_for(tmp_path: Path, case: dict[str, Any]) -> Inventory:
    doc = dict(CASES["topology"])
    if "correlation" in case:
        doc["correlation"] = case["correlation"]
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(doc))
    return load_inventory(tmp_path / "inv.yaml")


def alert(labels: dict[str, str]) -> Alert:
    return Alert(source="alertmanager", fingerprint=fingerprint_of(labels), labels=labels,
                 starts_at=datetime(2026, 12, 6, tzinfo=UTC))  # fmt: skip


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_correlation_case(case: dict[str, Any], tmp_path: Path) -> None:
    inv = inventory_for(tmp_path, case)
    alerts = [alert(a) for a in case["alerts"]]
    open_ = [
        {
            **o,
            "fingerprint": alerts[0].fingerprint
            if o["fingerprint"] == "SELF"
            else o["fingerprint"],
        }
        for o in case.get("open", [])
    ]
    prefect = PrefectStandIn(open_)
    box = Outbox(tmp_path / "outbox.sqlite")
    box.add([(a.model_dump_json(), a.priority, False, a.fingerprint) for a in alerts])
    dispatcher = Dispatcher(box, prefect, lambda: inv, IntakeMetrics())  # type: ignore[arg-type]
    assert asyncio.run(dispatcher.round()) is True

    got = []
    for run in prefect.runs.values():
        if (
            run["existing"]
            and run["id"] not in prefect.absorbed
            and not any(a.fingerprint == run["fingerprint"] for a in alerts)
        ):
            continue  # an incident open before the burst that nothing joined
        if run["existing"] and run["id"] in prefect.absorbed:
            continue  # counted below
        cause = next((t.removeprefix("cause:") for t in run["tags"]), None)
        got.append({"cause": cause, "absorbed": len(prefect.absorbed.get(run["id"], [])),
                    **({"existing": True} if run["existing"] else {})})  # fmt: skip
    key = lambda i: str(i["cause"])  # noqa: E731
    assert sorted(got, key=key) == sorted(case["incidents"], key=key)
    into_open = {
        next(t.removeprefix("cause:") for t in prefect.runs[r]["tags"]): len(a)
        for r, a in prefect.absorbed.items()
        if prefect.runs[r]["existing"]
    }
    assert into_open == case.get("absorbed_into_open", {})
    # every alert is accounted for once: an incident of its own, or absorbed
    assert box.counts().get("pending", 0) == 0
    assert sum(box.counts().values()) == len(alerts)


def test_covering_is_broadest_first(tmp_path: Path) -> None:
    inv = inventory_for(tmp_path, {})
    assert covering(("service", "web"), inv) == [
        ("link", "wan-a"), ("host", "h1"), ("service", "web")
    ]  # fmt: skip
    assert covering(("host", "h3"), inv) == [("host", "h3")]
    assert covering(("link", "wan-a"), inv) == [("link", "wan-a")]


def test_a_link_naming_an_unknown_host_behind_it_is_refused(tmp_path: Path) -> None:
    from inventory.errors import InventoryError

    doc = yaml.safe_load(yaml.safe_dump(CASES["topology"]))
    doc["links"]["wan-a"]["behind_hosts"] = ["h1", "nope"]
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(InventoryError, match="unknown host 'nope' behind link 'wan-a'"):
        load_inventory(tmp_path / "inv.yaml")
