"""Runbooks (pure parts): loading errors with file, line and step; typed parameters;
quoting; the plan a dry run shows; routing; the plan document in both languages."""

from __future__ import annotations

import doctest
import textwrap
from pathlib import Path
from typing import Any

import pytest

import inventory.runbooks
from contingency.cli.plandoc import render as render_doc
from inventory.alert import Alert
from inventory.loader import InventoryError, load_inventory
from inventory.routing import route
from inventory.runbooks import Param, Runbook, parse_duration, render
from remediations.runbook import build_plan

LAB = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"
INV = load_inventory(LAB)


def _inv_with(tmp_path: Path, text: str) -> Path:
    for f in LAB.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "zz.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InventoryError) as err:
        load_inventory(_inv_with(tmp_path, text))
    return [f"{Path(p.file).name}:{p.line}: {p.field}: {p.message}" for p in err.value.problems]


def test_errors_name_file_line_and_step(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """\
        runbooks:
          rb:
            steps:
              - {name: one, kind: ssh, host: nope, command: 'true'}
              - {name: two, kind: ssh, service: ghost, command: 'true'}
              - {name: three, kind: probe, service: api}
              - {name: four, kind: ssh, host: app1}
              - {name: five, kind: sshh}
              - {name: six, kind: probe, service: api, command: ls}
              - {name: seven, kind: notify, role: operations}
              - name: eight
                kind: http
                url: ftp://x
              - {name: nine, kind: wait, on_failure: maybe}
        """,
    )
    assert errors == [
        "zz.yaml:4: runbooks.rb.steps.0.host: step 'one': unknown host 'nope' (not under hosts)",
        "zz.yaml:5: runbooks.rb.steps.1.service: step 'two': unknown service 'ghost' "
        "(not under services)",
        "zz.yaml:7: runbooks.rb.steps.3: step 'four': the ssh step needs command",
        "zz.yaml:8: runbooks.rb.steps.4.kind: step 'five': Input should be 'ssh', 'probe', "
        "'approval', 'notify', 'http', 'wait' or 'rolling'",
        "zz.yaml:9: runbooks.rb.steps.5: step 'six': the probe step takes no command",
        "zz.yaml:10: runbooks.rb.steps.6: step 'seven': the notify step needs message",
        "zz.yaml:13: runbooks.rb.steps.7.url: step 'eight': String should match pattern "
        "'^https?://'",
        "zz.yaml:14: runbooks.rb.steps.8.on_failure: step 'nine': Input should be 'stop', "
        "'continue' or 'escalate'",
    ]


def test_the_cli_validate_command_reports_runbook_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from contingency.cli import app

    path = _inv_with(
        tmp_path,
        "runbooks:\n  rb:\n    steps:\n      - {name: clean-tmp, kind: ssh, host: nope, "
        "command: 'true'}\n",
    )
    res = CliRunner().invoke(app, ["inventory", "validate", str(path)], env={"COLUMNS": "300"})
    assert res.exit_code == 1
    assert "zz.yaml:4: runbooks.rb.steps.0.host: step 'clean-tmp': unknown host 'nope'" in (
        res.output
    )
    ok = CliRunner().invoke(app, ["inventory", "validate", str(LAB)], env={"COLUMNS": "300"})
    assert ok.exit_code == 0 and f"{len(INV.runbooks)} runbooks" in ok.output


def test_parameter_and_placeholder_errors(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """\
        runbooks:
          rb:
            parameters:
              n: {type: int, default: lots}
              ok: {type: bool}
            steps:
              - {name: one, kind: ssh, host: app1, command: 'rm {what}'}
          rb2:
            parameters:
              c: {type: str, pattern: "[ab"}
              d: {type: duration, required: true, default: 5m}
              e: {type: int, choices: [1, two]}
            steps:
              - {name: one, kind: approval}
        """,
    )
    text = "\n".join(errors)
    assert "zz.yaml:4: runbooks.rb.parameters.n: Value error, default 'lots' is not an integer" in (
        text
    )
    assert "zz.yaml:10: runbooks.rb2.parameters.c: Value error, bad pattern '[ab'" in text
    assert "zz.yaml:11: runbooks.rb2.parameters.d: Value error, a required parameter" in text
    assert "zz.yaml:12: runbooks.rb2.parameters.e: Value error, choice 'two' is not an int" in text
    errors = _errors(
        tmp_path,
        "runbooks:\n  rb:\n    steps:\n      - {name: one, kind: ssh, host: app1, "
        "command: 'rm {what}'}\n",
    )
    assert errors == [
        "zz.yaml:4: runbooks.rb.steps.0: step 'one': {what} is not a declared parameter"
    ]


