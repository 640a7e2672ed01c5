"""load_inventory: merging files, and every problem reported with file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from inventory.loader import InventoryError, Problem, load_inventory
from inventory.models import PlanName, RoleName, SystemdManager, TcpCheck

HOST = "{address: 127.0.0.2, user: root, key_secret: lab-ssh-key}"
WEB1 = "hosts:\n  web1:\n    address: x\n    user: root\n    key_secret: k\n"
"""Host web1 in block style on lines 1-5: a test's next line is line 6."""
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    return info.value.problems


def where(path: Path) -> list[tuple[str, int | None, str]]:
    """(file name, line, field) of each problem."""
    return [(Path(p.file).name, p.line, p.field) for p in problems(path)]


def only(path: Path) -> Problem:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


# --- good inventories ------------------------------------------------------------------


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "10-hosts.yaml",
        """\
        hosts:
          web1:
            address: 127.0.0.2
            port: 2222
            user: root
            key_secret: lab-ssh-key
            host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"
          db1: {address: 127.0.0.4, user: root, key_secret: lab-ssh-key}
        routing:
          - {name: crash, match: {alertname: ServiceDown}, plan: software_crash}
        """,
    )
    write(
        tmp_path,
        "20-services.yml",
        """\
        services:
          web:
            name: web
            host: web1
            health: {kind: http, url: "http://127.0.0.2:8080/health"}
            manager: {kind: commands, restart: ["labctl restart web"], status: "labctl status web"}
          db:
            host: db1
            health: {kind: tcp, port: 5432}
            manager: {kind: systemd, unit: postgresql.service}
        routing:
          - {name: disk, match: {alertname: DiskFailed}, plan: hardware_failure, target: db1}
        """,
    )
    write(
        tmp_path,
        "30-people.yaml",
        """\
        roles:
          command_center: {title_zh: 应急指挥中心, title_en: Command center, notify: [cc-channel]}
          operations: {}
        people:
          alice: {display_name: Alice, roles: [command_center], notify: [alice-im]}
          bob: {roles: [operations, command_center]}
        """,
    )
    write(tmp_path, "README.md", "hosts: not yaml, ignored\n")
    write(tmp_path, ".draft.yaml", "bogus: [\n")
    return tmp_path


def test_directory_merges_every_yaml_file(good_dir: Path) -> None:
    inv = load_inventory(good_dir)
    assert sorted(inv.hosts) == ["db1", "web1"]
    assert sorted(inv.services) == ["db", "web"]
    assert inv.hosts["web1"].port == 2222
    assert inv.services["db"].health == TcpCheck(port=5432)
    assert inv.services["db"].manager == SystemdManager(unit="postgresql.service")
    assert [p.name for p in inv.members(RoleName.command_center)] == ["alice", "bob"]
    assert inv.roles["command_center"].notify == ["cc-channel"]


def test_names_are_injected_from_keys(good_dir: Path) -> None:
    inv = load_inventory(str(good_dir))
    assert {name: h.name for name, h in inv.hosts.items()} == {"web1": "web1", "db1": "db1"}
    assert inv.roles["operations"].name is RoleName.operations
    assert inv.people["bob"].name == "bob"


def test_routing_concatenates_in_file_order(good_dir: Path) -> None:
    inv = load_inventory(good_dir)
    assert [(r.name, r.plan) for r in inv.routing] == [
        ("crash", PlanName.software_crash),
        ("disk", PlanName.hardware_failure),
    ]


def test_single_file(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yaml", f"hosts:\n  h1: {HOST}\n")
    assert list(load_inventory(path).hosts) == ["h1"]


def test_empty_file_and_empty_sections_are_fine(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "# nothing yet\n")
    write(tmp_path, "b.yaml", "hosts:\nrouting:\n")
    inv = load_inventory(tmp_path)
    assert (inv.hosts, inv.routing) == ({}, [])


def test_roles_not_declared_means_any_role_name_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "people:\n  al: {roles: [operations]}\n")
    assert load_inventory(path).people["al"].roles == [RoleName.operations]


# --- files and YAML --------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    problem = only(tmp_path / "nope")
    assert problem.message == "no such file or directory"


def test_directory_without_yaml(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "hello\n")
    assert "no *.yaml" in only(tmp_path).message


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", f"hosts:\n  h1: {HOST}\n")
    write(tmp_path, "b.yaml", "hosts:\n  h2:\n    address: [oops\n    user: root\n")
    problem = only(tmp_path)
    assert (Path(problem.file).name, problem.line) == ("b.yaml", 4)
    assert problem.message.startswith("invalid YAML:")


