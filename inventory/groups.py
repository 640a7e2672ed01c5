"""Host groups and defaults, as in Ansible: a host's connection values and labels come
from the host itself, else its groups, else the ``all`` group (host → group → all).

The inventory's ``host_groups`` section names groups with their hosts, child groups and
shared ``vars`` (``port``, ``user``, ``key_secret``, ``known_hosts``, ``labels``)::

    host_groups:
      all:                       # every host: the defaults layer
        vars: {user: ops, key_secret: fleet-key, known_hosts: /etc/contingency/known_hosts}
      web:
        hosts: [web-1, web-2]
        vars: {port: 2222, labels: {tier: web}}
      eu:
        children: [web]          # web's hosts are eu's too
        vars: {labels: {site: eu-1}}

    hosts:
      web-1: {address: 10.0.0.11}            # port 2222, user ops, labels tier+site
      web-2: {address: 10.0.0.12, user: deploy}

Precedence: ``all`` < a parent group < its child groups < the host; groups of the same
depth merge in name order; ``labels`` merge key by key. Each host lists the groups it
is in (``Host.groups``, set here: a host entry does not list its groups). A group naming
an unknown host or child, or a cycle of children, is a load error at its line. Pure.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]  # as inventory.models
ALL = "all"


class GroupVars(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    key_secret: Name | None = None
    """Name of the secret holding the private key (never the key itself)."""
    known_hosts: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class HostGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    hosts: list[Name] = Field(default_factory=list)
    children: list[Name] = Field(default_factory=list)
    vars: GroupVars = GroupVars()


def depths(groups: dict[str, HostGroup]) -> dict[str, int]:
    """Each group's depth below ``all`` (a group no one lists as a child: 1)."""
    parents: dict[str, list[str]] = {}
    for g in groups.values():
        for child in g.children:
            parents.setdefault(child, []).append(g.name)

    def depth(name: str, seen: frozenset[str]) -> int:
        if name == ALL:
            return 0
        above = [p for p in parents.get(name, []) if p not in seen and p != ALL]
        return 1 + max((depth(p, seen | {name}) for p in above), default=0)

    return {name: depth(name, frozenset()) for name in groups}


def cycle(groups: dict[str, HostGroup]) -> list[str] | None:
    """A cycle of children (``[a, b, a]``), if any."""

    def walk(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        group = groups.get(name)
        for child in group.children if group else []:
            if found := walk(child, [*path, name]):
                return found
        return None

    for name in sorted(groups):
        if found := walk(name, []):
            return found
    return None


def members(groups: dict[str, HostGroup]) -> dict[str, set[str]]:
    """Group → its hosts, directly or through child groups (``all`` aside). Call only
    without a cycle."""

    def hosts_of(name: str) -> set[str]:
        group = groups[name]
        found = set(group.hosts)
        for child in group.children:
            if child in groups:
                found |= hosts_of(child)
        return found

    return {name: hosts_of(name) for name in groups if name != ALL}


def membership(hosts_by_group: dict[str, set[str]]) -> dict[str, set[str]]:
    """Host → the groups it is in (``members`` turned around)."""
    out: dict[str, set[str]] = {}
    for name, hosts in hosts_by_group.items():
        for host in hosts:
            out.setdefault(host, set()).add(name)
    return out


def merged(
    raw: dict[str, Any], in_groups: set[str], groups: dict[str, HostGroup], depth: dict[str, int]
) -> dict[str, Any]:
    """The host's raw entry with what its groups and ``all`` give, its own values last;
    ``depth``: :func:`depths` of ``groups``."""
    layers = [groups[ALL]] if ALL in groups else []
    layers += sorted((groups[g] for g in in_groups), key=lambda g: (depth[g.name], g.name))
    out: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for layer in layers:
        values = layer.vars.model_dump(exclude_none=True, exclude={"labels"})
        out.update(values)
        labels.update(layer.vars.labels)
    own = {k: v for k, v in raw.items() if k != "groups"}
    own_labels = own.pop("labels", None)
    out.update(own)
    if isinstance(own_labels, dict):
        labels.update({str(k): v for k, v in own_labels.items()})
    elif own_labels is not None:
        out["labels"] = own_labels  # not a mapping: the Host model says so
        return out
    if labels or own_labels is not None:
        out["labels"] = labels
    out["groups"] = sorted(in_groups)
    return out
