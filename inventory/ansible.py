"""Hosts and groups from an Ansible inventory (YAML or INI), so a team keeps one list.

An inventory file names the Ansible inventory in its ``ansible`` section; its hosts and
groups join the inventory's own ``hosts`` and ``host_groups`` (``inventory/groups.py``)::

    ansible:
      path: hosts.ini                       # relative to this file; .yaml/.yml: YAML format
      known_hosts: /etc/contingency/known_hosts   # host keys stay pinned
      key_secret: fleet-key                 # unless a host or group sets contingency_key_secret

Variables: ``ansible_host`` → ``address`` (default: the host's name), ``ansible_port`` →
``port``, ``ansible_user`` → ``user``, ``contingency_key_secret`` → ``key_secret``;
other ``ansible_*`` variables are not used; any other scalar variable becomes a label.
Groups keep their hosts, children and variables; Ansible's ``all`` is the defaults layer,
``ungrouped`` adds nothing. Numeric host ranges (``web[01:03]``) are expanded. Each host
and group carries the line it was written on, so errors name ``file:line``. Pure except
for reading the file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONNECTION = {"ansible_host": "address", "ansible_port": "port", "ansible_user": "user",
              "contingency_key_secret": "key_secret"}  # fmt: skip
RANGE = re.compile(r"\[(\d+):(\d+)\]")


@dataclass
class Found:
    """What an Ansible inventory gave: raw host and group entries with their lines."""

    hosts: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    groups: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def expand(pattern: str) -> list[str]:
    """``web[01:03]`` → web01, web02, web03 (one numeric range; widths kept)."""
    m = RANGE.search(pattern)
    if m is None:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo) if lo.startswith("0") else 0
    return [f"{pattern[: m.start()]}{n:0{width}d}{pattern[m.end() :]}"
            for n in range(int(lo), int(hi) + 1)]  # fmt: skip


def _vars(values: dict[str, Any]) -> dict[str, Any]:
    """Ansible variables → connection values and labels (group vars shape)."""
    out: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, value in values.items():
        key = str(key)
        if key in CONNECTION:
            out[CONNECTION[key]] = int(value) if key == "ansible_port" and str(value).isdigit() \
                else value  # fmt: skip
        elif not key.startswith("ansible_") and isinstance(value, str | int | float | bool):
            labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
    if labels:
        out["labels"] = labels
    return out


class _Builder:
    def __init__(self) -> None:
        self.found = Found()

    def host(self, name: str, values: dict[str, Any], line: int) -> None:
        """A host (again: a host may be listed under several groups)."""
        raw, first = self.found.hosts.get(name, ({"address": name}, line))
        given = _vars(values)
        labels = {**raw.get("labels", {}), **given.pop("labels", {})}
        raw = {**raw, **given}
        if labels:
            raw["labels"] = labels
        self.found.hosts[name] = (raw, first)

    def group(self, name: str, line: int) -> dict[str, Any]:
        if name not in self.found.groups:
            self.found.groups[name] = ({"hosts": [], "children": [], "vars": {}}, line)
        return self.found.groups[name][0]

    def done(self) -> Found:
        self.found.groups.pop("ungrouped", None)
        for raw, _ in self.found.groups.values():  # a group's own vars, in our shape
            raw["vars"] = _vars(raw["vars"])
            for key in ("hosts", "children"):
                raw[key] = sorted(set(raw[key]))
        return self.found


def read(path: Path) -> Found:
    """The Ansible inventory at ``path``: YAML if it ends in .yaml/.yml, else INI."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        return _yaml(text)
    return _ini(text)


def _ini(text: str) -> Found:
    b = _Builder()
    section, kind = "ungrouped", "hosts"
    for n, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                b.found.problems.append((n, f"bad section header {line[:60]!r}"))
                continue
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                b.found.problems.append((n, f"unknown section kind {kind!r}"))
                continue
            b.group(section, n)
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            b.found.problems.append((n, f"cannot split the line: {exc}"))
            continue
        if not words:
            continue
        group = b.group(section, n)
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                b.found.problems.append((n, "a vars line is key=value"))
                continue
            group["vars"][key.strip()] = value.strip().strip("'\"")
        elif kind == "children":
            group["children"].append(words[0])
            b.group(words[0], n)
        else:
            pairs = dict(w.partition("=")[::2] for w in words[1:])
            if any(not k or "=" not in w for w, k in zip(words[1:], pairs, strict=False)):
                b.found.problems.append((n, "host variables are key=value"))
                continue
            for name in expand(words[0]):
                b.host(name, pairs, n)
                group["hosts"].append(name)
    return b.done()


def _yaml(text: str) -> Found:
    b = _Builder()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        b.found.problems.append((mark.line + 1 if mark else None, f"invalid YAML: {exc.problem}"))
        return b.found
    if node is None:
        return b.done()
    if not isinstance(node, yaml.MappingNode):
        b.found.problems.append((node.start_mark.line + 1, "top level must map group names"))
        return b.found
    for key, value in node.value:
        _yaml_group(b, str(key.value), value, key.start_mark.line + 1)
    return b.done()


def _yaml_group(b: _Builder, name: str, node: yaml.Node, line: int) -> None:
    group = b.group(name, line)
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
        return
    if not isinstance(node, yaml.MappingNode):
        b.found.problems.append((line, f"group {name!r} must be a mapping"))
        return
    for key, value in node.value:
        what, at = str(key.value), key.start_mark.line + 1
        data = yaml.safe_load(yaml.serialize(value))
        if what == "hosts" and isinstance(value, yaml.MappingNode):
            for host_key, host_node in value.value:
                values = yaml.safe_load(yaml.serialize(host_node)) or {}
                if not isinstance(values, dict):
                    b.found.problems.append((host_key.start_mark.line + 1, "host vars: a mapping"))
                    continue
                for host in expand(str(host_key.value)):
                    b.host(host, values, host_key.start_mark.line + 1)
                    group["hosts"].append(host)
        elif what == "vars" and isinstance(data, dict):
            group["vars"].update(data)
        elif what == "children" and isinstance(value, yaml.MappingNode):
            for child_key, child_node in value.value:
                group["children"].append(str(child_key.value))
                _yaml_group(b, str(child_key.value), child_node, child_key.start_mark.line + 1)
        elif data is not None:
            b.found.problems.append(
                (at, f"group {name!r}: {what!r} is not hosts, vars or children")
            )
