"""Host groups and defaults (host → group → all), and hosts and groups imported from an
Ansible inventory in both its formats, with errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.ansible import expand
from inventory.errors import InventoryError
from inventory.loader import load_inventory

GROUPS = """\
host_groups:
  all:
    vars: {user: ops, key_secret: fleet-key, known_hosts: /etc/contingency/known_hosts,
           labels: {site: dc1, env: prod}}
  web:
    hosts: [web-1, web-2]
    vars: {port: 2222, user: www, labels: {tier: web}}
  eu:
    children: [web]
    vars: {port: 2200, labels: {site: eu-1}}
hosts:
  web-1: {address: 10.0.0.11}
  web-2: {address: 10.0.0.12, user: deploy, labels: {env: staging}}
  db-1: {address: 10.0.0.21}
"""


def test_a_host_takes_its_groups_then_all_and_its_own_values_win(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(GROUPS)
    inv = load_inventory(tmp_path)
    web1, web2, db1 = inv.hosts["web-1"], inv.hosts["web-2"], inv.hosts["db-1"]
    # web (a child of eu) beats eu, which beats all
    assert (web1.port, web1.user, web1.key_secret) == (2222, "www", "fleet-key")
    assert web1.labels == {"site": "eu-1", "env": "prod", "tier": "web"}
    assert web1.groups == ["eu", "web"] and web1.known_hosts == "/etc/contingency/known_hosts"
    assert web2.user == "deploy" and web2.labels["env"] == "staging"  # the host's own
    assert (db1.port, db1.user, db1.groups, db1.labels) == (
        22,
        "ops",
        [],
        {"site": "dc1", "env": "prod"},
    )


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("host_groups:\n  web:\n    hosts: [web-9]\n", ":3", "'web-9' is not a host"),
        ("host_groups:\n  eu:\n    children: [nope]\n", ":3", "'nope' is not a host group"),
        (
            "host_groups:\n  a: {children: [b]}\n  b: {children: [a]}\n",
            ":2",
            "children form a cycle: a → b → a",
        ),
        (
            "host_groups:\n  web: {hosts: [h]}\nhosts:\n  h: {address: x, groups: [web]}\n",
            ":4",
            "given by host_groups",
        ),
        ("host_groups:\n  all: {vars: {colour: red}}\n", ":2", "colour"),
    ],
)
def test_group_mistakes_are_load_errors_at_their_line(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    base = "hosts:\n  h: {address: x, user: u, key_secret: k}\n" if "hosts:" not in text else ""
    (tmp_path / "a.yaml").write_text(text)
    if base:
        (tmp_path / "b.yaml").write_text(base)
    with pytest.raises(InventoryError) as exc:
        load_inventory(tmp_path)
    line = next(str(p) for p in exc.value.problems if what in str(p))
    assert f"a.yaml{where}" in line


INI = """\
# the fleet
bastion ansible_host=192.0.2.1 ansible_user=admin

[web]
web[01:03] ansible_port=2222 tier=web

[web:vars]
ansible_user=www
http_port=80

[db]
db-1 ansible_host=10.0.0.21 contingency_key_secret=db-key

[prod:children]
web
db

[all:vars]
site=dc1
ansible_user=ops
"""

YAML = """\
all:
  hosts:
    bastion: {ansible_host: 192.0.2.1, ansible_user: admin}
  vars: {site: dc1, ansible_user: ops}
  children:
    prod:
      children:
        web:
          hosts:
            web[01:03]: {ansible_port: 2222, tier: web}
          vars: {ansible_user: www, http_port: 80}
        db:
          hosts:
            db-1: {ansible_host: 10.0.0.21, contingency_key_secret: db-key}
