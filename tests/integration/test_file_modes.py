"""`contingency up` keeps the state directory to its owner: the directory 0700, and the
Prefect database, the secrets, the incident reports and the lab inbox 0600 — even when
the state directory existed before as 0755 and the caller's umask is 022."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contingency.runtime.stack import stack_client
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, start_stack, stop_stack, wait_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)  # as a careless operator (or an older version) left it
    old = os.umask(0o022)
    try:
        yield start_stack(state)
    finally:
        os.umask(old)
        with contextlib.suppress(Exception):
            stop_stack(state)


def test_state_dir_database_secrets_reports_and_inbox_are_owner_only(stack: Stack) -> None:
    state = stack.state_dir
    with stack_client(stack.settings):  # an unroutable alert: escalates, reports, notifies
        labels = {"alertname": "FileModeProbe", "t": uuid.uuid4().hex}
        resp = stack.post("/webhook/generic", {"alerts": [{"labels": labels}]})
        assert resp.status_code == 202, resp.text
        run_id = resp.json()["incidents"][0]["flow_run_id"]
        run = wait_for_run(run_id, timeout_s=180)
        assert run.state is not None and run.state.is_final(), run.state
    report = state / "reports" / f"incident-{run_id}.md"
    inbox = state / "lab" / "inbox.jsonl"
    wait_for(report.exists, 30, "the report file")
    wait_for(inbox.exists, 30, "the lab inbox")

    assert _mode(state) == 0o700
    db = state / "prefect" / "prefect.db"
    private = [db, report, inbox]
    private += [db.with_name("prefect.db-wal"), db.with_name("prefect.db-shm")]
    private = [p for p in private if p.exists()]
    assert db in private
    secrets = [p for p in (state / "secrets").rglob("*") if p.is_file()]
    assert {"webhook-token", "prefect-auth-string", "prefect-encryption-key"} <= {
        p.name for p in secrets
    }
    private += secrets
    private += list((state / "reports").glob("*.md"))
    modes = {str(p.relative_to(state)): oct(_mode(p)) for p in private}
    assert all(m == oct(0o600) for m in modes.values()), modes
    for sub in ("prefect", "secrets", "reports"):  # nothing there open to group or others
        loose = [
            str(p) for p in (state / sub).rglob("*") if _mode(p) & (stat.S_IRWXG | stat.S_IRWXO)
        ]
        assert loose == [], loose
