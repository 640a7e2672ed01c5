"""Load the inventory from YAML, reporting every problem with its file and line.

``load_inventory`` reads one YAML file, or every ``*.yaml``/``*.yml`` file of a
directory in sorted order, merges the sections (``hosts``, ``services``, ``roles``,
``people`` by name; ``routing`` rules concatenated in file order), validates each
object, then checks the cross references. It collects all problems before raising::

    try:
        inv = load_inventory("inventory/examples/lab")
    except InventoryError as exc:
        print(exc)  # one "FILE:LINE: FIELD: MESSAGE" per line
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from inventory.correlation import CorrelationRule
from inventory.datasets import Dataset
from inventory.duty import Roster
from inventory.errors import InventoryError
from inventory.groups import HostGroup
from inventory.models import (
    GatePolicy,
    Host,
    Inventory,
    Person,
    RailsPolicy,
    Role,
    RoleName,
    RoutingRule,
    Service,
)
from inventory.network import HostFailover, Link
from inventory.revisions import Revision
from inventory.runbooks import Runbook
from inventory.security import SecurityPolicy
from inventory.severity import PLANS, ROLES, SeverityLevel
from inventory.wording import Wording

YPath = tuple[str | int, ...]
NAMED_SECTIONS: dict[str, type[BaseModel]] = {
    "hosts": Host,
    "services": Service,
    "roles": Role,
    "people": Person,
    "gate_policies": GatePolicy,
    "rails": RailsPolicy,
    "links": Link,
    "host_failover": HostFailover,
    "datasets": Dataset,
    "runbooks": Runbook,
    "correlation": CorrelationRule,
    "severity": SeverityLevel,
    "rosters": Roster,
    "security": SecurityPolicy,
    "changelog": Revision,
    "wording": Wording,
    "host_groups": HostGroup,
}
SECTIONS = (*NAMED_SECTIONS, "routing", "ansible")

_PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_URL_PASSWORD_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_SECRET_KEY_RE = re.compile(
    r"(^|[_.-])(password|passwd|passphrase|pwd|token|secret|api[_-]?key|private[_-]?key"
    r"|credentials?)($|[_.-])",
    re.IGNORECASE,
)
_ALLOWED_SECRET_KEYS = frozenset({"key_secret", "auth_secret"})


class Problem(BaseModel):
    """One thing wrong with the inventory, located as precisely as the YAML allows."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int | None = None
    field: str = ""
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


@dataclass
class _Doc:
    """One parsed file: its data, the line of every path, and paths flagged as secrets."""

    file: str
    data: dict[Any, Any] = field(default_factory=dict)
    lines: dict[YPath, int] = field(default_factory=dict)
    secret_paths: set[YPath] = field(default_factory=set)
    indexed: set[int] = field(default_factory=set)
    """Nodes already indexed: an alias is indexed once, at its anchor."""

    def line(self, path: YPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: YPath, message: str) -> Problem:
        dotted = ".".join(str(p) for p in path)
        return Problem(file=self.file, line=self.line(path), field=dotted, message=message)

    def is_secret(self, path: YPath) -> bool:
        return any(path[:end] in self.secret_paths for end in range(1, len(path) + 1))


@dataclass
class _Entry:
    """One named object or routing rule and where it was written."""

    doc: _Doc
    path: YPath
    raw: Any


@dataclass
class _Collected:
    named: dict[str, dict[str, _Entry]] = field(
        default_factory=lambda: {s: {} for s in NAMED_SECTIONS}
    )
    routing: list[_Entry] = field(default_factory=list)


