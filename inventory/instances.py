"""A service that runs on many hosts: each host is an instance.

A service names one ``host``, or a ``group`` (``inventory/groups.py``), or a list of
``hosts``. With a group or a list, the loader makes one service per host, named
``<service>.<host>`` (``instance_of`` is the service), so every plan, lock, rail and
report works on one instance as it does on any service::

    services:
      nginx:
        group: web                      # web-1 … web-50: nginx.web-1 … nginx.web-50
        health: {kind: http, url: "http://{address}:80/health"}   # each instance's own
        manager: {kind: systemd, unit: nginx.service}

``{address}`` and ``{host}`` in an http check's URL, or a tcp check's address, become
the instance's. Routing picks the instance from an alert label (the rule's
``instance_labels``, ``instance`` then ``host`` by default; a Prometheus
``instance="web-7:9100"`` or ``"10.0.0.17:9100"`` names web-7), never from anything
else. Pure.
"""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
Field = tuple[str | int, ...]


def instance_name(service: str, host: str) -> str:
    return f"{service}.{host}"


def _fill(text: str, host: str, address: str) -> str:
    return text.replace("{address}", address).replace("{host}", host)


def instance_entries(
    service: str,
    raw: dict[str, Any],
    groups: dict[str, set[str]],
    hosts: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[tuple[Field, str]]]:
    """The raw entries of ``service``'s instances, or the problems (field, message)."""
    errors: list[tuple[Field, str]] = []
    on = [k for k in ("host", "group", "hosts") if k in raw]
    if len(on) > 1:
        return {}, [((on[1],), "a service runs on one host, a group or a list of hosts")]
    if "group" in raw:
        group = str(raw["group"])
        names = sorted(groups.get(group, set()))
        if not names:
            errors.append((("group",), f"{group!r} is not a host group with hosts"))
    else:
        listed = raw["hosts"] if isinstance(raw["hosts"], list) else []
        names = [str(h) for h in listed]
        if not names:
            errors.append((("hosts",), "a list of at least one host"))
        for i, host in enumerate(names):
            if host not in hosts:
                errors.append((("hosts", i), f"unknown host {host!r} (not under hosts)"))
    made: dict[str, dict[str, Any]] = {}
    for host in names:
        name = instance_name(service, host)
        if not NAME.match(name):
            errors.append(((), f"instance name {name!r} is not a valid name (too long?)"))
            continue
        entry = hosts.get(host)
        address = str(entry.raw.get("address", host)) if entry is not None and \
            isinstance(entry.raw, dict) else host  # fmt: skip
        one = {k: v for k, v in raw.items() if k not in ("group", "hosts")}
        one |= {"host": host, "instance_of": service}
        health = one.get("health")
        if isinstance(health, dict):
            health = dict(health)
            for key in ("url", "address"):
                if isinstance(health.get(key), str):
                    health[key] = _fill(health[key], host, address)
            one["health"] = health
        made[name] = one
    return (made, []) if not errors else ({}, errors)


def pick_instance(
    hosts_of: dict[str, tuple[str, str]], labels: dict[str, str], keys: list[str]
) -> str | None:
    """The instance an alert names through one of ``keys``: its host's name or address,
    with or without ``:port``. ``hosts_of``: instance → (host, address). None if none."""
    for key in keys:
        value = labels.get(key)
        if not value:
            continue
        bare = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        for instance, (host, address) in sorted(hosts_of.items()):
            if bare in (host, address):
                return instance
    return None
