"""Dry run of any plan from the CLI, through the deployed incident flow (the Prefect
API): the exact commands, and nothing changed."""

from __future__ import annotations

import json
import subprocess
import time

from contingency.lab.inbox import read
from inventory.loader import load_inventory
from tests.fixtures_stack import Stack, cli, service_pid


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(stack, *args, timeout=180)


def test_plan_dry_run_shows_commands_and_changes_nothing(lab_stack: Stack) -> None:
    url = load_inventory(lab_stack.inventory).service("web").health.url  # type: ignore[union-attr]
    before = service_pid(url)
    inbox = lab_stack.state_dir / "lab" / "inbox.jsonl"
    seen = len(read(inbox))
    proc = _cli(lab_stack, "plan", "software_crash", "--target", "web", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "labctl restart web" in proc.stdout and "dry_run" in proc.stdout
    assert service_pid(url) == before
    # A dry run pages nobody: the report lists each notification as not sent, and no
    # channel of the lab inbox got a word of it (the pager sends in the background).
    assert "dry run: not sent" in proc.stdout
    time.sleep(2)
    pages = [json.dumps(m) for m in read(inbox)[seen:]]
    assert not [p for p in pages if "DryRun" in p], pages


def test_plan_dry_run_refuses_unknown_targets(lab_stack: Stack) -> None:
    proc = _cli(lab_stack, "plan", "software_crash", "--target", "nope; rm -rf /")
    assert proc.returncode == 1
    assert "unknown target" in proc.stdout + proc.stderr