def load_inventory(path: Path | str) -> Inventory:
    """Load and validate the inventory at ``path`` (a YAML file or a directory).

    Raises:
        InventoryError: with every problem found, each naming file, line and field.
    """
    problems: list[Problem] = []
    docs = [doc for f in _files(Path(path), problems) if (doc := _read(f, problems))]
    collected = _collect(docs, problems)
    host_groups, by_group = _apply_groups(collected, problems)
    instances = _expand_instances(collected, by_group, problems)
    objects = {s: _validate_section(entries, problems)
               for s, entries in collected.named.items() if s != "host_groups"}  # fmt: skip
    objects["host_groups"] = host_groups  # validated once, by _apply_groups
    rules = [r for e in collected.routing if (r := _validate(RoutingRule, e, {}, problems))]
    problems.extend(_cross_check(collected))
    if problems:  # an instance's problem is its service's: said once
        problems = sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line or 0))
        raise InventoryError(problems)
    return Inventory(**objects, routing=rules, instances=instances)


def _files(path: Path, problems: list[Problem]) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        problems.append(Problem(file=str(path), message="no such file or directory"))
        return []
    found = sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")
    )
    if not found:
        problems.append(Problem(file=str(path), message="directory has no *.yaml or *.yml files"))
    return found


def _read(path: Path, problems: list[Problem]) -> _Doc | None:
    doc = _Doc(file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(file=doc.file, message=f"cannot read file: {exc}"))
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml: 4× faster
    try:
        node = loader.get_single_node()
        if node is None:
            return doc
        problems.extend(_index(doc, node, ()))
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        problems.append(_yaml_problem(doc.file, exc))
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problems.append(
            doc.problem((), f"top level must be a mapping of sections ({', '.join(SECTIONS)})")
        )
        return None
    doc.data = data
    return doc


def _yaml_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    # Only the parser's own words: the snippet in str(exc) may quote a secret.
    mark = exc.problem_mark or exc.context_mark
    words = ", ".join(w for w in (exc.context, exc.problem) if w)
    line = mark.line + 1 if mark else None
    return Problem(file=file, line=line, message=f"invalid YAML: {words}")


def _index(doc: _Doc, node: yaml.Node, path: YPath) -> list[Problem]:
    """Record the line of every path under ``node``; flag duplicate keys and secrets.

    Paths under a repeated alias keep no lines of their own (they fall back to the
    key that uses the alias), which also keeps alias bombs linear.
    """
    if id(node) in doc.indexed:
        return []
    doc.indexed.add(id(node))
    if isinstance(node, yaml.MappingNode):
        return _index_mapping(doc, node, path)
    if isinstance(node, yaml.SequenceNode):
        problems: list[Problem] = []
        for i, item in enumerate(node.value):
            doc.lines[(*path, i)] = item.start_mark.line + 1
            problems += _index(doc, item, (*path, i))
        return problems
    return _check_value(doc, node, path)


def _index_mapping(doc: _Doc, node: yaml.MappingNode, path: YPath) -> list[Problem]:
    problems: list[Problem] = []
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        sub = (*path, key)
        if key != "<<" and sub in doc.lines:
            first = doc.lines[sub]
            doc.lines[sub] = key_node.start_mark.line + 1
            problems.append(doc.problem(sub, f"duplicate key (first at line {first})"))
            _forget(doc, sub)  # YAML keeps the last value: index that one
        doc.lines[sub] = key_node.start_mark.line + 1
        if _SECRET_KEY_RE.search(key) and key not in _ALLOWED_SECRET_KEYS:
            doc.secret_paths.add(sub)
            problems.append(doc.problem(sub, _secret_message("field is named like a secret")))
        problems += _check_value(doc, key_node, sub)
        problems += _index(doc, value_node, sub)
    return problems


def _forget(doc: _Doc, path: YPath) -> None:
    for known in [p for p in doc.lines if p[: len(path)] == path]:
        del doc.lines[known]


def _check_value(doc: _Doc, node: yaml.Node, path: YPath) -> list[Problem]:
    if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str):
        return []
    if _PRIVATE_KEY_RE.search(node.value):
        what = "value looks like a private key"
    elif _URL_PASSWORD_RE.search(node.value):
        what = "value looks like a URL with a password"
    else:
        return []
    doc.secret_paths.add(path)
    return [doc.problem(path, _secret_message(what))]


