"""Review and stats through the real stack: an incident runs (real crash, real SSH
restart), `contingency review` appends the review to its report file and artifact, the
`incident-review` flow takes the same review from its form (submitted through the API, as
the UI does), and `contingency stats` counts the incident and plots it."""

from __future__ import annotations

import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.deployments import run_deployment

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.stats import collect
from contingency.lab.launcher import crash_service
from contingency.runtime.waiting import wait_for_run
from tasks.prefect_api import resume_with_input
from tests.fixtures_stack import Stack, cli, wait_for

pytestmark = pytest.mark.integration


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(stack, *args)


@pytest.fixture
def incident(lab_stack: Stack) -> str:
    crash_service(lab_stack.settings, "web")
    labels = {"alertname": "ServiceDown", "service": "web", "test": uuid.uuid4().hex}
    resp = lab_stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=180)
    assert run.state is not None and run.state.is_completed(), run.state
    return run_id


def _report_versions(run_id: str) -> list[str]:
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{run_id}"]))
        )
    return [str(a.data) for a in arts]


def test_cli_review_appends_to_report_and_artifact(lab_stack: Stack, incident: str) -> None:
    before = (lab_stack.state_dir / "reports" / f"incident-{incident}.md").read_text()
    assert re.search(r"time to acknowledge\W+\d+\.\ds", before)
    assert re.search(r"time to recover\W+\d+\.\ds", before), before[:800]
    bad = _cli(
        lab_stack, "review", incident, "--as", "zhang.wei", "--category", "software",
        "--root-cause", "web crashed", "--action", "fix|nobody|2026-12-01",
    )  # fmt: skip
    assert bad.returncode == 1 and "owner 'nobody' is not a person" in bad.stderr
    ok = _cli(
        lab_stack, "review", incident, "--root-cause-category", "software",
        "--root-cause", "lab crash injected", "--went-well", "restarted in seconds",
        "--went-badly", "nobody saw it coming",
        "--action", "add a memory alert|wang.fang|2026-12-01",
        "--action", "write a runbook|li.na|2026-12-15",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    text = (lab_stack.state_dir / "reports" / f"incident-{incident}.md").read_text()
    assert text.startswith(before.rstrip("\n")) and "## Review" in text
    assert "| 1 | add a memory alert | wang.fang | 2026-12-01 |" in text
    assert "| 2 | write a runbook | li.na | 2026-12-15 |" in text
    assert "**went badly**: nobody saw it coming" in text
    versions = _report_versions(incident)
    assert len(versions) >= 2 and any(v == text for v in versions)


def test_cli_review_errors_are_clear(lab_stack: Stack, incident: str) -> None:
    args = ["--root-cause-category", "software", "--root-cause", "x y z"]
    unknown = _cli(lab_stack, "review", str(uuid.uuid4()), *args)
    assert unknown.returncode == 1 and "unknown run" in unknown.stderr
    assert "not a flow run id" in _cli(lab_stack, "review", "12; rm -rf /", *args).stderr
    date = _cli(lab_stack, "review", incident, *args, "--action", "fix|li.na|31.12.2026")
    assert date.returncode == 2 and "bad due date '31.12.2026'" in date.stderr
    cat = _cli(lab_stack, "review", incident, "--root-cause-category", "aliens",
               "--root-cause", "x y z")  # fmt: skip
    assert cat.returncode == 2 and "category" in cat.stderr and "software" in cat.stderr
    path = lab_stack.state_dir / "reports" / f"incident-{incident}.md"
    report = path.read_text()
    assert "## Review" not in report  # nothing was appended by the refused reviews
    path.unlink()  # reviewing from a machine without the file: the artifact is the source
    ok = _cli(lab_stack, "review", incident, *args)
    assert ok.returncode == 0, ok.stderr
    assert path.read_text().startswith(report.rstrip("\n")) and "## Review" in path.read_text()


def test_review_form_flow_appends_the_submitted_review(lab_stack: Stack, incident: str) -> None:
    run = run_deployment(
        "incident-review/incident-review", timeout=0,
        parameters={"incident_run_id": incident, "poll_s": 0.3},
    )  # fmt: skip

    def paused() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        return bool(state and state.is_paused())

    review = {
        "reviewer": "li.na", "category": "human", "root_cause": "a test killed it",
        "went_well": "", "went_badly": "", "actions": [],
    }  # fmt: skip
    wait_for(paused, 60, what="review form open")
    with get_client(sync_client=True) as client:  # an unknown reviewer is refused
        resume_with_input(client, run.id, {**review, "reviewer": "eve"})
    wait_for(paused, 60, what="review form open again")
    with get_client(sync_client=True) as client:
        resume_with_input(client, run.id, review)
    final = wait_for_run(run.id, timeout_s=60)
    assert final.state is not None and final.state.is_completed(), final.state
    text = (lab_stack.state_dir / "reports" / f"incident-{incident}.md").read_text()
    assert "by li.na" in text and "(human): a test killed it" in text and "by eve" not in text


def test_stats_counts_incidents_and_plots(lab_stack: Stack, incident: str, tmp_path) -> None:
    png = tmp_path / "ttr.png"
    res = _cli(lab_stack, "stats", "--since", "1d", "--plot", str(png))
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if "software_crash" in line)
    cells = row.split("│")  # plan, incidents, severity, success, TTR median, …
    assert int(cells[2].strip()) >= 1 and "IV:" in cells[3] and "s" in cells[5]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert _cli(lab_stack, "stats", "--since", "someday").returncode == 2
    # the record behind the row: the incident flow's typed summary
    [rec] = [r for r in collect(datetime.now(UTC) - timedelta(days=1)) if r.run_id == incident]
    assert rec.plan == "software_crash" and rec.ok and rec.outcome.recovers, rec
    assert rec.recover_s is not None and rec.recover_s > 0


def test_review_form_flow_refuses_an_unknown_incident(lab_stack: Stack) -> None:
    missing = str(uuid.uuid4())
    run = run_deployment(
        "incident-review/incident-review", timeout=0, parameters={"incident_run_id": missing}
    )
    final = wait_for_run(run.id, timeout_s=60)
    assert final.state is not None and final.state.is_failed(), final.state
    assert f"unknown run {missing}" in str(final.state.message)
