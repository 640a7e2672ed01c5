"""Safety rails, in one place, checked before any plan acts (``IncidentContext.gate``).

- kill switch: a Prefect Variable; while frozen, plans only plan and notify;
- empty target set, blast radius per run (hosts, percent of a host group);
- cooldown per (plan, target) and a flap breaker (K remediations of one target in T);
- a cap on remediations per time window, any target;
- one remediation per target at a time (a Prefect global concurrency limit).

History lives in Prefect: an incident that acts tags its run ``acted`` beside
``plan:<plan>`` and ``target:<target>``, so every worker sees the same history.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from contextvars import copy_context
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterTags,
)
from prefect.context import FlowRunContext

from inventory.errors import (
    LockUnavailable,
)
from inventory.models import Inventory, PlanName
from inventory.outcomes import Outcome
from remediations.context import Verdict
from remediations.plan import Plan
from tasks.prefect_api import get_client

T = TypeVar("T")
FREEZE_VARIABLE = "contingency_freeze"
ACTED = "acted"


def frozen() -> dict[str, Any] | None:
    """The kill switch: ``{"by": ..., "reason": ..., "at": ...}`` while frozen."""
    from prefect.variables import Variable

    value = Variable.get(FREEZE_VARIABLE, default=None)
    return value if isinstance(value, dict) and value.get("frozen") else None


def _held(plan: Plan, inv: Inventory) -> Any:
    """The security hold on a host the plan touches or targets (None: no hold)."""
    from tasks.security.holds import read

    hosts = set(plan.hosts)
    if plan.target in inv.hosts:
        hosts.add(plan.target)
    elif plan.target in inv.services:
        hosts.add(inv.services[plan.target].host)
    hosts &= set(inv.hosts)
    if not hosts:
        return None
    with get_client(sync_client=True) as client:
        for host in sorted(hosts):
            if (found := read(client, host)) is not None:
                return found
    return None


def freeze(by: str, reason: str) -> None:
    from prefect.variables import Variable

    Variable.set(
        FREEZE_VARIABLE,
        {"frozen": True, "by": by, "reason": reason, "at": datetime.now(UTC).isoformat()},
        overwrite=True,
    )


def thaw() -> None:
    from prefect.variables import Variable

    Variable.set(FREEZE_VARIABLE, {"frozen": False}, overwrite=True)


def blast_radius(plan: Plan, inv: Inventory, max_hosts: int, max_percent: float) -> str | None:
    """Why the plan touches too much (or nothing), else None. Pure."""
    hosts = plan.hosts
    if not plan.actions:
        return "the plan targets nothing (empty target set); aborted before anything ran"
    if len(hosts) > max_hosts:
        return f"the plan touches {len(hosts)} hosts, more than the cap of {max_hosts}"
    groups: dict[str, list[str]] = {}
    for host in inv.hosts.values():  # the ``group`` label and the host groups but ``all``
        named = {host.labels.get("group", ""), *host.groups} - {"", "all"}
        for group in sorted(named):
            groups.setdefault(group, []).append(host.name)
    for group, members in groups.items():
        touched = [h for h in hosts if h in members]
        percent = 100 * len(touched) / len(members)
        if len(members) > 1 and percent > max_percent:
            return (
                f"the plan touches {len(touched)} of {len(members)} hosts of group "
                f"{group!r} ({percent:.0f}% > {max_percent:.0f}%)"
            )
    return None


def _acted_since(tags: list[str], since: datetime) -> list[Any]:
    ctx = FlowRunContext.get()
    me = ctx.flow_run.id if ctx and ctx.flow_run else None
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[ACTED, *tags]),
                start_time=FlowRunFilterStartTime(after_=since),
            )
        )
    return [r for r in runs if r.id != me]


def check(plan: Plan, inv: Inventory) -> Verdict | None:
    """Every rail for ``plan``; a Verdict means: do not act (the reason is in it).

    The rails' four reads (kill switch, security holds, this target's history, every
    remediation in the window) go to the API at once; their answers are judged in the
    order below, and an error in a read that decides is raised as before."""
    now = datetime.now(UTC)
    policy = inv.rails_policy(plan.plan.value)
    mine = [f"plan:{plan.plan.value}", f"target:{tag_value(plan.target)}"]
    from prefect.settings import PREFECT_API_URL

    # Without an API URL each new client starts a temporary server of its own: four at
    # once would race to start theirs, so the reads then run here, one by one, as needed.
    pool = ThreadPoolExecutor(4, thread_name_prefix="rails") if PREFECT_API_URL.value() else None
    try:
        state_f = _beside(pool, frozen)
        held_f = (
            _beside(pool, _held, plan, inv) if plan.plan != PlanName.security_incident else None
        )
        # One query for this target's history; the cooldown and the flap window filter it.
        since = now - timedelta(seconds=max(policy.cooldown_s, policy.flap_window_s))
        history_f = _beside(pool, _acted_since, mine, since)
        since = now - timedelta(seconds=policy.window_s)
        window_f = _beside(pool, _acted_since, [], since)
        return _judge(plan, inv, policy, now, state_f, held_f, history_f, window_f)
    finally:  # a read the verdict did not need is not waited for
        if pool is not None:
            pool.shutdown(wait=False)


class _Later(Generic[T]):
    """``fn(*args)`` read in the caller's thread when (and if) its result is asked for."""

    def __init__(self, fn: Callable[..., T], *args: Any) -> None:
        self.fn, self.args = fn, args

    def result(self) -> T:
        return self.fn(*self.args)