def test_yaml_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "hosts:\n  h1: {address: hunter2-secret\n")
    assert "hunter2" not in str(only(path))


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "- hosts\n- services\n")
    problem = only(path)
    assert problem.message.startswith("top level must be a mapping")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", f"hosts:\n  h1: {HOST}\nservers:\n  h2: {HOST}\n")
    problem = only(path)
    assert (problem.line, problem.field) == (3, "servers")
    assert "unknown top-level key" in problem.message


def test_section_of_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "hosts: [web1]\nrouting: {name: x}\n")
    assert where(path) == [("a.yaml", 1, "hosts"), ("a.yaml", 2, "routing")]


# --- duplicates -------------------------------------------------------------------------


def test_duplicate_name_across_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", f"hosts:\n  h0: {HOST}\n  web1: {HOST}\n")
    write(tmp_path, "b.yaml", f"# more hosts\nhosts:\n  web1: {HOST}\n")
    problem = only(tmp_path)
    assert (Path(problem.file).name, problem.line, problem.field) == ("b.yaml", 3, "hosts.web1")
    assert f"{first}:3" in problem.message


def test_duplicate_key_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", f"hosts:\n  web1: {HOST}\n  web1: {HOST}\n")
    problem = only(path)
    assert (problem.line, problem.field) == (3, "hosts.web1")
    assert "first at line 2" in problem.message


def test_duplicate_routing_rule_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "routing:\n  - {name: r1, plan: runbook}\n")
    rules = "  - {name: r2, plan: runbook}\n  - {name: r1, plan: runbook}\n"
    write(tmp_path, "b.yaml", "routing:\n" + rules)
    problem = only(tmp_path)
    assert (Path(problem.file).name, problem.line, problem.field) == ("b.yaml", 3, "routing.1.name")
    assert "a.yaml:2" in problem.message


# --- validation errors mapped to lines -------------------------------------------------

SERVICE = """\
hosts:
  web1: {address: 127.0.0.2, user: root, key_secret: lab-ssh-key}
services:
  web:
    host: %s
    health:
      kind: %s
      %s
    manager: {kind: commands, restart: ["labctl restart web"]}
"""


def test_nested_field_error_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE % ("web1", "tcp", "port: 70000"))
    problem = only(path)
    assert (problem.line, problem.field) == (8, "services.web.health.port")
    assert "65535" in problem.message


def test_union_tag_is_not_part_of_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE % ("web1", "http", "url: ftp://x"))
    assert where(path) == [("s.yaml", 8, "services.web.health.url")]


def test_missing_field_points_at_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE % ("web1", "tcp", "address: 127.0.0.9"))
    problem = only(path)
    assert (problem.line, problem.field) == (6, "services.web.health.port")
    assert problem.message == "Field required"


def test_unknown_host_in_service(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE % ("web9", "tcp", "port: 80"))
    problem = only(path)
    assert (problem.line, problem.field) == (5, "services.web.host")
    assert "unknown host 'web9'" in problem.message


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", WEB1 + "    adress: y\n")
    problem = only(path)
    assert (problem.line, problem.field) == (6, "hosts.web1.adress")


