"""The inventory models: what they accept, what they refuse, the commands they build."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from inventory.models import (
    CommandsManager,
    HealthCheck,
    Host,
    HttpCheck,
    Inventory,
    Person,
    PlanName,
    Role,
    RoleName,
    RoutingRule,
    Service,
    SystemdManager,
    TcpCheck,
    VerifyPolicy,
)

HOST: dict[str, Any] = {"name": "web1", "address": "127.0.0.2", "user": "root", "key_secret": "k"}


def service(**changes: Any) -> Service:
    data: dict[str, Any] = {
        "name": "web",
        "host": "web1",
        "health": {"kind": "tcp", "port": 80},
        "manager": {"kind": "systemd", "unit": "nginx.service"},
    }
    return Service.model_validate({**data, **changes})


def test_host_defaults() -> None:
    host = Host.model_validate(HOST)
    assert (host.port, host.host_key, host.known_hosts, host.labels) == (22, None, None, {})


@pytest.mark.parametrize(
    "changes",
    [
        {"port": 0},
        {"port": 65536},
        {"user": "Root"},
        {"user": "x; rm -rf /"},
        {"name": "Web1"},
        {"name": "-web"},
        {"name": "a" * 64},
        {"key_secret": "../key"},
        {"host_key": "AAAAC3Nza"},
        {"host_key": "ssh-ed25519 !!not-base64"},
        {"host_key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
        {"password": "hunter2"},
    ],
)
def test_host_rejects(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Host.model_validate({**HOST, **changes})


@pytest.mark.parametrize(
    "key",
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNh= root@web1",
        "ssh-rsa AAAAB3NzaC1yc2E",
    ],
)
def test_host_key_shapes_accepted(key: str) -> None:
    assert Host.model_validate({**HOST, "host_key": key}).host_key == key


def test_models_are_frozen() -> None:
    host = Host.model_validate(HOST)
    with pytest.raises(ValidationError):
        host.port = 2222  # type: ignore[misc]


def test_health_check_is_chosen_by_kind() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(HealthCheck)
    assert adapter.validate_python({"kind": "tcp", "port": 22}) == TcpCheck(port=22)
    assert isinstance(adapter.validate_python({"kind": "http", "url": "https://x/"}), HttpCheck)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "ping"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "http", "url": "ftp://x/"})


def test_systemd_manager_commands() -> None:
    manager = SystemdManager(unit="app@1.service")
    assert manager.restart_commands() == ["systemctl restart app@1.service"]
    assert manager.status_command() == "systemctl is-active app@1.service"


@pytest.mark.parametrize("unit", ["nginx; reboot", "a$(id)", "x y", ""])
def test_systemd_unit_rejects_shell_characters(unit: str) -> None:
    with pytest.raises(ValidationError):
        SystemdManager(unit=unit)


def test_systemd_manager_commands_with_sudo() -> None:
    manager = SystemdManager(unit="nginx.service", sudo=True)
    assert manager.restart_commands() == ["sudo -n systemctl restart nginx.service"]
    assert manager.status_command() == "sudo -n systemctl is-active nginx.service"


def test_commands_manager_returns_a_copy() -> None:
    manager = CommandsManager(restart=["a", "b"], status="s")
    commands = manager.restart_commands()
    commands.append("c")
    assert manager.restart_commands() == ["a", "b"]
    assert manager.status_command() == "s"
    with pytest.raises(ValidationError):
        CommandsManager(restart=[])


def test_service_defaults() -> None:
    svc = service()
    assert svc.verify == VerifyPolicy()
    assert svc.requires_approval is False
    with pytest.raises(ValidationError):
        service(verify={"deadline_s": 0})


def test_roles_and_people_use_the_plan_role_names() -> None:
    assert Role(name="command_center").name is RoleName.command_center  # type: ignore[arg-type]
    assert Person(name="al", roles=["operations"]).roles == [RoleName.operations]  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        Person(name="al", roles=["boss"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        Person(name="al", notify=["https://hooks.example/abc"])


def test_routing_rule_defaults_and_regex_check() -> None:
    rule = RoutingRule(name="r", plan=PlanName.runbook)
    assert (rule.target, rule.target_label, rule.match, rule.match_re) == (None, "service", {}, {})
    with pytest.raises(ValidationError, match="bad regex"):
        RoutingRule(name="r", plan=PlanName.runbook, match_re={"a": "("})
    with pytest.raises(ValidationError):
        RoutingRule(name="r", plan="reboot")  # type: ignore[arg-type]


def test_inventory_lookups() -> None:
    inv = Inventory(
        hosts={"web1": Host.model_validate(HOST)},
        services={"web": service()},
        people={
            "al": Person(name="al", roles=[RoleName.command_center]),
            "bo": Person(name="bo", roles=[RoleName.operations]),
        },
    )
    assert inv.host("web1").address == "127.0.0.2"
    assert inv.service("web").host == "web1"
    assert [p.name for p in inv.members(RoleName.command_center)] == ["al"]
    assert inv.members(RoleName.user_service) == []
    with pytest.raises(KeyError, match="unknown host 'nope'"):
        inv.host("nope")
    with pytest.raises(KeyError, match="unknown service 'nope'"):
        inv.service("nope")
