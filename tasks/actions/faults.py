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

SCENARIOS = ("service-stop", "dataset-corrupt", "link-cut", "host-stop")
DRILL_SITES = {"lab", "staging"}
TABLE = "contingency_gameday"
"""The nftables table a link-cut or host-stop game day adds (and deletes)."""
_DROP_TABLE = f"nft delete table inet {TABLE} 2>/dev/null; true"


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


def plan_fault(
    scenario: str, target: str, inv: Inventory, tag: str | None = None, window_s: float = 360
) -> Fault:
    """The commands that inject (and undo) ``scenario`` on ``target``. Pure.

    ``window_s``: how long a stopped host stays stopped at most (it comes back by itself:
    nothing can reach it to undo the stop)."""
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
    elif scenario == "link-cut":
        fault = _link_cut(target, inv)
    elif scenario == "host-stop":
        fault = _host_stop(target, inv, window_s)
    else:
        raise FaultRefused(f"unknown scenario {scenario[:40]!r} (known: {', '.join(SCENARIOS)})")
    if not drill_allowed(inv.host(fault.host).labels):
        raise FaultRefused(
            f"host {fault.host} is not a drill host (labels site: lab|staging or gameday: allowed)"
        )
    return fault


def _link_cut(target: str, inv: Inventory) -> Fault:
    """The primary link stops passing traffic: its router drops every packet that would
    leave through the link's interface (nftables; the routes stay as they are)."""
    link = inv.links.get(target)
    if link is None:
        raise FaultRefused(f"link-cut needs a link; {target[:80]!r} is not one")
    if link.role != "primary":
        raise FaultRefused(f"link-cut drills a primary link (its plan fails over); {target} is not")
    iface = shlex.quote(link.interface)
    chain = "{ type filter hook %s priority -50; }"
    inject = f"nft add table inet {TABLE} && " + " && ".join(
        f"nft {shlex.quote(f'add chain inet {TABLE} {hook} {chain % hook}')} && "
        f"nft add rule inet {TABLE} {hook} oifname {iface} drop"
        for hook in ("output", "forward")
    )
    return Fault(
        scenario="link-cut", target=target, host=link.router, inject=[_DROP_TABLE, inject],
        undo=[_DROP_TABLE], cleanup=[_DROP_TABLE],
        alert={"alertname": "LinkDown", "link": target},
    )  # fmt: skip


def _host_stop(target: str, inv: Inventory, window_s: float) -> Fault:
    """The host stops answering: it drops every packet it receives, from a second after
    the command returns, for ``window_s`` at most; then it comes back by itself (a host
    that answers nothing cannot be told to come back)."""
    if target not in inv.hosts:
        raise FaultRefused(f"host-stop needs a host; {target[:80]!r} is not one")
    if target not in inv.host_failover:
        raise FaultRefused(f"host {target} has no host_failover entry: no plan to drill")
    rules = (
        f"add table inet {TABLE}\n"
        f"add chain inet {TABLE} input {{ type filter hook input priority -50; policy drop; }}\n"
    )
    script = (
        f"sleep 1; printf {shlex.quote(rules)} | nft -f -; "
        f"sleep {int(window_s)}; nft delete table inet {TABLE}"
    )
    inject = f"nohup sh -c {shlex.quote(script)} >/dev/null 2>&1 </dev/null &"
    return Fault(
        scenario="host-stop", target=target, host=target, inject=[_DROP_TABLE, inject],
        undo=[_DROP_TABLE], cleanup=[],  # fenced by the plan: it ends the stop by itself
        alert={"alertname": "HostDown", "host": target},
    )  # fmt: skip


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
    if fault.scenario == "link-cut":  # the router reaches a probe target on its default route
        link = inv.links[fault.target]
        pings = " || ".join(f"ping -n -q -c 1 -W 1 {shlex.quote(t)} >/dev/null"
                            for t in link.probe_targets)  # fmt: skip
        return run_ssh(inv.host(link.router), pings, timeout=30).ok
    if fault.scenario == "host-stop":  # the host's services answer (wherever they run now)
        services = [svc for svc in inv.services.values() if svc.host == fault.target]
        return bool(services) and all(check_service(svc, inv).healthy for svc in services)
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