def _secret_message(what: str) -> str:
    return f"{what}; the inventory names secrets (key_secret, notify), it never contains them"


def _collect(docs: list[_Doc], problems: list[Problem]) -> _Collected:
    out = _Collected()
    for doc in docs:
        for key, value in doc.data.items():
            section = str(key)
            if section == "routing":
                out.routing += _collect_routing(doc, value, problems)
            elif section == "ansible":
                _collect_ansible(doc, value, out, problems)
            elif section in NAMED_SECTIONS:
                _collect_named(doc, section, value, out.named[section], problems)
            elif not doc.is_secret((section,)):
                expected = ", ".join(SECTIONS)
                msg = f"unknown top-level key (expected one of: {expected})"
                problems.append(doc.problem((section,), msg))
    return out


def _collect_ansible(doc: _Doc, value: Any, out: _Collected, problems: list[Problem]) -> None:
    """The hosts and groups of the Ansible inventory the ``ansible`` section names
    (``inventory/ansible.py``), as if written in ``hosts`` and ``host_groups``."""
    from inventory import ansible

    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        problems.append(doc.problem(("ansible",), "needs path: the Ansible inventory file"))
        return
    unknown = sorted(set(value) - {"path", "known_hosts", "key_secret"})
    if unknown:
        problems.append(doc.problem(("ansible", unknown[0]), "not path, known_hosts or key_secret"))
        return
    path = Path(doc.file).parent / value["path"]
    try:
        found = ansible.read(path)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(doc.problem(("ansible", "path"), f"cannot read {path}: {exc}"))
        return
    source = _Doc(file=str(path))
    problems += [Problem(file=source.file, line=n, message=m) for n, m in found.problems]
    defaults = {k: value[k] for k in ("known_hosts", "key_secret") if k in value}
    groups = dict(found.groups)
    if defaults:  # the section's defaults go under the Ansible inventory's own ``all``
        raw, line = groups.get("all", ({"hosts": [], "children": [], "vars": {}}, 0))
        own: dict[str, Any] = raw.get("vars") or {}
        groups["all"] = ({**raw, "vars": {**defaults, **own}}, line or doc.line(("ansible",)) or 1)
    for section, entries in (("hosts", found.hosts), ("host_groups", groups)):
        for name, (_raw, line) in entries.items():
            source.lines[(section, name)] = line
        _collect_named(source, section, {n: raw for n, (raw, _) in entries.items()},
                       out.named[section], problems)  # fmt: skip


def _collect_routing(doc: _Doc, value: Any, problems: list[Problem]) -> list[_Entry]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(doc.problem(("routing",), "must be a list of rules"))
        return []
    return [_Entry(doc, ("routing", i), item) for i, item in enumerate(value)]


def _collect_named(
    doc: _Doc, section: str, value: Any, into: dict[str, _Entry], problems: list[Problem]
) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append(doc.problem((section,), "must be a mapping of name to object"))
        return
    for raw_name, raw in value.items():
        name = str(raw_name)
        entry = _Entry(doc, (section, name), raw)
        if name in into:
            first = into[name]
            where = f"{first.doc.file}:{first.doc.line(first.path)}"
            problems.append(doc.problem(entry.path, f"duplicate name (first defined at {where})"))
            continue
        into[name] = entry