def _beside(
    pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any
) -> Future[T] | _Later[T]:
    """``fn(*args)`` on ``pool``, in a copy of the caller's context (its settings, its
    flow run: a run never counts itself in its own history) but with a Prefect client
    of its own: the run's client is not shared between threads. No pool: later, here."""
    from prefect.context import SyncClientContext

    if pool is None:
        return _Later(fn, *args)
    ctx = copy_context()

    def call() -> T:
        SyncClientContext.__var__.set(None)  # type: ignore[arg-type]
        return fn(*args)

    return pool.submit(ctx.run, call)


def _judge(
    plan: Plan,
    inv: Inventory,
    policy: Any,
    now: datetime,
    state_f: Future[dict[str, Any] | None] | _Later[dict[str, Any] | None],
    held_f: Future[Any] | _Later[Any] | None,
    history_f: Future[list[Any]] | _Later[list[Any]],
    window_f: Future[list[Any]] | _Later[list[Any]],
) -> Verdict | None:
    if state := state_f.result():
        return Verdict(
            outcome=Outcome.frozen,
            message=(
                f"the kill switch is on (by {state.get('by')}: {state.get('reason')}); "
                "the plan was made and notified, nothing was run"
            ),
        )
    if held_f is not None and (held := held_f.result()) is not None:
        return Verdict(
            outcome=Outcome.held,
            message=(
                f"{held.host} is held by security incident {held.run_id} (since "
                f"{held.since:%Y-%m-%d %H:%M} UTC): automatic restarts, fencing and other "
                "changes wait so evidence is not destroyed; nothing was run. A person "
                f"releases it: contingency security release {held.host} --as NAME"
            ),
        )
    if why := blast_radius(plan, inv, policy.max_hosts_per_run, policy.max_group_percent):
        return Verdict(outcome=Outcome.blast_radius, message=why)
    history = history_f.result()

    def within(seconds: float) -> list[Any]:
        since = now - timedelta(seconds=seconds)
        return [r for r in history if r.start_time is not None and r.start_time >= since]

    if policy.cooldown_s and within(policy.cooldown_s):
        return Verdict(
            outcome=Outcome.cooldown,
            message=(
                f"{plan.target} was remediated less than {policy.cooldown_s:.0f}s ago; "
                "not acting again — a human should look"
            ),
        )
    recent = within(policy.flap_window_s)
    if len(recent) + 1 > policy.flap_count:
        return Verdict(
            outcome=Outcome.flapping,
            message=(
                f"{plan.target} was remediated {len(recent)} times in the last "
                f"{policy.flap_window_s:.0f}s; the flap breaker stops the automation"
            ),
        )
    window = window_f.result()
    if len(window) + 1 > policy.max_runs_per_window:
        return Verdict(
            outcome=Outcome.rate_capped,
            message=(
                f"{len(window)} remediations in the last {policy.window_s:.0f}s reached the cap "
                f"of {policy.max_runs_per_window}; not acting"
            ),
        )
    return None


def tag_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]


def tag_run(*tags: str, drop: tuple[str, ...] = ()) -> None:
    """Add tags to the current flow run (its history for the rails); first remove those
    starting with one of ``drop`` (a tag that changes, e.g. ``severity:``)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(ctx.flow_run.id)
        kept = {t for t in run.tags if not (drop and t.startswith(drop))}
        client.update_flow_run(ctx.flow_run.id, tags=sorted({*kept, *tags}))


LOCK_PREFIX = "contingency-target-"


def lock_name(target: str) -> str:
    """Concurrency-limit names may not contain / % & > <."""
    return f"{LOCK_PREFIX}{tag_value(target)}"


LEASE_S = 120.0
LEASE_TAG = "lease:"


@dataclass(frozen=True)
class LockState:
    held: bool
    """True: this run holds the target; False: ``holder`` (a live incident) does."""
    holder: str = ""
    """``name (run id, state)`` of the live incident holding the target."""


def ensure_limit(client: Any, name: str) -> bool:
    """The limit must exist before use (a missing one silently does nothing); read it
    first so no server logs a duplicate-name error for every incident. True if this
    call created it."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_global_concurrency_limit_by_name(name)
        return False
    except ObjectNotFound:
        pass
    with suppress(ObjectAlreadyExists):  # another incident created it just now
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        return True
    return False


