"""The optional S3 copy of reports: off unless configured, and a failure is a value
(listed in the report), never an exception — no server needed for these cases."""

from __future__ import annotations

from pathlib import Path

from inventory.settings import Settings
from tasks.report.copies import ReportCopy, copy_report


def test_no_bucket_configured_means_no_copy(tmp_path: Path) -> None:
    assert copy_report("incident-x.md", "# r\n", Settings(state_dir=tmp_path)) is None


def test_missing_credentials_are_listed_not_raised(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CONTINGENCY_SECRET_NO_SUCH_REPORT_KEY", raising=False)
    settings = Settings(
        state_dir=tmp_path, report_s3_endpoint="http://127.0.0.1:9", report_s3_bucket="reports",
        report_s3_key_id_ref="no-such-report-key", report_s3_key_ref="no-such-report-key",
    )  # fmt: skip
    copy = copy_report("incident-x.md", "# r\n", settings)
    assert copy is not None and not copy.ok and copy.url is None
    assert "SecretNotFound" in str(copy.error) and "no-such-report-key" in str(copy.error)
    assert "**upload failed**" in copy.as_markdown()


def test_a_bad_bucket_name_is_listed_not_raised(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, report_s3_endpoint="http://127.0.0.1:9", report_s3_bucket="Bad_Name"
    )
    copy = copy_report("incident-x.md", "# r\n", settings)
    assert copy is not None and "ValidationError" in str(copy.error)


def test_markdown_of_a_copy() -> None:
    md = ReportCopy(url="s3://b/p/incident-x.md").as_markdown()
    assert md.startswith("\n## Report copy") and "`s3://b/p/incident-x.md`" in md
