"""The plan's revision and review (预案修订与评审) on the real stack: the command center's
`contingency plans review` round-trips through the Prefect API into `plans reviews` and
the plan document's section 6 with the inventory's own changelog, and the scheduled
`plan-review-reminder` flow pages the command center's channel in the lab inbox."""

from __future__ import annotations

import json
import uuid

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from contingency.lab.inbox import read
from tests.fixtures_stack import Stack, cli, wait_for


def test_review_is_recorded_listed_and_in_section_6_with_the_changelog(lab_stack: Stack) -> None:
    note = f"reviewed with the duty officers {uuid.uuid4().hex[:6]}"
    refused = cli(lab_stack, "plans", "review", "--as", "wang.fang", "--note", note)
    assert refused.returncode == 2 and "not a command-center member" in refused.stderr
    ok = cli(lab_stack, "plans", "review", "--as", "zhang.wei", "--note", note)
    assert ok.returncode == 0, ok.stderr
    assert "review of version 1.2 by zhang.wei" in ok.stdout  # the changelog's newest
    listed = json.loads(cli(lab_stack, "plans", "reviews", "--json").stdout)
    mine = [r for r in listed["reviews"] if r["note"] == note]
    assert len(mine) == 1 and mine[0]["version"] == "1.2" and mine[0]["by"] == "zhang.wei"
    assert listed["next"]["overdue"] is False and listed["next"]["days_left"] == 365
    zh = cli(lab_stack, "plans", "doc", "--lang", "zh")
    assert zh.returncode == 0, zh.stderr
    section = zh.stdout.split("## 六、预案修订与更新", 1)[1]
    assert "| 1.2 | 2026-11-20 | 李娜 (Li Na) | 增加事件分级、值班表与逐级升级 |" in section
    assert section.index("| 1.2 |") < section.index("| 1.0 |")  # newest first
    assert note in section and "张伟 (Zhang Wei)" in section
    assert "当前版本：1.2。下次评审日期：" in section
    en = cli(lab_stack, "plans", "doc", "--lang", "en").stdout.split("## 6. ", 1)[1]
    assert "| 1.1 | 2026-10-15 | 王芳 (Wang Fang) | Two-person sign-off" in en
    assert "Current version: 1.2. Next review due:" in en


def test_the_scheduled_reminder_pages_the_command_center(lab_stack: Stack) -> None:
    inbox = lab_stack.state_dir / "lab" / "inbox.jsonl"
    before = len(read(inbox, "/cc"))
    run = run_deployment(
        "plan-review-reminder/plan-review-reminder", timeout=180,
        parameters={"warn_days": 400},  # past the 365-day interval: always within it
    )  # fmt: skip
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state is not None and state.is_completed(), state
    pages = wait_for(lambda: read(inbox, "/cc")[before:], timeout_s=30, what="a page to /cc")
    assert any("Plan review" in json.dumps(p, ensure_ascii=False) for p in pages), pages
    assert any("contingency plans review --as" in json.dumps(p) for p in pages), pages
