"""`contingency lab inbox --person NAME`: a person's own lab channel (their codes)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from contingency.cli import app
from contingency.lab.inbox import codes_for, person_path
from contingency.lab.launcher import LAB_CHANNELS
from inventory.loader import load_inventory
from tasks.notify import personal_channels

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"


def test_inbox_shows_one_persons_messages(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    rows = [
        {"path": "/person/zhang.wei", "title": "Sign-off needed", "message": "code: 123456"},
        {"path": "/person/li.na", "title": "Sign-off needed", "message": "code: 654321"},
        {"path": "/cc", "title": "Sign-off needed", "message": "sent personally"},
    ]
    (tmp_path / "lab" / "inbox.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    res = runner.invoke(
        app, ["lab", "inbox", "--person", "zhang.wei", "--state-dir", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert "123456" in res.output and "654321" not in res.output and "/cc" not in res.output
    res = runner.invoke(app, ["lab", "inbox", "--channel", "cc", "--state-dir", str(tmp_path)])
    assert res.exit_code == 0 and "sent personally" in res.output and "123456" not in res.output


def test_every_lab_command_center_member_has_an_own_inbox_channel() -> None:
    inv = load_inventory(EXAMPLE)
    for person in inv.people.values():
        if "command_center" not in person.roles:
            continue
        own = personal_channels(inv, person.name)
        assert own, f"{person.name} has no personal channel: they could not sign off"
        assert [f"/{LAB_CHANNELS[c]}" for c in own] == [person_path(person.name)]


def test_codes_for_picks_one_persons_codes_for_one_run(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.jsonl"
    rows = [
        {"path": "/person/zhang.wei", "message": "run run-a: code: 111111"},
        {"path": "/person/zhang.wei", "message": "run run-b: code: 222222"},
        {"path": "/person/li.na", "message": "run run-a: code: 333333"},
        {"path": "/person/zhang.wei", "message": "run run-a: reminder, code: 111111"},
        {"path": "/person/zhang.wei", "message": "run run-a: approved"},
    ]
    inbox.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert codes_for(inbox, "run-a", "zhang.wei") == ["111111", "111111"]
    assert codes_for(inbox, "run-b", "li.na") == []
    assert codes_for(tmp_path / "missing.jsonl", "run-a", "zhang.wei") == []
