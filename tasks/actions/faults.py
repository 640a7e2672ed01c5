"""Faults a game day injects, and how it undoes them — only on hosts marked for drills.

Every command comes from the inventory (a service's stop/start commands) or is built
here from inventory values with :func:`shlex.quote`. A host takes part in game days only
if its labels say ``site: lab`` / ``site: staging`` or ``gameday: allowed``: a game day
never touches production by accident.

    fault = plan_fault("service-stop", "web", inv)
    inject(fault, inv)          # runs fault.inject over SSH
    ...
    undo(fault, inv)            # only if the plan did not recover it
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from pydantic import BaseModel

from inventory.errors import (
    FaultRefused,
)
from inventory.models import Inventory
from tasks.facts.probes import check_service
from tasks.ssh.run import CommandResult, run_ssh

SCENARIOS = ("service-stop", "dataset-corrupt")
DRILL_SITES = {"lab", "staging"}


class Fault(BaseModel):
    scenario: str
    target: str
    host: str
    inject: list[str]
    undo: list[str]
    """Puts things back if the plan under test did not."""
    cleanup: list[str] = []
    """Removes the game day's own leftovers after a recovery."""
    alert: dict[str, str]
    """The labels of the alert the monitoring would raise."""


def drill_allowed(labels: dict[str, str]) -> bool:
    return labels.get("site") in DRILL_SITES or labels.get("gameday") == "allowed"


def plan_fault(scenario: str, target: str, inv: Inventory, tag: str | None = None) -> Fault:
    """The commands that inject (and undo) ``scenario`` on ``target``. Pure."""
    tag = tag or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if scenario == "service-stop":
        if target not in inv.services:
            raise FaultRefused(f"service-stop needs a service; {target[:80]!r} is not one")
        svc = inv.service(target)
        host, stop, start = svc.host, svc.manager.stop_commands(), svc.manager.start_commands()
        if not stop or not start:
            raise FaultRefused(f"service {target} has no stop/start commands in the inventory")
        fault = Fault(
            scenario=scenario, target=target, host=host, inject=stop, undo=start,
            alert={"alertname": "ServiceDown", "service": target},
        )  # fmt: skip
    elif scenario == "dataset-corrupt":
        if target not in inv.datasets:
            raise FaultRefused(f"dataset-corrupt needs a dataset; {target[:80]!r} is not one")
        ds = inv.datasets[target]
        live, keep = shlex.quote(ds.path), shlex.quote(f"{ds.path}.gameday-{tag}")
        garbage = shlex.quote("corrupted by a game day\n")
        corrupt = (
            f"rm -rf {live} && mkdir {live}"
            if ds.kind.value == "directory"
            else f"printf %s {garbage} > {live}"
        )
        fault = Fault(
            scenario=scenario, target=target, host=ds.host,
            inject=[f"cp -a {live} {keep}", corrupt],
            undo=[f"rm -rf {live} && mv {keep} {live}"],
            cleanup=[f"rm -rf {keep}"],
            alert={"alertname": "DataLoss", "dataset": target},
        )  # fmt: skip
    else:
        raise FaultRefused(f"unknown scenario {scenario[:40]!r} (known: {', '.join(SCENARIOS)})")
    if not drill_allowed(inv.host(fault.host).labels):
        raise FaultRefused(
            f"host {fault.host} is not a drill host (labels site: lab|staging or gameday: allowed)"
        )
    return fault


def run_all(commands: list[str], host: str, inv: Inventory) -> list[CommandResult]:
    """Run commands in order, stopping at the first that fails."""
    results = []
    for cmd in commands:
        res = run_ssh(inv.host(host), cmd)
        results.append(res)
        if not res.ok:
            break
    return results


def healthy(fault: Fault, inv: Inventory) -> bool:
    """Is the target healthy: the service's health check, or the dataset's verify command
    (and, for a file, that it is not the game day's garbage)."""
    if fault.scenario == "service-stop":
        return check_service(inv.service(fault.target), inv).healthy
    ds = inv.datasets[fault.target]
    from tasks.actions.restore import verify_command

    cmd = (
        verify_command(ds, ds.path)
        + f" && ! grep -qs 'corrupted by a game day' {shlex.quote(ds.path)}"
    )
    if ds.kind.value == "directory":
        cmd = verify_command(ds, ds.path) + f' && [ -n "$(ls -A {shlex.quote(ds.path)})" ]'
    from tasks.ssh.run import get_connection

    return get_connection(inv.host(ds.host)).run(cmd, timeout=60).ok


def inject_and_time(
    fault: Fault, inv: Inventory, interval_s: float, timeout_s: float
) -> tuple[float, float | None]:
    """Inject the fault; probe until the target is seen unhealthy. Returns the monotonic
    times of the injection and of the detection (None: never seen unhealthy)."""
    import time

    injected = time.monotonic()
    results = run_all(fault.inject, fault.host, inv)
    if not all(r.ok for r in results):
        raise FaultRefused(f"injecting {fault.scenario} on {fault.target} failed: {results[-1]}")
    while time.monotonic() - injected < timeout_s:
        if not healthy(fault, inv):
            return injected, time.monotonic()
        time.sleep(interval_s)
    return injected, None
