"""Restore drills through the real stack: the deployed `restore-drill` flow restores the
lab's seeded backups (real SeaweedFS) into sandboxes on a real lab host, measures RTO and
RPO and publishes a table plus a keyed history per dataset; a missed target fails the
drill and notifies the command center."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.deployments import run_deployment

from contingency.lab.inbox import read
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, wait_for

pytestmark = pytest.mark.integration

DEPLOYMENT = "restore-drill/restore-drill"


def _artifacts(run_id: uuid.UUID) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in arts if a.key}


def test_scheduled_drill_restores_every_dataset_into_its_sandbox(lab_stack: Stack) -> None:
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(DEPLOYMENT)
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]  # type: ignore[union-attr]
    run = run_deployment(DEPLOYMENT, timeout=0)
    final = wait_for_run(run.id, timeout_s=180)
    assert final.state is not None and final.state.is_completed(), final.state
    arts = _artifacts(run.id)
    assert {"restore-drill", "drill-report-db", "drill-web-content"} <= set(arts)
    table = str(arts["restore-drill"].data)
    assert "report-db" in table and "pass" in table and "FAIL" not in table
    drills = lab_stack.state_dir / "lab" / "drills"
    assert list(drills.iterdir()) == []  # sandboxes cleaned
    # the generated plan document shows the latest drill results, in both languages
    for lang, word, passed in (
        ("en", "Latest drill", "| pass |"),
        ("zh", "最近的演练", "| 通过 |"),
    ):
        doc = subprocess.run(
            [sys.executable, "-m", "contingency", "plans", "doc", "--lang", lang,
             "--state-dir", str(lab_stack.state_dir)],
            capture_output=True, text=True, timeout=120, env=_clean_env(),
        )  # fmt: skip
        assert doc.returncode == 0, doc.stderr
        section = doc.stdout.split(word)[1]
        assert "| drill-report-db |" in section and passed in section, section[:800]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}


def test_missed_rpo_fails_the_drill_and_notifies(lab_stack: Stack, tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    shutil.copytree(lab_stack.inventory, inv)
    data = yaml.safe_load((inv / "datasets.yaml").read_text())
    data["datasets"]["report-db"]["rpo_s"] = 1  # every backup is older than a second
    (inv / "datasets.yaml").write_text(yaml.safe_dump(data))
    run = run_deployment(
        DEPLOYMENT,
        timeout=0,
        parameters={"datasets": ["report-db"], "inventory_path": str(inv)},
    )
    final = wait_for_run(run.id, timeout_s=180)
    assert final.state is not None and final.state.name == "DrillFailed", final.state
    assert "RPO missed" in (final.state.message or "")
    history = str(_artifacts(run.id)["drill-report-db"].data)
    assert "FAIL" in history and "RPO missed" in history

    def notified() -> bool:
        msgs = read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")
        return any(str(run.id) in str(m.get("message", "")) for m in msgs)

    wait_for(notified, 30, what="drill failure notification to the command center")
