"""Fan-out: a service's restart on each of its instances, rolling, batch by batch.

A batch is at most ``batch_size`` instances and never more than the unavailability
left: ``max_unavailable`` minus the instances whose restart failed and that are still
unhealthy. Each instance of a batch runs the service's restart commands from the
inventory over its own SSH connection (the batch at once), then its health is checked
with the service's verify policy. After each batch the failures are counted over the
whole rollout: more than ``stop_failure_pct`` percent of all instances failed, or no
unavailability left, and the rollout stops; the instances not reached are ``not run``.
The result keeps every instance's outcome (partial success is a result, not a loss).

The blast radius is the whole rollout: the plan's hosts are every instance's host
(``RollingAction.touched``), checked by the rails before the first batch and shown at
the gate, one host per row.

>>> rollout_sizes(5, batch_size=2, max_unavailable=3)
[2, 2, 1]
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, Field

from inventory.errors import ContingencyError, HostKeyError
from inventory.models import Inventory
from inventory.secrets import redact
from remediations.plan import RollingAction
from remediations.runners import StepResult, verify_recovery
from tasks.ssh.models import CommandResult
from tasks.ssh.run import get_connection

log = logging.getLogger("contingency.executor")
InstanceOutcome = Literal["ok", "failed", "not_run"]


class InstanceResult(BaseModel):
    instance: str
    host: str
    outcome: InstanceOutcome
    batch: int = 0
    detail: str = ""
    still_down: bool = False
    """The restart failed and the instance is unhealthy (it counts as unavailable)."""
    commands: list[CommandResult] = Field(default_factory=list)


class Rollout(BaseModel):
    """Every instance's outcome, and why the rollout stopped (if it did)."""

    service: str
    results: list[InstanceResult]
    stopped: str = ""

    def named(self, outcome: InstanceOutcome) -> list[str]:
        return [r.host for r in self.results if r.outcome == outcome]

    @property
    def ok(self) -> bool:
        return all(r.outcome == "ok" for r in self.results)

    def as_markdown(self) -> str:
        """The report's Rollout section: one row per instance, in rollout order."""
        lines = ["| # | host | instance | batch | result | detail |", "|---|---|---|---|---|---|"]
        for n, r in enumerate(self.results, 1):
            batch = str(r.batch) if r.batch else "—"
            word = {"ok": "ok", "failed": "FAILED", "not_run": "not run"}[r.outcome]
            detail = r.detail.replace("|", "\\|")
            lines.append(f"| {n} | {r.host} | {r.instance} | {batch} | {word} | {detail} |")
        if self.stopped:
            lines += ["", f"Stopped: {self.stopped}."]
        return "\n".join(lines)

    def summary(self) -> str:
        total = len(self.results)
        done, failed, left = self.named("ok"), self.named("failed"), self.named("not_run")
        parts = [f"{len(done)}/{total} restarted and healthy" + (f": {', '.join(done)}"
                 if done else "")]  # fmt: skip
        if failed:
            why = "; ".join(f"{r.host} ({r.detail})" for r in self.results if r.outcome == "failed")
            parts.append(f"failed: {why}")
        if left:
            parts.append(f"not run: {', '.join(left)}")
        if self.stopped:
            parts.append(f"stopped: {self.stopped}")
        return "; ".join(parts)


def rollout_sizes(n: int, batch_size: int, max_unavailable: int) -> list[int]:
    """The batch sizes of a rollout where every restart succeeds (pure)."""
    size = max(1, min(batch_size, max_unavailable))
    return [min(size, n - i) for i in range(0, n, size)]