def _apply_groups(
    c: _Collected, problems: list[Problem]
) -> tuple[dict[str, HostGroup], dict[str, set[str]]]:
    """Fill each host's entry from its groups and ``all`` (``inventory/groups.py``);
    returns the valid groups and each group's hosts (direct or through children)."""
    from inventory import groups as g

    entries = c.named["host_groups"]
    valid: dict[str, HostGroup] = _validate_section(entries, problems)
    if len(valid) < len(entries):
        return valid, {}  # reported; the hosts are validated as written
    for name, group in valid.items():
        entry = entries[name]
        for i, host in enumerate(group.hosts):
            if host not in c.named["hosts"]:
                problems.append(entry.doc.problem((*entry.path, "hosts", i),
                                                  f"{host!r} is not a host"))  # fmt: skip
        for i, child in enumerate(group.children):
            if child not in valid or child == g.ALL:
                problems.append(entry.doc.problem((*entry.path, "children", i),
                                                  f"{child!r} is not a host group"))  # fmt: skip
    if (loop := g.cycle(valid)) is not None:
        entry = entries[loop[0]]
        problems.append(entry.doc.problem(entry.path, "children form a cycle: "
                                          + " → ".join(loop)))  # fmt: skip
        return valid, {}
    by_group = g.members(valid)
    member, depth = g.membership(by_group), g.depths(valid)
    for name, entry in c.named["hosts"].items():
        if not isinstance(entry.raw, dict):
            continue
        if entry.raw.get("groups"):  # empty: a dumped Host model written back
            msg = "a host's groups are given by host_groups, not by the host"
            problems.append(entry.doc.problem((*entry.path, "groups"), msg))
            continue
        if valid:
            entry.raw = g.merged(entry.raw, member.get(name, set()), valid, depth)
    return valid, by_group


def _expand_instances(
    c: _Collected, by_group: dict[str, set[str]], problems: list[Problem]
) -> dict[str, list[str]]:
    """A service on a ``group`` or on ``hosts`` becomes one service per host, its
    instances (``inventory/instances.py``); returns service → instance names."""
    from inventory.instances import instance_entries

    out: dict[str, list[str]] = {}
    services = c.named["services"]
    for name, entry in list(services.items()):
        if not isinstance(entry.raw, dict) or not ({"group", "hosts"} & set(entry.raw)):
            continue
        made, errors = instance_entries(name, entry.raw, by_group, c.named["hosts"])
        for where, message in errors:
            problems.append(entry.doc.problem((*entry.path, *where), message))
        if errors:
            continue
        del services[name]
        for instance, raw in made.items():
            if instance in services:
                msg = f"instance {instance!r} of {name!r} is also a service of its own"
                problems.append(entry.doc.problem(entry.path, msg))
                continue
            services[instance] = _Entry(entry.doc, entry.path, raw)
        out[name] = sorted(made)
    return out


def _validate_section(entries: dict[str, _Entry], problems: list[Problem]) -> dict[str, Any]:
    valid = {}
    for name, entry in entries.items():
        model = NAMED_SECTIONS[str(entry.path[0])]
        if (obj := _validate(model, entry, {"name": name}, problems)) is not None:
            valid[name] = obj
    return valid


def _validate(
    model: type[BaseModel], entry: _Entry, inject: dict[str, str], problems: list[Problem]
) -> Any:
    if not isinstance(entry.raw, dict):
        problems.append(entry.doc.problem(entry.path, "must be a mapping"))
        return None
    for key, value in inject.items():
        if key in entry.raw and entry.raw[key] != value:
            msg = f"{key} {entry.raw[key]!r} does not match its key {value!r}"
            problems.append(entry.doc.problem((*entry.path, key), msg))
    data = {**entry.raw, **inject}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(entry, data, exc)
        return None


