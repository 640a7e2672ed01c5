"""Report copies in a real SeaweedFS: a copy lands in the bucket (created if missing); a
real incident run (dry run through the real Prefect server) copies its report and lists
the copy; an unreachable bucket is listed in the report and the incident still completes;
`contingency review` copies the reviewed report again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from contingency.lab.s3 import S3Server
from contingency.runtime.processes import free_port
from contingency.runtime.waiting import wait_for_run
from inventory.datasets import BackupLocation
from inventory.settings import Settings
from tasks.report.copies import copy_report
from tasks.storage import Store
from tests.fixtures_s3 import KEY, KEY_ID
from tests.fixtures_stack import Stack

pytestmark = pytest.mark.integration

INCIDENT = """
import sys
from inventory.alert import Alert
from flows.incident import incident
state = incident(Alert(fingerprint=sys.argv[1], labels={"alertname": "ServiceDown",
                 "service": "web"}), dry_run=True, plan="software_crash", target="web",
                 return_state=True)
print("RUN", state.state_details.flow_run_id)
"""


def _s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "CONTINGENCY_REPORT_S3_ENDPOINT": endpoint,
        "CONTINGENCY_REPORT_S3_BUCKET": bucket,
        "CONTINGENCY_REPORT_S3_PREFIX": "reports",
        "CONTINGENCY_REPORT_S3_KEY_ID_REF": KEY_ID,
        "CONTINGENCY_REPORT_S3_KEY_REF": KEY,
        "CONTINGENCY_SECRET_TEST_S3_KEY_ID": "lab-access",
        "CONTINGENCY_SECRET_TEST_S3_KEY": "lab-secret-value",
    }


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}


def _incident(stack: Stack, s3: dict[str, str], tmp: Path) -> str:
    """One real incident run (dry run, so nothing changes) in its own process."""
    env = {
        **_clean_env(), **s3, "PREFECT_API_URL": stack.api_url,
        "PREFECT_API_AUTH_STRING": stack.auth, "PREFECT_HOME": str(tmp / "prefect-home"),
        "CONTINGENCY_STATE_DIR": str(stack.state_dir),
        "CONTINGENCY_INVENTORY": str(stack.inventory),
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", INCIDENT, uuid.uuid4().hex],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split("RUN ", 1)[1].split()[0]


def _object(endpoint: str, bucket: str, key: str) -> bytes:
    loc = BackupLocation(
        bucket=bucket, prefix="x", endpoint=endpoint, key_id_ref=KEY_ID, key_ref=KEY
    )
    store = Store.for_location(loc)
    return store.client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_copy_lands_in_a_new_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = f"r-{uuid.uuid4().hex[:12]}"  # does not exist yet
    settings = Settings(state_dir=tmp_path, **{k.lower()[12:]: v for k, v in _s3_env(
        s3_server.endpoint, bucket).items() if k.startswith("CONTINGENCY_REPORT")})  # fmt: skip
    copy = copy_report("incident-abc.md", "# Incident — recovered\n", settings)
    assert copy is not None and copy.ok and copy.url == f"s3://{bucket}/reports/incident-abc.md"
    got = _object(s3_server.endpoint, bucket, "reports/incident-abc.md")
    assert got == b"# Incident \xe2\x80\x94 recovered\n"


def test_unreachable_bucket_is_listed_quickly(s3_location: BackupLocation, tmp_path) -> None:
    settings = Settings(
        state_dir=tmp_path, report_s3_endpoint=f"http://127.0.0.1:{free_port()}",
        report_s3_bucket="reports", report_s3_key_id_ref=KEY_ID, report_s3_key_ref=KEY,
    )  # fmt: skip
    t0 = time.monotonic()
    copy = copy_report("incident-abc.md", "# r\n", settings)
    assert copy is not None and not copy.ok and "EndpointConnectionError" in str(copy.error)
    assert time.monotonic() - t0 < 20
    assert "lab-secret-value" not in str(copy.error) and "lab-access" not in str(copy.error)


def test_incident_copies_its_report_and_review_copies_it_again(
    lab_stack: Stack, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = f"r-{uuid.uuid4().hex[:12]}"
    s3 = _s3_env(s3_server.endpoint, bucket)
    run_id = _incident(lab_stack, s3, tmp_path)
    run = wait_for_run(run_id, timeout_s=30)
    assert run.state is not None and run.state.is_completed(), run.state
    text = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    key = f"reports/incident-{run_id}.md"
    assert f"## Report copy\n\n- copied to `s3://{bucket}/{key}`" in text
    copied = _object(s3_server.endpoint, bucket, key).decode()
    assert "time to acknowledge" in copied and text.startswith(copied)

    review = subprocess.run(
        [sys.executable, "-m", "contingency", "review", run_id, "--state-dir",
         str(lab_stack.state_dir), "--root-cause-category", "software", "--root-cause",
         "dry run for the copy test", "--action", "watch the bucket|wang.fang|2026-12-31"],
        env={**_clean_env(), **s3}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert review.returncode == 0, review.stderr
    assert f"copied to s3://{bucket}/{key}" in review.stdout
    again = _object(s3_server.endpoint, bucket, key).decode()
    assert "## Review" in again and "| 1 | watch the bucket | wang.fang | 2026-12-31 |" in again


def test_a_failed_copy_is_listed_and_the_incident_still_completes(
    lab_stack: Stack, s3_server: S3Server, tmp_path: Path
) -> None:
    s3 = _s3_env(f"http://127.0.0.1:{free_port()}", "reports")  # nothing listens there
    run_id = _incident(lab_stack, s3, tmp_path)
    run = wait_for_run(run_id, timeout_s=30)
    assert run.state is not None and run.state.is_completed(), run.state
    text = (lab_stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert "## Report copy" in text and "**upload failed**: EndpointConnectionError" in text
