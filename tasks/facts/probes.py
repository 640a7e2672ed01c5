"""Probes: read state, change nothing.

TCP and HTTP checks run from the worker; command checks run on the service's host
over SSH. Every probe returns a :class:`ProbeResult` and never raises for an
unhealthy target — connection problems are part of the answer.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import requests
from prefect import task
from pydantic import BaseModel, Field

from inventory.errors import ContingencyError
from inventory.models import CommandCheck, HttpCheck, Inventory, Service, TcpCheck

PROBE_TIMEOUT_S = 3.0


class ProbeResult(BaseModel):
    target: str
    check: str
    healthy: bool
    detail: str = ""
    duration_s: float = 0.0
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.healthy


def _tcp(address: str, port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection((address, port), timeout=PROBE_TIMEOUT_S):
            return True, f"{address}:{port} accepts connections"
    except OSError as exc:
        return False, f"{address}:{port}: {exc.strerror or exc}"


def _http(check: HttpCheck) -> tuple[bool, str]:
    try:
        resp = requests.get(check.url, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        return False, f"GET {check.url}: {type(exc).__name__}"
    ok = resp.status_code == check.expect_status
    return ok, f"GET {check.url} → {resp.status_code} {resp.text[:120]!r}"


def _command(service: Service, inv: Inventory, check: CommandCheck) -> tuple[bool, str]:
    from tasks.ssh.run import get_connection

    host = inv.host(service.host)
    try:
        res = get_connection(host).run(check.command, timeout=PROBE_TIMEOUT_S * 3)
    except ContingencyError as exc:
        return False, str(exc)
    return res.ok, f"`{check.command}` on {host.name} → exit {res.exit_code}"


def check_service(service: Service, inv: Inventory) -> ProbeResult:
    """Run the service's health check once (plain function, usable outside flows)."""
    started = time.monotonic()
    check = service.health
    if isinstance(check, TcpCheck):
        ok, detail = _tcp(check.address or inv.host(service.host).address, check.port)
    elif isinstance(check, HttpCheck):
        ok, detail = _http(check)
    else:
        ok, detail = _command(service, inv, check)
    return ProbeResult(
        target=service.name,
        check=check.kind,
        healthy=ok,
        detail=detail,
        duration_s=round(time.monotonic() - started, 3),
    )


@task(name="probe-health", task_run_name="probe {service.name}")
def probe_health(service: Service, inv: Inventory) -> ProbeResult:
    """Probe a service's health once.

    Example (inside a flow: it probes the real service)::

        @flow
        def check(inv: Inventory):
            return probe_health(inv.service("web"), inv).healthy
    """
    return check_service(service, inv)