def _validation_problems(entry: _Entry, data: Any, exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = (*entry.path, *_data_path(data, err["loc"]))
        if not entry.doc.is_secret(path):  # already reported, more clearly
            path, msg = _in_step(entry, path, err["msg"])
            label = _step_label(entry, path)
            msg = msg.removeprefix("Value error, ") if label else msg
            problems.append(entry.doc.problem(path, label + msg))
    return problems


def _in_step(entry: _Entry, path: YPath, msg: str) -> tuple[YPath, str]:
    """A runbook-level error about one step (``step 'NAME': ...``) moves to that step."""
    m = re.match(r"Value error, step '([^']*)': (.*)", msg, re.DOTALL)
    steps = _raw_field(entry, "steps")
    if entry.path[0] != "runbooks" or path != entry.path or not m or not isinstance(steps, list):
        return path, msg
    for i, step in enumerate(steps):
        if isinstance(step, dict) and step.get("name") == m.group(1):
            return (*entry.path, "steps", i), m.group(2)
    return path, msg


def _step_label(entry: _Entry, path: YPath) -> str:
    """``step 'NAME': `` for a problem inside a runbook step, so errors name the step."""
    rest = path[len(entry.path) :]
    if entry.path[0] != "runbooks" or len(rest) < 2 or rest[0] != "steps":
        return ""
    steps = _raw_field(entry, "steps")
    i = rest[1]
    step = steps[i] if isinstance(steps, list) and isinstance(i, int) else None
    name = step.get("name") if isinstance(step, dict) else None
    return f"step {name!r}: " if isinstance(name, str) else f"step {i}: "


def _data_path(data: Any, loc: tuple[str | int, ...]) -> YPath:
    """Map a pydantic ``loc`` onto the data, dropping union tags and ``[key]`` markers."""
    path: list[str | int] = []
    for i, part in enumerate(loc):
        if _has(data, part):
            data = data[part]
        elif part == "[key]" or (isinstance(data, dict) and part == data.get("kind")):
            continue
        else:
            return (*path, *loc[i:])
        path.append(part)
    return tuple(path)


def _has(data: Any, part: str | int) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


def _cross_check(c: _Collected) -> list[Problem]:
    return [
        *_check_service_hosts(c),
        *_check_person_roles(c),
        *_check_routing(c),
        *_check_network_hosts(c),
        *_check_datasets(c),
        *_check_runbooks(c),
        *_check_rosters(c),
        *_check_severity(c),
    ]


def _check_rosters(c: _Collected) -> list[Problem]:
    """A roster is keyed by a role; everyone on it is a person with that role."""
    problems = []
    for role, entry in c.named["rosters"].items():
        if role not in ROLES:
            problems.append(entry.doc.problem(entry.path, f"{role!r} is not a role"))
            continue
        for key in ("rotation", "overrides"):
            items = _raw_field(entry, key)
            for i, item in enumerate(items if isinstance(items, list) else []):
                name = item.get("person") if isinstance(item, dict) else item
                path = (*entry.path, key, i, "person") if key == "overrides" else (
                    *entry.path, key, i)  # fmt: skip
                person = c.named["people"].get(str(name))
                if person is None:
                    problems.append(entry.doc.problem(path, f"unknown person {name!r}"))
                elif role not in (_raw_field(person, "roles") or []):
                    msg = f"{name!r} is not in the role {role!r}"
                    problems.append(entry.doc.problem(path, msg))
    return problems


def _check_severity(c: _Collected) -> list[Problem]:
    """Levels page roles and name plans that exist; ranks are distinct."""
    problems = []
    ranks: dict[Any, str] = {}
    for name, entry in c.named["severity"].items():
        rank = _raw_field(entry, "rank")
        if rank in ranks:
            msg = f"rank {rank} is also level {ranks[rank]!r}'s"
            problems.append(entry.doc.problem((*entry.path, "rank"), msg))
        ranks.setdefault(rank, name)
        page = _raw_field(entry, "page")
        for i, role in enumerate(page if isinstance(page, list) else []):
            if role not in ROLES:
                msg = f"{role!r} is not a role"
                problems.append(entry.doc.problem((*entry.path, "page", i), msg))
        when = _raw_field(entry, "when")
        for i, crit in enumerate(when if isinstance(when, list) else []):
            plans = crit.get("plans") if isinstance(crit, dict) else None
            for j, plan in enumerate(plans if isinstance(plans, list) else []):
                if plan not in PLANS:
                    msg = f"{plan!r} is not a plan ({', '.join(PLANS)})"
                    problems.append(entry.doc.problem((*entry.path, "when", i, "plans", j), msg))
    return problems


def _fleets(c: _Collected) -> set[str]:
    """The services that run on many hosts (their instances name them)."""
    return {str(e.raw["instance_of"]) for e in c.named["services"].values()
            if isinstance(e.raw, dict) and e.raw.get("instance_of")}  # fmt: skip


def _check_runbooks(c: _Collected) -> list[Problem]:
    """Runbook steps name hosts and services of the inventory; rules name runbooks."""
    problems = []
    fleets = _fleets(c)
    for entry in c.named["runbooks"].values():
        steps = _raw_field(entry, "steps")
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            if not isinstance(step, dict):
                continue
            for key, section in (("host", "hosts"), ("service", "services")):
                value = step.get(key)
                if not isinstance(value, str) or value in c.named[section]:
                    continue
                name = step.get("name")
                msg = f"step {name!r}: unknown {key} {value!r} (not under {section})"
                if key == "service" and value in fleets:
                    if step.get("kind") == "rolling":
                        continue
                    msg = (f"step {name!r}: {value!r} runs on many hosts; name one instance"
                           f" ({value}.<host>) or use a rolling step")  # fmt: skip
                problems.append(entry.doc.problem((*entry.path, "steps", i, key), msg))
            role = step.get("role", "operations")
            roles = c.named["roles"]  # an inventory that names roles must name this one
            if (
                step.get("kind") == "notify"
                and roles
                and role in {r.value for r in RoleName}  # else the model says what is wrong
                and role not in roles
            ):
                msg = f"step {step.get('name')!r}: unknown role {role!r} (not under roles)"
                problems.append(entry.doc.problem((*entry.path, "steps", i, "role"), msg))
    for entry in c.routing:
        problems += _check_rule_runbook(c, entry)
    return problems


def _check_rule_runbook(c: _Collected, entry: _Entry) -> list[Problem]:
    """A rule's ``runbook`` is a known one, with ``plan: runbook``, and its ``params``
    fit that runbook. (``plan: runbook`` without one loads; such an alert escalates.)"""
    name, plan = _raw_field(entry, "runbook"), _raw_field(entry, "plan")
    if name is not None and plan != "runbook":
        msg = f"runbook {name!r} is set but the plan is {plan!r} (use plan: runbook)"
        return [entry.doc.problem((*entry.path, "runbook"), msg)]
    if not isinstance(name, str):
        return []
    rb_entry = c.named["runbooks"].get(name)
    if rb_entry is None:
        msg = f"unknown runbook {name!r} (not under runbooks)"
        return [entry.doc.problem((*entry.path, "runbook"), msg)]
    params = _raw_field(entry, "params")
    if not isinstance(params, dict) or not isinstance(rb_entry.raw, dict):
        return []
    try:
        runbook = Runbook.model_validate({**rb_entry.raw, "name": name})
    except ValidationError:
        return []  # reported where the runbook is
    try:
        runbook.resolve(params)
    except ValueError as exc:
        return [entry.doc.problem((*entry.path, "params"), f"runbook {name}: {exc}")]
    return []


def _check_datasets(c: _Collected) -> list[Problem]:
    """Datasets name their host, drill host and services; a service a restore stops
    must be stoppable (systemd, or commands with ``stop`` and ``start``)."""
    problems = []
    for entry in c.named["datasets"].values():
        for ref in (("host",), ("drill", "host")):
            value: Any = entry.raw
            for key in ref:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str) and value not in c.named["hosts"]:
                msg = f"unknown host {value!r} (not under hosts)"
                problems.append(entry.doc.problem((*entry.path, *ref), msg))
        services = _raw_field(entry, "services")
        for i, name in enumerate(services if isinstance(services, list) else []):
            svc = c.named["services"].get(name) if isinstance(name, str) else None
            if svc is None:
                msg = f"unknown service {name!r} (not under services)"
                problems.append(entry.doc.problem((*entry.path, "services", i), msg))
                continue
            mgr = _raw_field(svc, "manager")
            stoppable = mgr.get("stop") and mgr.get("start") if isinstance(mgr, dict) else True
            if isinstance(mgr, dict) and mgr.get("kind") == "commands" and not stoppable:
                msg = (
                    f"service {name!r} is stopped during a restore but its manager has "
                    "no stop/start commands"
                )
                problems.append(entry.doc.problem((*entry.path, "services", i), msg))
    return problems


