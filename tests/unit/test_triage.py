"""Tech support's triage, pure: who may answer, what is a valid plan, target and level;
and the acknowledgement link every page carries."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from contingency.intake.board import render_ack_page
from inventory.loader import load_inventory
from inventory.settings import get_settings
from tasks.gate.triage import TriageInput, triage_description, triage_refusal
from tasks.notify import ack_line

LAB = Path(__file__).parents[2] / "inventory" / "examples" / "lab"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"person": "wang.fang", "plan": "software_crash", "target": "api"}, ""),
        ({"person": "li.na", "plan": "", "severity": "III"}, ""),  # command center, by hand
        ({"person": "chen.jie", "plan": "software_crash", "target": "api"}, "not a tech"),
        ({"person": "wang.fang", "plan": "reboot_all", "target": "api"}, "is not a plan"),
        ({"person": "wang.fang", "plan": "software_crash", "target": "nope"}, "not in the inv"),
        ({"person": "wang.fang", "plan": "runbook", "target": "api"}, "needs a known runbook"),
        ({"person": "wang.fang", "plan": "runbook:nope", "target": "api"}, "known runbook"),
        ({"person": "wang.fang", "plan": "", "severity": "V"}, "is not a level"),
    ],
)
def test_a_triage_answer_is_checked_against_the_inventory(answer: dict, why: str) -> None:
    inv = load_inventory(LAB)
    reason = triage_refusal(TriageInput(**answer), inv)
    assert (why in reason) if why else reason == ""


def test_the_form_lists_the_plans_runbooks_and_levels_in_both_languages() -> None:
    inv = load_inventory(LAB)
    en = triage_description("disk noises", "chen.jie", "db", inv, "en")
    assert "**chen.jie** reports: disk noises" in en and "`db`" in en
    assert "software_crash" in en and "- levels: I, II, III, IV" in en
    zh = triage_description("disk noises", "chen.jie", "", inv, "zh")
    assert "技术支持团队初步判断" in zh and "报告人指出的目标" not in zh


def test_every_page_carries_the_boards_acknowledgement_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("CONTINGENCY_INTAKE_URL", "https://contingency.example.org/")
    try:
        line = ack_line("r-1", "en")
        assert line == (
            "Acknowledge: https://contingency.example.org/ack/r-1 "
            "(or: contingency ack r-1 --as <your name>)"
        )
        assert ack_line("r-1", "zh").startswith("确认接警：https://contingency.example.org/ack/r-1")
    finally:
        get_settings.cache_clear()


def test_without_a_known_intake_the_page_says_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    get_settings.cache_clear()
    monkeypatch.delenv("CONTINGENCY_INTAKE_URL", raising=False)
    monkeypatch.setenv("CONTINGENCY_STATE_DIR", str(tmp_path))
    try:
        assert ack_line("r-1", "en") == "Acknowledge: contingency ack r-1 --as <your name>"
    finally:
        get_settings.cache_clear()


def test_the_ack_page_escapes_and_says_who_was_first() -> None:
    state = SimpleNamespace(name="Running")
    run = SimpleNamespace(
        id="r1", name="x", state=state, tags=["incident", "severity:II"],
        parameters={"alert": {"labels": {"alertname": "<b>x</b>"}}},
    )  # fmt: skip
    page = render_ack_page(run, "tok")
    assert "&lt;b&gt;x&lt;/b&gt;" in page and 'action="/board/ack"' in page
    assert "severity II" in page
    run.tags.append("acked-by:wang.fang")
    done = render_ack_page(run, "tok")
    assert "Already acknowledged by <b>wang.fang</b>" in done and "/board/ack" not in done
