"""Game day through the real stack: the deployed `game-day` flow stops a lab service over
SSH, its probe sees it down and posts the alert to the real intake (drill=true), the
software-crash plan restarts it; time to detect and to recover are graded; nobody but
the command center could have been paged."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.deployments import run_deployment

from contingency.lab.inbox import read
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, cli

pytestmark = pytest.mark.integration

DEPLOYMENT = "game-day/game-day"


def test_game_day_stops_a_service_and_grades_detection_and_recovery(lab_stack: Stack) -> None:
    inbox = lab_stack.state_dir / "lab" / "inbox.jsonl"
    before = len(read(inbox))
    run = run_deployment(
        DEPLOYMENT,
        timeout=0,
        parameters={"scenario": "service-stop", "target": "api", "detect_target_s": 10,
                    "recover_target_s": 60},
    )  # fmt: skip
    final = wait_for_run(run.id, timeout_s=240)
    assert final.state is not None and final.state.is_completed(), final.state
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        text = next(str(a.data) for a in arts if a.key == "game-day-service-stop-api")
        incident = text.split("- incident: ")[1].split(" ")[0]
        inc = client.read_flow_run(uuid.UUID(incident))
    assert "PASS" in text and "time to detect" in text and "time to recover" in text
    assert inc.state is not None and inc.state.is_completed() and "drill" in inc.tags
    # a drill without a gate pages nobody (other incidents of the shared stack may page
    # meanwhile: only pages about this drill count; each page links its run)
    about = [m for m in read(inbox)[before:] if incident in str(m) or str(run.id) in str(m)]
    assert about == [], about
    # its result joins the drill trend `contingency stats` shows
    stats = cli(lab_stack, "stats", "--since", "1h")
    assert stats.returncode == 0, stats.stderr
    line = next(ln for ln in stats.stdout.splitlines() if "game-day-service-stop-api" in ln)
    assert "pass" in line and "+" in line, stats.stdout


def test_game_day_refuses_hosts_not_marked_for_drills(lab_stack: Stack, tmp_path) -> None:
    import shutil

    import yaml

    inv = tmp_path / "inventory"
    shutil.copytree(lab_stack.inventory, inv)
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())
    hosts["hosts"]["app1"]["labels"]["site"] = "production"
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    run = run_deployment(
        DEPLOYMENT, timeout=0,
        parameters={"scenario": "service-stop", "target": "api", "inventory_path": str(inv)},
    )  # fmt: skip
    final = wait_for_run(run.id, timeout_s=120)
    assert final.state is not None and final.state.name == "GameDayFailed"
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    text = next(str(a.data) for a in arts if a.key == "game-day-service-stop-api")
    assert "not a drill host" in text and "FAIL" in text