def test_name_must_equal_key(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", WEB1 + "    name: web2\n")
    problem = only(path)
    assert (problem.line, problem.field) == (6, "hosts.web1.name")
    assert "'web2'" in problem.message


def test_bad_name_key_points_at_key(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", f"hosts:\n  Web_1: {HOST}\n")
    assert where(path) == [("h.yaml", 2, "hosts.Web_1.name")]


def test_unknown_role_name(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "roles:\n  janitor: {}\n")
    assert where(path) == [("r.yaml", 2, "roles.janitor.name")]


def test_person_role_must_be_declared_when_roles_are(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "roles:\n  command_center: {}\n")
    write(
        tmp_path,
        "b.yaml",
        "people:\n  al:\n    roles:\n      - command_center\n      - operations\n",
    )
    assert where(tmp_path) == [("b.yaml", 5, "people.al.roles.1")]
    problem = only(tmp_path)
    assert "'operations' is not declared" in problem.message


def test_routing_target_must_exist(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        f"hosts:\n  web1: {HOST}\nrouting:\n  - {{name: a, plan: runbook, target: web1}}\n"
        "  - name: b\n    plan: runbook\n    target: ghost\n",
    )
    problem = only(path)
    assert (problem.line, problem.field) == (7, "routing.1.target")
    assert "'ghost'" in problem.message


def test_routing_rule_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        "routing:\n  - name: a\n    plan: reboot_all\n    match_re: {x: '('}\n  - just-a-string\n",
    )
    assert where(path) == [
        ("r.yaml", 3, "routing.0.plan"),
        ("r.yaml", 4, "routing.0.match_re"),
        ("r.yaml", 5, "routing.1"),
    ]


def test_all_problems_are_collected_in_order(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", SERVICE % ("web9", "tcp", "port: 0"))
    write(tmp_path, "b.yaml", "people:\n  al: {roles: [boss]}\nextra: 1\n")
    assert where(tmp_path) == [
        ("a.yaml", 5, "services.web.host"),
        ("a.yaml", 8, "services.web.health.port"),
        ("b.yaml", 2, "people.al.roles.0"),
        ("b.yaml", 3, "extra"),
    ]


def test_error_text_is_one_problem_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", SERVICE % ("web9", "tcp", "port: 0"))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}:5: services.web.host: unknown host 'web9' (not under hosts)"
    assert lines[1].startswith(f"{path}:8: services.web.health.port: ")
    assert len(lines) == 2


def test_problem_without_line_or_field() -> None:
    assert str(Problem(file="x.yaml", message="m")) == "x.yaml: m"


# --- secrets never in inventory ---------------------------------------------------------


def test_private_key_content_is_rejected_and_not_echoed(tmp_path: Path) -> None:
    key = textwrap.indent(FAKE_KEY, " " * 8)
    path = write(tmp_path, "h.yaml", f"{WEB1}    labels:\n      note: |\n{key}")
    problem = only(path)
    assert (problem.line, problem.field) == (7, "hosts.web1.labels.note")
    assert "private key" in problem.message
    assert "b3BlbnNzaC1r" not in str(InventoryError([problem]))


def test_private_key_in_a_routing_value(tmp_path: Path) -> None:
    rule = "{name: a, plan: runbook, match: {k: '-----BEGIN RSA PRIVATE KEY-----'}}"
    path = write(tmp_path, "r.yaml", f"routing:\n  - {rule}\n")
    assert where(path) == [("r.yaml", 2, "routing.0.match.k")]


@pytest.mark.parametrize("field", ["password", "api_token", "secret", "db-passwd", "apiKey"])
def test_secret_named_field_is_rejected_once(tmp_path: Path, field: str) -> None:
    path = write(tmp_path, "h.yaml", f"{WEB1}    {field}: hunter2\n")
    problem = only(path)
    assert (problem.line, problem.field) == (6, f"hosts.web1.{field}")
    assert "named like a secret" in problem.message
    assert "hunter2" not in problem.message


def test_secret_named_label_is_rejected_even_where_extra_keys_are_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", WEB1 + "    labels: {token: abc}\n")
    assert where(path) == [("h.yaml", 6, "hosts.web1.labels.token")]
    assert "abc" not in str(only(path))


def test_url_with_password_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.yaml", SERVICE % ("web1", "http", "url: 'http://admin:hunter2@web/health'")
    )
    problem = only(path)
    assert (problem.line, problem.field) == (8, "services.web.health.url")
    assert "hunter2" not in str(problem)


def test_secret_names_are_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        f"hosts:\n  web1: {HOST}\nroles:\n  command_center: {{notify: [cc-secret-url]}}\n",
    )
    inv = load_inventory(path)
    assert inv.hosts["web1"].key_secret == "lab-ssh-key"
    assert inv.roles["command_center"].notify == ["cc-secret-url"]


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = """\
    hosts:
      base: &base {address: x, user: root, key_secret: k, port: 0}
      copy: *base
      merged:
        <<: *base
        port: 22
    """
    path = write(tmp_path, "a.yaml", text)
    assert where(path) == [("a.yaml", 2, "hosts.base.port"), ("a.yaml", 3, "hosts.copy.port")]
    fixed = write(tmp_path, "b.yaml", textwrap.dedent(text).replace("port: 0", "port: 2"))
    inv = load_inventory(fixed)
    assert (inv.hosts["copy"].port, inv.hosts["merged"].port) == (2, 22)