def _check_network_hosts(c: _Collected) -> list[Problem]:
    """Links name their router, failover entries their host, standby and fencing host."""
    problems = []
    refs = [("links", "router"), ("host_failover", "standby"), ("host_failover", "fence.host")]
    for name, entry in c.named["links"].items():
        behind = _raw_field(entry, "behind_hosts")
        for i, host in enumerate(behind if isinstance(behind, list) else []):
            if isinstance(host, str) and host not in c.named["hosts"]:
                msg = f"unknown host {host!r} behind link {name!r} (not under hosts)"
                problems.append(entry.doc.problem((*entry.path, "behind_hosts", i), msg))
    for section, ref in refs:
        for name, entry in c.named[section].items():
            value: Any = entry.raw
            for key in ref.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if section == "host_failover" and ref == "standby" and name not in c.named["hosts"]:
                problems.append(entry.doc.problem(entry.path, f"unknown host {name!r}"))
            if isinstance(value, str) and value not in c.named["hosts"]:
                msg = f"unknown host {value!r} (not under hosts)"
                problems.append(entry.doc.problem((*entry.path, *ref.split(".")), msg))
    return problems


def _raw_field(entry: _Entry, key: str) -> Any:
    return entry.raw.get(key) if isinstance(entry.raw, dict) else None


