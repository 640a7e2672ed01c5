"""A second, fresh stack as a new install leaves it: the state directory existed as 0755,
the caller's umask is 022, and the plan's language is zh (CONTINGENCY_LANGUAGE=zh). One
stack for two things a user checks first (one start-up, not two):

- `contingency up` keeps the state directory to its owner: the directory 0700, and the
  Prefect database, the secrets, the incident reports and the lab inbox 0600;
- zh: the report's own words and the pages in the plan's terms (应急指挥中心, 事件时间线 …),
  the board, the acknowledgement page and the people's CLI messages, the alert's own text
  as it came.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.lab.inbox import read
from contingency.lab.launcher import crash_service
from contingency.runtime.stack import stack_client
from contingency.runtime.waiting import wait_for_run
from tests.fixtures_stack import Stack, cli, pointed_at, start_stack, stop_stack, wait_for


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("fresh-stack") / "state"
    state_dir.mkdir()
    state_dir.chmod(0o755)  # as a careless operator (or an older version) left it
    old = os.umask(0o022)  # the caller's, for the stack's whole life
    try:
        stack = start_stack(state_dir, extra_env={"CONTINGENCY_LANGUAGE": "zh"})
        with pointed_at(stack):
            yield stack
    finally:
        os.umask(old)
        stop_stack(state_dir)


def test_state_dir_database_secrets_reports_and_inbox_are_owner_only(fresh: Stack) -> None:
    state = fresh.state_dir
    with stack_client(fresh.settings):  # an unroutable alert: escalates, reports, notifies
        labels = {"alertname": "FileModeProbe", "t": uuid.uuid4().hex}
        resp = fresh.post("/webhook/generic", {"alerts": [{"labels": labels}]})
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


def test_a_zh_stack_reports_and_pages_in_chinese(fresh: Stack) -> None:
    crash_service(fresh.settings, "api")
    labels = {"alertname": "ServiceDown", "service": "api", "test": uuid.uuid4().hex}
    ref = fresh.post("/webhook/alertmanager", alertmanager_payload(labels)).json()
    run_id = ref["incidents"][0]["flow_run_id"]
    run = wait_for_run(run_id, timeout_s=180)
    assert run.state is not None and run.state.is_completed(), run.state
    report = (fresh.state_dir / "reports" / f"incident-{run_id}.md").read_text()
    assert report.startswith("# 事件报告 ServiceDown — 已恢复")
    for words in (
        "## 事件时间线",
        "## 执行的命令",
        "## 通知记录",
        "| 时间 (UTC) | 事件 | 详情 |",
        "- **严重级别**: IV 一般（120 分钟内报告应急指挥中心）",
        "| 收到告警 |",
    ):
        assert words in report, words  # fmt: skip
    assert "labctl restart api" in report  # commands stay as they ran
    inbox = fresh.state_dir / "lab" / "inbox.jsonl"
    pages = wait_for(
        lambda: [m for m in read(inbox, "/cc") if run_id in str(m.get("message"))], 30, "pages"
    )
    assert any(str(m["title"]).startswith("【IV 一般】事件已立案") for m in pages), pages
    link = f"确认接警：{fresh.intake_url}/ack/{run_id}（或执行：contingency ack {run_id}"
    assert any(link in str(m["message"]) for m in pages), pages
    user, _, password = fresh.auth.partition(":")
    board = requests.get(f"{fresh.intake_url}/board", auth=(user, password), timeout=30)
    assert board.status_code == 200 and "<h1>应急指挥看板</h1>" in board.text
    assert "值班" in board.text and "报告异常" in board.text
    ack = requests.get(f"{fresh.intake_url}/ack/{run_id}", auth=(user, password), timeout=30)
    assert "<h1>确认接警</h1>" in ack.text and "确认接警</button>" in ack.text
    zh = {"CONTINGENCY_LANGUAGE": "zh"}
    took = cli(fresh, "ack", run_id, "--as", "wang.fang", env=zh)
    assert took.returncode == 0 and f"事件 {run_id} 已由 wang.fang 确认接警" in took.stdout
    again = cli(fresh, "ack", run_id, "--as", "zhao.lei", env=zh)
    assert "已由 wang.fang 于" in again.stdout and "UTC 确认接警" in again.stdout
    duty = cli(fresh, "oncall", env=zh)
    assert duty.returncode == 0 and "值班" in duty.stdout and "联系方式" in duty.stdout
    bad = cli(fresh, "incident", "open", "--summary", " ", "--as", "nobody", env=zh)
    assert bad.returncode == 2 and "'nobody' 不在清单人员中" in bad.stderr
