"""An optional copy of each incident report in S3 (``CONTINGENCY_REPORT_S3_*``).

A failed copy never fails the incident or the review: it is logged (redacted) and listed
in the report itself, so whoever reads the report knows the bucket has no copy.

    copy = copy_report("incident-<run>.md", markdown, get_settings())
    markdown += copy.as_markdown() if copy else ""   # "## Report copy" section
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from inventory.secrets import redact
from inventory.settings import Settings

log = logging.getLogger(__name__)


class ReportCopy(BaseModel):
    """Where the copy went (``url``), or why it did not (``error``)."""

    url: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_markdown(self) -> str:
        line = (
            f"- copied to `{self.url}` (the copy ends before this section)"
            if self.ok
            else f"- **upload failed**: {self.error} — the report exists only here and in Prefect"
        )
        return f"\n## Report copy\n\n{line}\n"


def _logger() -> logging.Logger | logging.LoggerAdapter:  # type: ignore[type-arg]
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def copy_report(name: str, markdown: str, settings: Settings) -> ReportCopy | None:
    """Upload ``markdown`` as ``<prefix>/<name>``; None when no report bucket is set.
    Never raises: any failure (storage, missing secret, bad setting) becomes ``error``."""
    from tasks.storage import upload_report

    try:
        url = upload_report(name, markdown.encode("utf-8"), settings)
    except Exception as exc:  # noqa: BLE001 - a report copy must never fail the incident
        error = redact(f"{type(exc).__name__}: {exc}")[:300]
        _logger().warning("report copy to S3 failed: %s", error)
        return ReportCopy(error=error)
    if url is None:
        return None
    _logger().info("report copied to %s", url)
    return ReportCopy(url=url)