def test_routing_rules_are_checked_against_runbooks(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """\
        routing:
          - {name: z1, match: {a: b}, plan: runbook, runbook: clear-tmp, target: app1,
             params: {max_age_min: soon}}
          - {name: z2, match: {a: b}, plan: software_crash, runbook: clear-tmp, target: app1}
          - {name: z3, match: {a: b}, plan: runbook, runbook: ghost, target: app1}
          - {name: z4, match: {a: b}, plan: runbook, runbook: clear-tmp, target: app1,
             params: {evil: x}}
        """,
    )
    assert errors == [
        "zz.yaml:3: routing.0.params: runbook clear-tmp: parameter max_age_min: 'soon' is not "
        "an integer",
        "zz.yaml:4: routing.1.runbook: runbook 'clear-tmp' is set but the plan is "
        "'software_crash' (use plan: runbook)",
        "zz.yaml:5: routing.2.runbook: unknown runbook 'ghost' (not under runbooks)",
        "zz.yaml:7: routing.3.params: runbook clear-tmp: unknown parameters: evil",
    ]


def test_a_notify_role_must_be_in_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        "roles: {command_center: {}}\n"
        "runbooks:\n  rb:\n    steps:\n"
        "      - {name: tell, kind: notify, role: user_service, message: hi}\n"
    )
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    assert str(err.value).endswith(
        "inv.yaml:5: runbooks.rb.steps.0.role: step 'tell': unknown role 'user_service' "
        "(not under roles)"
    )


@pytest.mark.parametrize(
    ("spec", "raw", "value"),
    [
        ({"type": "int"}, "5", 5),
        ({"type": "int"}, 7, 7),
        ({"type": "float"}, "2.5", 2.5),
        ({"type": "bool"}, "yes", True),
        ({"type": "bool"}, "off", False),
        ({"type": "bool"}, False, False),
        ({"type": "duration"}, "1h30m", 5400.0),
        ({"type": "duration"}, "250ms", 0.25),
        ({"type": "duration"}, 90, 90.0),
        ({"type": "str", "choices": ["a", "b"]}, "b", "b"),
        ({"type": "int", "choices": [1, 2]}, "2", 2),
        ({"type": "str", "pattern": "[a-z]+"}, "abc", "abc"),
        ({"type": "int", "min": 0, "max": 10}, "10", 10),
    ],
)
def test_parameters_are_typed(spec: dict[str, Any], raw: Any, value: Any) -> None:
    got = Param.model_validate(spec).coerce("p", raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        ({"type": "int"}, "5; reboot", "'5; reboot' is not an integer"),
        ({"type": "int"}, 2.5, "is not an integer"),
        ({"type": "int"}, True, "is not an integer"),
        ({"type": "float"}, "nan", "is not a number"),
        ({"type": "bool"}, "maybe", "'maybe' is not a boolean"),
        ({"type": "duration"}, "5 minutes", "is not a duration"),
        ({"type": "duration"}, "-5s", "is not a duration"),
        ({"type": "str"}, {"a": 1}, "is not a string"),
        ({"type": "str", "choices": ["a", "b"]}, "c", "'c' is not one of ['a', 'b']"),
        ({"type": "str", "pattern": "[a-z]+"}, "abc; rm -rf /", "does not match [a-z]+"),
        ({"type": "int", "min": 0}, -1, "-1 is below 0"),
        ({"type": "duration", "max": 60}, "2m", "120 is above 60"),
    ],
)
def test_bad_parameter_values_are_refused(spec: dict[str, Any], raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match="parameter p: ") as err:
        Param.model_validate(spec).coerce("p", raw)
    assert message in str(err.value)