def live_holder(client: Any, target: str, me: str | None) -> str:
    """The live incident that holds ``target``'s lock ("" if none): a non-final run
    tagged with the target and a lease, whose process still sends heartbeats."""
    from prefect.client.schemas.filters import FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    from tasks.facts.liveness import is_alive

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"target:{tag_value(target)}"]),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(
                    any_=[StateType.RUNNING, StateType.PAUSED, StateType.PENDING]
                )
            ),
        ),
        limit=20,
    )
    for run in runs:
        leased = any(t.startswith(LEASE_TAG) for t in run.tags)
        if str(run.id) != me and leased and is_alive(client, run):
            return f"{run.name} ({run.id}, {run.state.name if run.state else '?'})"
    return ""


SLOW_LOCK_S = 0.5
"""A lock taken slower than this is logged (it delays the first command)."""


@contextmanager
def target_lock(target: str, wait_s: float = 90.0, try_s: float = 5.0) -> Iterator[LockState]:
    """Hold the target's slot (limit 1) while remediating.

    Yields ``LockState(held=True)``, or ``held=False`` naming the *live* incident that
    holds it (this one then joins it). A timeout or an API error while acquiring is never
    taken for "someone holds it": this keeps trying for ``wait_s`` (the reconciler frees
    a lock whose holder died), then raises :class:`LockUnavailable` (escalated).

    The slot is a lease renewed in the background; its id is tagged on the run
    (``lease:<id>``) so any reconciler can release it if this process dies. Releasing
    retries through an API outage; if that fails too, the reconciler releases it once
    this run is final."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder

    from tasks.prefect_api import (
        acquire_slots_with_lease,
        maintain_lease,
        release_slots_with_lease,
        retry_api,
    )

    name = lock_name(target)
    ctx = FlowRunContext.get()
    run_id = str(ctx.flow_run.id) if ctx and ctx.flow_run else None
    asked = time.monotonic()
    deadline = asked + wait_s
    with get_client(sync_client=True) as client:
        retry_api(lambda: ensure_limit(client, name), f"lock of {target}", wait_s)
        ensured = time.monotonic()
        while True:
            try:
                got = acquire_slots_with_lease(
                    [name], 1, timeout_seconds=try_s, strict=True, lease_duration=LEASE_S,
                    holder=ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id))
                    if run_id else None,
                    suppress_warnings=True,
                )  # fmt: skip
                break
            except TimeoutError:
                why = f"no slot within {try_s:.0f}s"
            except Exception as exc:  # noqa: BLE001 - API errors: try again, bounded
                why = f"{type(exc).__name__} while acquiring"
            try:
                holder = live_holder(client, target, run_id)
            except Exception as exc:  # noqa: BLE001 - cannot tell: do not join blindly
                holder, why = "", f"{why}; holder unknown ({type(exc).__name__})"
            if holder:
                yield LockState(held=False, holder=holder)
                return
            if time.monotonic() > deadline:
                raise LockUnavailable(
                    f"the lock of {target} could not be taken within {wait_s:.0f}s ({why}) "
                    "and no live incident holds it"
                )
            time.sleep(1.0)
    if (took := time.monotonic() - asked) > SLOW_LOCK_S:
        logging.getLogger("contingency.rails").warning(
            "the lock of %s took %.1fs (limit ready after %.1fs)", target, took, ensured - asked
        )
    if run_id:
        retry_api(lambda: tag_run(f"{LEASE_TAG}{got.lease_id}"), "tag the lease", 30)
    try:
        with maintain_lease(got.lease_id, LEASE_S, raise_on_lease_renewal_failure=False):
            yield LockState(held=True)
    finally:
        try:
            retry_api(
                lambda: release_slots_with_lease(got.lease_id),
                f"release the lock of {target}",
            )
        except Exception as exc:  # noqa: BLE001 - the reconciler releases it (run final)
            logging.getLogger("contingency.rails").error(
                "could not release the lock of %s (%s); the reconciler will", target, exc
            )
