"""Runbooks (pure parts): loading errors with file, line and step; typed parameters;
quoting; the plan a dry run shows; routing; the plan document in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from contingency.plandoc import render as render_doc
from inventory.alert import Alert
from inventory.loader import InventoryError, load_inventory
from inventory.routing import route
from inventory.runbooks import render
from remediations.runbook import build_plan

LAB = Path("inventory/examples/lab")
INV = load_inventory(LAB)


def _inv_with(tmp_path: Path, runbooks: str) -> Path:
    for f in LAB.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "zz.yaml").write_text(runbooks)
    return tmp_path


def test_errors_name_file_line_and_step(tmp_path: Path) -> None:
    text = (
        "runbooks:\n"
        "  rb:\n"
        "    steps:\n"
        "      - {name: one, kind: ssh, host: nope, command: 'true'}\n"
        "      - {name: two, kind: ssh, service: ghost, command: 'true'}\n"
        "      - {name: three, kind: probe, service: api}\n"
    )
    with pytest.raises(InventoryError) as err:
        load_inventory(_inv_with(tmp_path, text))
    msg = str(err.value)
    assert "zz.yaml:4: runbooks.rb.steps.0.host: step 'one': unknown host 'nope'" in msg
    assert "zz.yaml:5: runbooks.rb.steps.1.service: step 'two': unknown service 'ghost'" in msg


def test_undeclared_placeholder_and_missing_command(tmp_path: Path) -> None:
    text = (
        "runbooks:\n  rb:\n    steps:\n"
        "      - {name: one, kind: ssh, host: app1, command: 'rm {what}'}\n"
    )
    with pytest.raises(
        InventoryError, match=r"zz.yaml:\d+: runbooks.rb.*\{what\} is not a declared"
    ):
        load_inventory(_inv_with(tmp_path, text))
    text = "runbooks:\n  rb:\n    steps:\n      - {name: one, kind: ssh, host: app1}\n"
    with pytest.raises(InventoryError, match="step 'one' \\(ssh\\) needs command"):
        load_inventory(_inv_with(tmp_path, text))


def test_parameters_are_typed_and_quoted() -> None:
    rb = INV.runbooks["clear-tmp"]
    assert rb.resolve({}) == {"max_age_min": 60}
    assert rb.resolve({"max_age_min": "5"}) == {"max_age_min": 5}
    with pytest.raises(ValueError, match="is not a int"):
        rb.resolve({"max_age_min": "5; reboot"})
    with pytest.raises(ValueError, match="below 0"):
        rb.resolve({"max_age_min": -1})
    with pytest.raises(ValueError, match="unknown parameters: evil"):
        rb.resolve({"evil": "x"})
    assert render("ls {p}", {"p": "$(reboot)"}) == "ls '$(reboot)'"


def test_dry_run_plan_shows_every_command() -> None:
    rb = INV.runbooks["clear-tmp"]
    plan = build_plan(rb, "app1", rb.resolve({"max_age_min": 7}), INV)
    commands = [a.command for a in plan.actions]
    assert 'find "$LAB_HOST_DIR/tmp" -type f -mmin +7 -print -delete' in commands
    assert "health check of api" in commands and not plan.requires_approval


def test_routing_points_at_the_runbook() -> None:
    d = route(Alert(fingerprint="f", labels={"alertname": "DiskFull"}), INV)
    assert d.routed and d.plan == "runbook" and d.runbook == "clear-tmp" and d.target == "app1"


def test_plan_document_lists_every_runbook_in_both_languages() -> None:
    for lang, heading in (("en", "Runbook"), ("zh", "处置手册")):
        doc = render_doc(INV, lang)
        for name, rb in INV.runbooks.items():
            assert f"{heading} `{name}`: {rb.title[lang]}" in doc  # type: ignore[index]
            assert all(f"`{s.name}`" in doc for s in rb.steps)