def test_resolve_defaults_required_and_unknown() -> None:
    rb = Runbook.model_validate(
        {
            "name": "rb",
            "parameters": {
                "n": {"type": "int", "default": 60},
                "who": {"type": "str", "required": True},
                "wait": {"type": "duration", "default": "2m"},
            },
            "steps": [{"name": "s", "kind": "ssh", "host": "h", "command": "echo {who} {n}"}],
        }
    )
    assert rb.resolve({"who": "x"}) == {"n": 60, "who": "x", "wait": 120.0}
    with pytest.raises(ValueError, match="parameter who is required"):
        rb.resolve({})
    with pytest.raises(ValueError, match="unknown parameters: evil"):
        rb.resolve({"who": "x", "evil": "1"})
    assert parse_duration("1d") == 86400


def test_values_are_shell_and_url_quoted() -> None:
    assert render("ls {p}", {"p": "$(reboot)"}) == "ls '$(reboot)'"
    assert render("echo {p}", {"p": "a'b"}) == "echo 'a'\"'\"'b'"
    assert render("sleep {d}", {"d": 90.0}) == "sleep 90"
    assert render("x {b}", {"b": True}) == "x true"
    url = render("http://h/x?q={q}", {"q": "a&b=c/../d"}, how="url")
    assert url == "http://h/x?q=a%26b%3Dc%2F..%2Fd"
    assert render("msg {q}", {"q": "a b"}, quote=False) == "msg a b"
    assert doctest.testmod(inventory.runbooks).failed == 0


def test_dry_run_plan_shows_every_command() -> None:
    rb = INV.runbooks["clear-tmp"]
    plan = build_plan(rb, "app1", rb.resolve({"max_age_min": 7}), INV)
    assert [(a.where, a.shown) for a in plan.actions] == [
        ("app1", 'mkdir -p "$LAB_HOST_DIR/tmp" && du -sk "$LAB_HOST_DIR/tmp"'),
        ("app1", 'find "$LAB_HOST_DIR/tmp" -type f -mmin +7 -print -delete'),
        ("app1", "health check of api"),
        ("(contingency)", "notify operations: Old temporary files (over 7 min) were cleared on "
                          "app1."),
    ]  # fmt: skip
    assert [a.description for a in plan.actions][:2] == [
        "show-usage (ssh)",
        "delete-old-files (ssh)",
    ]
    assert not plan.requires_approval
    rb = INV.runbooks["restart-report"]
    plan = build_plan(rb, "report", rb.resolve({"note": "all good"}), INV)
    assert plan.requires_approval
    assert [(a.where, a.shown) for a in plan.actions] == [
        ("db1", "labctl status report"),
        ("(contingency)", "sign-off by the command center"),
        ("db1", "labctl restart report"),
        ("db1", "wait until report is healthy (at most 20s)"),
        ("(contingency)", "notify user_service: The reporting service is back: all good."),
    ]


def test_routing_points_at_the_runbook() -> None:
    d = route(Alert(fingerprint="f", labels={"alertname": "DiskFull"}), INV)
    assert d.routed and d.plan == "runbook" and d.runbook == "clear-tmp" and d.target == "app1"
    d = route(Alert(fingerprint="f", labels={"alertname": "ReportStuck"}), INV)
    assert d.routed and d.runbook == "restart-report" and d.target == "report"


def test_plan_document_lists_every_runbook_in_both_languages() -> None:
    for lang, heading, signoff, colon in (
        ("en", "Runbook", "**sign-off**", ": "),
        ("zh", "处置手册", "**审批**", "："),
    ):
        doc = render_doc(INV, lang)
        for name, rb in INV.runbooks.items():
            assert f"{heading} `{name}`{colon}{rb.title[lang]}" in doc  # type: ignore[index]
            assert rb.text("description", lang) in doc
            assert all(f"`{s.name}`" in doc for s in rb.steps)
            assert all(f"`{p}`" in doc for p in rb.parameters)
        assert f"| 2 | `sign-off` | {signoff} |" in doc


def test_cli_plan_refuses_a_param_without_a_value() -> None:
    from typer.testing import CliRunner

    from contingency.cli import app

    res = CliRunner().invoke(
        app, ["plan", "runbook:clear-tmp", "--target", "app1", "--param", "max_age_min"]
    )
    assert res.exit_code == 2 and "--param takes NAME=VALUE" in res.output