def _restart(a: RollingAction, inv: Inventory, instance: str, host: str) -> InstanceResult:
    """The restart commands on one instance's host, then its health (verify policy)."""
    sent: list[CommandResult] = []
    try:
        conn = get_connection(inv.host(host))
        for command in a.commands:
            res = conn.run(command, timeout=a.timeout_s)
            sent.append(res)
            if res.exit_code != 0 or res.timed_out:
                said = "timed out" if res.timed_out else f"exit {res.exit_code}"
                tail = (res.stderr_tail or res.stdout_tail or "").strip()[-200:]
                return InstanceResult(
                    instance=instance, host=host, outcome="failed", commands=sent,
                    detail=f"`{command}`: {said}" + (f": {tail}" if tail else ""),
                    still_down=not verify_recovery(inv.service(instance), inv).recovered,
                )  # fmt: skip
    except HostKeyError:
        raise
    except ContingencyError as exc:
        return InstanceResult(
            instance=instance, host=host, outcome="failed", commands=sent, still_down=True,
            detail=f"{type(exc).__name__}: {redact(str(exc))[:200]}",
        )  # fmt: skip
    check = verify_recovery(inv.service(instance), inv)
    word = "healthy" if check.recovered else "still unhealthy"
    return InstanceResult(
        instance=instance, host=host, outcome="ok" if check.recovered else "failed",
        commands=sent, still_down=not check.recovered,
        detail=f"{word} after {len(check.attempts)} checks, {check.waited_s:.1f}s",
    )  # fmt: skip


CONNECTS_AT_ONCE = 8
"""SSH handshakes in flight while the rollout runs: more only queue for the CPU (each
is key exchange here and an sshd fork there)."""


def _connect(inv: Inventory, host: str) -> None:
    """Open (and pool) the connection a later batch will use; a failure here is the
    restart's to report, when it connects again."""
    with contextlib.suppress(ContingencyError):
        get_connection(inv.host(host))


def roll(
    a: RollingAction,
    inv: Inventory,
    say: Callable[[str], None] = lambda _t: None,
    restart: Callable[[RollingAction, Inventory, str, str], InstanceResult] = _restart,
    connect: Callable[[Inventory, str], None] | None = _connect,
) -> Rollout:
    """Run the rollout (see the module's docstring); ``say`` hears each batch's end.
    ``connect`` opens the hosts' SSH connections in rollout order while the batches run,
    so a batch does not wait for its handshakes (a restart that needs a connection
    still being opened waits for that one; nothing runs on a host before its batch)."""
    pending = list(a.instances)
    size = a.batch
    results: list[InstanceResult] = []
    failed = down = batch_no = 0
    stopped = ""
    here = contextvars.copy_context()
    with (
        ThreadPoolExecutor(max_workers=size) as pool,
        ThreadPoolExecutor(max_workers=CONNECTS_AT_ONCE) as opener,
    ):
        if connect is not None:
            ahead = [opener.submit(here.copy().run, connect, inv, h) for _, h in pending]
        else:
            ahead = []
        while pending:
            room = a.max_unavailable - down
            if room <= 0:
                stopped = f"{down} instances down, at most {a.max_unavailable} may be"
                break
            batch, pending = pending[: min(size, room)], pending[min(size, room) :]
            batch_no += 1
            # each restart in a copy of this context: the flow run's connection pool
            # and logger follow it onto the pool's threads
            done = list(pool.map(lambda ih: here.copy().run(restart, a, inv, *ih), batch))
            for r in done:
                r.batch = batch_no
            results += done
            failed += sum(r.outcome == "failed" for r in done)
            down += sum(r.still_down for r in done)
            said = ", ".join(f"{r.host} {r.outcome}" for r in done)
            say(f"{a.service} batch {batch_no} ({len(results)}/{len(a.instances)}): {said}")
            percent = 100 * failed / len(a.instances)
            if failed and percent > a.stop_failure_pct:
                stopped = (
                    f"{failed} of {len(a.instances)} failed ({percent:.0f}% > "
                    f"{a.stop_failure_pct:g}%)"
                )
                break
        for future in ahead:  # a stopped rollout opens no more connections
            future.cancel()
    results += [InstanceResult(instance=i, host=h, outcome="not_run") for i, h in pending]
    return Rollout(service=a.service, results=results, stopped=stopped)


def run(
    index: int, a: RollingAction, inv: Inventory, say: Callable[[str], None]
) -> tuple[StepResult, Rollout]:
    """The rollout as the executor's step result (ok only if every instance is)."""
    t0 = time.monotonic()
    rollout = roll(a, inv, say)
    res = StepResult(
        index=index, kind=a.kind, name=a.name, where=a.where, what=a.shown,
        outcome="ok" if rollout.ok else "failed", detail=rollout.summary(),
        duration_s=round(time.monotonic() - t0, 3),
    )  # fmt: skip
    return res, rollout
