"""The plan's own revision history (inventory/revisions.py), when its review is due
(tasks/report/plan_reviews.py), and section 6 of the plan document built from them."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from contingency.cli.plandoc import render
from inventory.loader import InventoryError, load_inventory
from inventory.revisions import current_version, from_git, history
from tasks.report.plan_reviews import PlanReview, next_due

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_changelog_is_the_history_newest_first() -> None:
    inv = load_inventory(LAB)
    found = history(inv.changelog, LAB)
    assert [e.version for e in found] == ["1.2", "1.1", "1.0"]
    assert found[0].by == "li.na" and found[0].change_zh == "增加事件分级、值班表与逐级升级"
    assert current_version(inv.changelog, LAB) == "1.2"


def test_the_products_own_git_log_is_never_the_plans_history() -> None:
    assert from_git(LAB) == []  # the example lives in this product's checkout
    assert current_version({}, LAB) == "unversioned"


def test_an_inventory_in_a_repository_of_its_own_gives_its_commits(tmp_path: Path) -> None:
    repo = tmp_path / "estate"
    (repo / "inventory").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "wang.fang@example.org")
    _git(repo, "config", "user.name", "Wang Fang")
    (repo / "inventory" / "hosts.yaml").write_text("hosts: {}\n")
    (repo / "README").write_text("not the inventory\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "First issue of the plan")
    (repo / "README").write_text("still not\n")
    _git(repo, "commit", "-q", "-am", "Unrelated to the plan")
    (repo / "inventory" / "hosts.yaml").write_text("hosts: {}\n# db-2 added\n")
    _git(repo, "commit", "-q", "-am", "Add db-2 to the estate")
    found = from_git(repo / "inventory")
    assert [e.change for e in found] == ["Add db-2 to the estate", "First issue of the plan"]
    assert found[0].by == "Wang Fang" and len(found[0].version) >= 7
    assert current_version({}, repo / "inventory") == found[0].version


def test_a_bad_changelog_entry_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "changelog.yaml").write_text(
        "changelog:\n  '2.0':\n    date: yesterday\n    by: li.na\n    change: ok change\n"
    )
    with pytest.raises(InventoryError) as exc:
        load_inventory(tmp_path)
    assert "changelog.yaml:3" in str(exc.value) and "date" in str(exc.value)


def _review(day: date, by: str = "zhang.wei") -> PlanReview:
    return PlanReview(id=f"{day:%Y%m%d}-x", version="1.2", date=day, by=by)


def test_when_the_next_review_is_due() -> None:
    today = date(2026, 12, 7)
    never = next_due([], today, 365)
    assert never.overdue and never.due == today and never.last is None
    recent = next_due([_review(date(2026, 6, 1)), _review(date(2026, 1, 1))], today, 365)
    assert recent.due == date(2027, 6, 1) and not recent.overdue and recent.days_left == 176
    late = next_due([_review(date(2025, 12, 1))], today, 365)
    assert late.overdue and late.due == date(2026, 12, 1) and late.days_left == -6


def test_section_6_in_both_languages() -> None:
    inv = load_inventory(LAB)
    reviews = [_review(date(2026, 11, 25))]
    zh = render(inv, "zh", inventory_path=LAB, reviews=reviews, review_days=365)
    six = zh.split("## 六、预案修订与更新", 1)[1]
    assert "| 版本 | 日期 | 修订人 | 修订内容 |" in six
    assert "| 1.0 | 2026-09-01 | 张伟 (Zhang Wei) | 预案首次发布（实验环境） |" in six
    assert "| 2026-11-25 | 张伟 (Zhang Wei) | 1.2 | — |" in six
    assert "当前版本：1.2。下次评审日期：2026-11-25" not in six  # due a year later
    assert "当前版本：1.2。下次评审日期：2027-11-25，每 365 天评审一次。" in six
    en = render(inv, "en", inventory_path=LAB, reviews=[], review_days=180)
    six = en.split("## 6. Revision and update", 1)[1]
    assert "| 1.2 | 2026-11-20 | 李娜 (Li Na) | Severity levels, duty roster" in six
    assert "No review recorded" in six and "The review is overdue since" in six
    offline = render(inv, "en", inventory_path=LAB, reviews=None)
    assert "Prefect API was not reachable" in offline.split("## 6.", 1)[1]
    assert "Next review" not in offline.split("## 6.", 1)[1]


def test_the_zh_document_says_each_schedule_in_the_plans_words() -> None:
    zh = render(load_inventory(LAB), "zh", inventory_path=LAB, reviews=[])
    five = zh.split("## 五、", 1)[1].split("## 六、", 1)[0]
    assert "Incident lifecycle" not in five and "Back up datasets" not in five
    assert "| plan-review-reminder | 预案定期评审提醒" in five
    assert "每周一 09:00，时区 Asia/Shanghai" in five