def _check_service_hosts(c: _Collected) -> list[Problem]:
    problems = []
    for entry in c.named["services"].values():
        host = _raw_field(entry, "host")
        if isinstance(host, str) and host not in c.named["hosts"]:
            msg = f"unknown host {host!r} (not under hosts)"
            problems.append(entry.doc.problem((*entry.path, "host"), msg))
    return problems


def _check_person_roles(c: _Collected) -> list[Problem]:
    declared = c.named["roles"]
    if not declared:
        return []
    problems = []
    for entry in c.named["people"].values():
        roles = _raw_field(entry, "roles")
        for i, role in enumerate(roles if isinstance(roles, list) else []):
            if isinstance(role, str) and role in RoleName.__members__ and role not in declared:
                msg = f"role {role!r} is not declared under roles"
                problems.append(entry.doc.problem((*entry.path, "roles", i), msg))
    return problems


def _check_routing(c: _Collected) -> list[Problem]:
    """Targets exist (a runbook may target a service on many hosts: its rolling steps
    act on each instance); rule names are unique."""
    problems = []
    fleets = _fleets(c)
    seen: dict[str, _Entry] = {}
    for entry in c.routing:
        target, name = _raw_field(entry, "target"), _raw_field(entry, "name")
        fleet = _raw_field(entry, "plan") == "runbook" and target in fleets
        if isinstance(target, str) and not (
            fleet
            or target in c.named["services"]
            or target in c.named["hosts"]
            or target in c.named["links"]
            or target in c.named["datasets"]
        ):
            msg = f"unknown target {target!r} (not a service or host)"
            problems.append(entry.doc.problem((*entry.path, "target"), msg))
        if isinstance(name, str) and name in seen:
            first = seen[name]
            where = f"{first.doc.file}:{first.doc.line((*first.path, 'name'))}"
            msg = f"duplicate routing rule name {name!r} (first at {where})"
            problems.append(entry.doc.problem((*entry.path, "name"), msg))
        elif isinstance(name, str):
            seen[name] = entry
    return problems
