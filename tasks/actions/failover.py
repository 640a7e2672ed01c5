"""Failover drivers (actions): make a link carry the router's default traffic.

One small interface, `LinkDriver`: ``describe(link)`` says exactly what ``activate``
would do (for the plan and the approval form), ``activate(link, inv)`` does it. Both
are idempotent. Values come only from the inventory::

    driver = driver_for(inv.links["uplink-b"])
    print(driver.describe(link))          # "ip route replace default via ..."
    result = driver.activate(link, inv)   # DriverResult(ok=True, ...)
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from typing import Protocol

import requests
from pydantic import BaseModel

from inventory.errors import NetworkError
from inventory.models import Host, Inventory
from inventory.network import HttpControllerDriver, Link, LinuxRouteDriver
from inventory.secrets import SecretNotFound, redact, resolve_secret
from tasks.ssh.models import CommandResult

log = logging.getLogger("contingency.failover")


class DriverResult(BaseModel):
    link: str
    host: str
    """The router, or ``controller``."""
    driver: str
    action: str
    """What ran: a command, or ``METHOD URL`` (never a secret)."""
    ok: bool
    detail: str = ""
    duration_s: float = 0.0


class LinkDriver(Protocol):
    def describe(self, link: Link) -> tuple[str, str]:
        """(where, what): the host or controller acted on and the exact action."""
        ...

    def activate(self, link: Link, inv: Inventory) -> DriverResult: ...


class LinuxRoute:
    """``ip route replace default via GW dev IF`` on the link's router over SSH."""

    def __init__(self, cfg: LinuxRouteDriver) -> None:
        self.cfg = cfg

    def describe(self, link: Link) -> tuple[str, str]:
        sudo = "sudo -n " if self.cfg.sudo else ""
        cmd = (
            f"{sudo}ip route replace default via {shlex.quote(link.gateway)} "
            f"dev {shlex.quote(link.interface)}"
        )
        return link.router, cmd

    def activate(self, link: Link, inv: Inventory) -> DriverResult:
        host, cmd = self.describe(link)
        res = run_action(inv.host(host), cmd, timeout=20)
        detail = res.stderr_tail.strip()[-300:] or f"exit {res.exit_code}"
        return DriverResult(
            link=link.name, host=host, driver="linux-route", action=cmd, ok=res.ok, detail=detail,
            duration_s=res.duration_s,
        )  # fmt: skip


def run_action(host: Host, command: str, timeout: float) -> CommandResult:
    """``run_ssh`` (a task run, streamed to the run's log) inside a flow run; a plain
    pooled SSH call outside one (unit-level drivers and tests)."""
    from prefect.context import FlowRunContext

    from tasks.ssh.run import get_connection, run_ssh

    if FlowRunContext.get() is not None:
        return run_ssh(host, command, timeout=timeout)
    res = get_connection(host).run(command, timeout=timeout)
    log.info("%s: `%s` → exit %s", host.name, command, res.exit_code)
    return res


def _fill(value: object, link: Link) -> object:
    if not isinstance(value, str):
        return value
    return value.format(
        link=link.name, interface=link.interface, gateway=link.gateway, router=link.router
    )


class HttpController:
    """A REST call to a network controller; URL, method and body from the inventory."""

    def __init__(self, cfg: HttpControllerDriver) -> None:
        self.cfg = cfg

    def request(self, link: Link) -> tuple[str, dict[str, object]]:
        url = str(_fill(self.cfg.url, link))
        return url, {k: _fill(v, link) for k, v in self.cfg.body.items()}

    def describe(self, link: Link) -> tuple[str, str]:
        url, body = self.request(link)
        return "controller", f"{self.cfg.method} {url} {json.dumps(body, sort_keys=True)}"

    def activate(self, link: Link, inv: Inventory) -> DriverResult:
        url, body = self.request(link)
        headers = {"Content-Type": "application/json"}
        if self.cfg.auth_secret:
            try:
                token = resolve_secret(self.cfg.auth_secret).get_secret_value()
            except (SecretNotFound, ValueError) as exc:
                raise NetworkError(f"link {link.name}: controller token: {exc}") from None
            headers["Authorization"] = f"Bearer {token}"
        action = f"{self.cfg.method} {url}"
        t0 = time.monotonic()
        try:
            resp = requests.request(
                self.cfg.method, url, json=body, headers=headers, timeout=self.cfg.timeout_s
            )
        except requests.RequestException as exc:
            raise NetworkError(
                f"link {link.name}: controller {action} failed: {type(exc).__name__}"
            ) from None
        ok = resp.status_code in self.cfg.expect_status
        return DriverResult(
            link=link.name, host="controller", driver="http-controller", action=action, ok=ok,
            detail=f"HTTP {resp.status_code} {redact(resp.text[:200])!r}",
            duration_s=round(time.monotonic() - t0, 3),
        )  # fmt: skip


def driver_for(link: Link) -> LinkDriver:
    if isinstance(link.driver, LinuxRouteDriver):
        return LinuxRoute(link.driver)
    return HttpController(link.driver)