"""


@pytest.mark.parametrize(("name", "text"), [("hosts.ini", INI), ("hosts.yml", YAML)])
def test_an_ansible_inventory_imports_hosts_groups_children_and_vars(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / "ansible").mkdir()
    (tmp_path / "ansible" / name).write_text(text)
    (tmp_path / "inv.yaml").write_text(
        f"ansible:\n  path: ansible/{name}\n  known_hosts: /etc/contingency/known_hosts\n"
        "  key_secret: fleet-key\n"
    )
    inv = load_inventory(tmp_path)
    assert sorted(inv.hosts) == ["bastion", "db-1", "web01", "web02", "web03"]
    web = inv.hosts["web02"]
    assert (web.address, web.port, web.user, web.key_secret) == ("web02", 2222, "www", "fleet-key")
    assert web.labels == {"site": "dc1", "tier": "web", "http_port": "80"}
    assert web.groups == ["prod", "web"]
    assert web.known_hosts == "/etc/contingency/known_hosts"  # host keys stay pinned
    db = inv.hosts["db-1"]
    assert (db.address, db.key_secret, db.groups) == ("10.0.0.21", "db-key", ["db", "prod"])
    assert db.user == "ops"  # from Ansible's all
    bastion = inv.hosts["bastion"]
    assert (bastion.user, bastion.port, bastion.groups) == ("admin", 22, [])
    assert set(inv.host_groups) >= {"all", "web", "db", "prod"}
    assert inv.host_groups["prod"].children == ["db", "web"]


def test_ansible_mistakes_name_the_ansible_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text(
        "[web]\nweb-1\nWeb_2 ansible_port=22\n[web:children\n[db:oops]\nx-1 novalue\n"
    )
    (tmp_path / "inv.yaml").write_text("ansible: {path: hosts.ini, key_secret: k}\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(tmp_path / "inv.yaml")
    text = str(exc.value)
    ini = str(tmp_path / "hosts.ini")
    assert f"{ini}:3:" in text and "Web_2" in text  # not a valid host name: its line
    assert f"{ini}:4: bad section header" in text
    assert f"{ini}:5: unknown section kind 'oops'" in text
    assert "user" in text  # no ansible_user anywhere: the host's user is missing
    (tmp_path / "inv.yaml").write_text("ansible: {path: missing.ini}\n")
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "inv.yaml")


def test_host_ranges() -> None:
    assert expand("web[01:03].example.org") == [
        "web01.example.org", "web02.example.org", "web03.example.org"
    ]  # fmt: skip
    assert expand("db[8:10]") == ["db8", "db9", "db10"] and expand("plain") == ["plain"]


FLEET = """\
host_groups:
  all: {vars: {user: ops, key_secret: fleet-key, known_hosts: /etc/contingency/known_hosts}}
  web: {hosts: [web-1, web-2, web-3]}
hosts:
  web-1: {address: 10.0.0.11}
  web-2: {address: 10.0.0.12}
  web-3: {address: 10.0.0.13}
  db-1: {address: 10.0.0.21}
services:
  nginx:
    group: web
    health: {kind: http, url: "http://{address}:80/health"}
    manager: {kind: systemd, unit: nginx.service}
  exporter:
    hosts: [web-1, db-1]
    health: {kind: tcp, port: 9100}
    manager: {kind: systemd, unit: node-exporter.service}
routing:
  - {name: service-down, match: {alertname: ServiceDown}, plan: software_crash}
"""


def test_a_service_on_a_group_is_one_service_per_host(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(FLEET)
    inv = load_inventory(tmp_path)
    assert inv.instances == {"exporter": ["exporter.db-1", "exporter.web-1"],
                             "nginx": ["nginx.web-1", "nginx.web-2", "nginx.web-3"]}  # fmt: skip
    assert "nginx" not in inv.services  # only its instances are services
    two = inv.services["nginx.web-2"]
    assert (two.host, two.instance_of) == ("web-2", "nginx")
    assert two.health.url == "http://10.0.0.12:80/health"  # type: ignore[union-attr]
    assert inv.services["exporter.db-1"].host == "db-1"


@pytest.mark.parametrize(
    ("labels", "target"),
    [
        ({"instance": "web-2"}, "nginx.web-2"),
        ({"instance": "web-2:80"}, "nginx.web-2"),  # Prometheus: host:port
        ({"instance": "10.0.0.13:9113"}, "nginx.web-3"),  # or address:port
        ({"host": "web-1"}, "nginx.web-1"),
        ({"instance": "nope", "host": "web-3"}, "nginx.web-3"),  # the next label
    ],
)
def test_an_alert_names_one_instance(tmp_path: Path, labels: dict, target: str) -> None:  # type: ignore[type-arg]
    from inventory.alert import Alert
    from inventory.routing import route

    (tmp_path / "inv.yaml").write_text(FLEET)
    inv = load_inventory(tmp_path)
    alert = Alert(fingerprint="f", labels={"alertname": "ServiceDown", "service": "nginx",
                                            **labels})  # fmt: skip
    decision = route(alert, inv)
    assert decision.routed and decision.target == target and decision.target_kind == "service"
    assert inv.service(target).host == target.split(".", 1)[1]  # only that host is acted on


def test_an_alert_that_names_no_instance_is_unroutable(tmp_path: Path) -> None:
    from inventory.alert import Alert
    from inventory.routing import route

    (tmp_path / "inv.yaml").write_text(FLEET)
    inv = load_inventory(tmp_path)
    alert = Alert(fingerprint="f", labels={"alertname": "ServiceDown", "service": "nginx",
                                            "instance": "db-1:9100"})  # fmt: skip
    decision = route(alert, inv)
    assert not decision.routed
    assert "runs on 3 hosts and no label 'instance' or 'host' names one" in decision.reason


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (("group: web", "group: nope"), "'nope' is not a host group with hosts"),
        (("hosts: [web-1, db-1]", "hosts: [web-1, db-9]"), "unknown host 'db-9'"),
        (
            ("    group: web\n", "    group: web\n    host: web-1\n"),
            "a service runs on one host, a group or a list of hosts",
        ),
    ],
)
def test_instance_mistakes_are_load_errors(tmp_path: Path, change: tuple[str, str],
                                           what: str) -> None:  # fmt: skip
    (tmp_path / "inv.yaml").write_text(FLEET.replace(*change))
    with pytest.raises(InventoryError, match=what):
        load_inventory(tmp_path)
