"""The dispatcher: stored alerts → incidents, after the 202, with retries.

Each round takes up to ``batch`` due alerts from the outbox (most urgent first), reads
the open incidents' causes once, and handles the alerts broadest cause first (links,
then hosts, then services), so within a burst the link's alert opens the incident and
the alerts of everything behind it join that incident (``inventory/correlation.py``)
instead of starting their own. Independent alerts are created concurrently (the
starter bounds the Prefect calls). An alert whose incident cannot be started yet stays
in the outbox and is tried again with backoff; nothing is dropped.

An absorbed alert whose cause ended and that was not resolved within ``grace_s`` is
dispatched on its own: it becomes an incident of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outbox import Outbox, Row
from contingency.intake.schemas import IncidentRef
from contingency.intake.starter import IncidentStarter
from inventory.alert import Alert
from inventory.correlation import BREADTH, CAUSE_TAG, Target, cause_tag, covering
from inventory.errors import CheckFailed
from inventory.models import Inventory
from inventory.routing import route

log = logging.getLogger("contingency.intake")
ABSORBED_NOTE = "joined the open incident of its cause"
QUEUES = {0: "critical", 1: "default", 2: "default", 3: "low"}
"""Outbox priority → the work-pool queue the incident waits in (``deploy.QUEUE_PRIORITY``)."""


@dataclass
class _Item:
    row: Row
    alert: Alert
    target: Target | None
    covering: list[Target] = field(default_factory=list)
    plan: str = "unknown"


def routed_target(alert: Alert, inv: Inventory | None) -> tuple[Target | None, str]:
    """The alert's routed ``(kind, name)`` and plan label (for metrics)."""
    if inv is None:
        return None, "unknown"
    decision = route(alert, inv)
    if not decision.routed or decision.target is None or decision.target_kind is None:
        return None, "unroutable"
    plan = decision.plan.value if decision.plan else "unroutable"
    return (decision.target_kind, decision.target), plan


FLUSH_ROWS, FLUSH_S = 50, 0.5
"""A round writes its finished rows every 50 rows or 0.5 s, and at its end."""
STARTS_AT_ONCE = 8
"""Incident starts in flight at once. Prefect's API is the bottleneck, not this number;
hundreds of concurrent starts would each take an event-loop turn ahead of a webhook
post waiting for its 202 (that post's ack time grew to 150 ms in benchmarks/storm.py)."""


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        starter: IncidentStarter,
        inventory: Callable[[], Inventory | None],
        metrics: IntakeMetrics,
        batch: int = 500,
        grace_s: float = 120.0,
        poll_s: float = 0.5,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.starter = starter
        self.inventory = inventory
        self.metrics = metrics
        self.batch = batch
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.on_flush = on_flush
        """Called before a round's rows are written (the process publishes its counters)."""
        self.wake = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[IncidentRef]] = {}
        self._finished: list[tuple[int, str, str | None, str, str | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._last_release = 0.0
        self._last_purge = 0.0
        self._last_flush = time.monotonic()
        self._starting = asyncio.Semaphore(STARTS_AT_ONCE)

    # --- the app's side ---------------------------------------------------------------

    async def answers(self, row_ids: list[int], wait_s: float) -> dict[int, IncidentRef]:
        """The incidents of the stored alerts known within ``wait_s`` (for ``?wait=``):
        from this dispatcher as it goes, or from the outbox (another intake process on
        the same state dir may have dispatched them)."""
        loop = asyncio.get_running_loop()
        futures = {rid: self._waiters.setdefault(rid, loop.create_future()) for rid in row_ids}
        known: dict[int, IncidentRef] = {}
        deadline = loop.time() + wait_s
        try:
            while True:
                known |= {r: f.result() for r, f in futures.items() if f.done() and
                          not f.cancelled()}  # fmt: skip
                left = [r for r in row_ids if r not in known]
                if left:
                    stored = await asyncio.to_thread(self.outbox.answers, left)
                    known |= {r: IncidentRef.model_validate_json(a) for r, a in stored.items()}
                remaining = deadline - loop.time()
                if len(known) == len(row_ids) or remaining <= 0:
                    return known
                pending = [f for r, f in futures.items() if r not in known]
                await asyncio.wait(pending, timeout=min(remaining, 0.25))
        finally:
            for rid in row_ids:
                fut = self._waiters.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.cancel()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="dispatch")

    def ready(self) -> str:
        """``/readyz``: the dispatch loop runs."""
        if self._task is None or self._task.done():
            raise CheckFailed("dispatcher not running")
        return "dispatcher running (in the intake's process)"

    def poke(self) -> None:
        """New alerts are stored: start a round now."""
        self.wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # --- the loop -----------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                worked = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("intake: dispatch round failed; retrying")
                worked = False
            if not worked:
                self.wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for whose event is
                # set as the task is cancelled swallows the cancellation (stop() hung)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self.wake.wait()

    async def round(self) -> bool:
        """One round; True if it handled any alert (then the next round starts at once)."""
        now = time.monotonic()
        if now - self._last_release > 5.0:
            self._last_release = now
            await self.release_absorbed()
        if now - self._last_purge > 3600.0:
            self._last_purge = now
            await asyncio.to_thread(self.outbox.purge)
        rows = await asyncio.to_thread(self.outbox.due, self.batch)
        if not rows:
            return False
        await self.dispatch(rows)
        return True

    async def dispatch(self, rows: list[Row]) -> None:
        # re-read every 30 s: YAML parsing is tens of ms of CPU, kept off the event loop
        # that answers webhook posts (a post arriving then waited for it)
        inv = await asyncio.to_thread(self.inventory)
        firing: list[_Item] = []
        resolved: list[_Item] = []
        for n, row in enumerate(rows):
            if n % 25 == 24:  # routing is CPU work: let the webhook answers through
                await asyncio.sleep(0)
            try:
                alert = Alert.model_validate_json(row.alert)
            except ValueError as exc:  # stored by an older version: keep it visible
                await asyncio.to_thread(self.outbox.finish, row.id, "closed", None, str(exc))
                continue
            target, plan = routed_target(alert, inv) if alert.status == "firing" else (None, "")
            item = _Item(row, alert, target, covering(target, inv) if target and inv else [], plan)
            (firing if alert.status == "firing" else resolved).append(item)
        try:
            causes = await self.starter.open_causes()
        except Exception as exc:  # noqa: BLE001 - Prefect away: every row waits its turn
            for item in [*firing, *resolved]:
                await self._retry(item, exc)
            return
        firing.sort(key=lambda i: (BREADTH.get(i.target[0], 3) if i.target else 3,
                                   i.row.priority, i.row.id))  # fmt: skip
        creating: dict[Target, asyncio.Task[IncidentRef | None]] = {}
        absorbed: dict[str, list[_Item]] = defaultdict(list)
        tasks: list[asyncio.Task[IncidentRef | None]] = []
        for item in firing:
            cause = await self._cause(item, causes, creating)
            if cause is not None:
                absorbed[cause].append(item)
                continue
            task = asyncio.create_task(self._start(item))
            tasks.append(task)
            if item.target is not None:
                creating.setdefault(item.target, task)
        try:
            await asyncio.gather(*tasks)
            for run_id, items in absorbed.items():
                await self._absorb(run_id, items)
        finally:
            await self.flush()  # before resolutions: they close absorbed rows
        try:
            for item in resolved:
                await self._resolve(item)
        finally:
            await self.flush()

    async def _cause(
        self,
        item: _Item,
        causes: dict[Target, tuple[str, str]],
        creating: dict[Target, asyncio.Task[IncidentRef | None]],
    ) -> str | None:
        """The open incident ``item`` joins, if any (waiting for one being created now)."""
        for target in item.covering:
            if target in causes:
                run_id, fingerprint = causes[target]
                if fingerprint == item.alert.fingerprint:
                    return None  # its own incident: a re-send, answered by idempotency
                return run_id
            if target in creating:
                ref = await creating[target]
                if ref is not None and ref.flow_run_id and not ref.deduplicated:
                    causes[target] = (ref.flow_run_id, ref.fingerprint)
                    if ref.fingerprint != item.alert.fingerprint:
                        return ref.flow_run_id
                return None
        return None

    async def _start(self, item: _Item) -> IncidentRef | None:
        alert, row = item.alert, item.row
        tags = [cause_tag(item.target), CAUSE_TAG] if item.target is not None else []
        try:
            async with self._starting:
                ref = await self.starter.start(
                    alert, join_open=row.join_open, tags=tags, work_queue=QUEUES[row.priority]
                )
        except Exception as exc:  # noqa: BLE001 - retried; the 202 was already given
            await self._retry(item, exc)
            return None
        if ref.deduplicated:
            self.metrics.deduplicated.labels(source=alert.source).inc()
            if ref.note == IncidentStarter.CACHED_NOTE:
                self.metrics.dedup_cache_hits.inc()
        elif ref.flow_run_id:
            self.metrics.started.labels(plan=item.plan).inc()
        await self._finish(row.id, "done", ref)
        return ref

    async def _absorb(self, run_id: str, items: list[_Item]) -> None:
        try:
            await self.starter.record_absorbed(run_id, [i.alert for i in items])
        except Exception as exc:  # noqa: BLE001 - retried as a whole batch
            for item in items:
                await self._retry(item, exc)
            return
        for item in items:
            self.metrics.absorbed.inc()
            ref = IncidentRef(
                fingerprint=item.alert.fingerprint,
                status="firing",
                flow_run_id=run_id,
                deduplicated=True,
                note=ABSORBED_NOTE,
            )
            await self._finish(item.row.id, "absorbed", ref)

    async def _resolve(self, item: _Item) -> None:
        try:
            ref = await self.starter.start(item.alert)
        except Exception as exc:  # noqa: BLE001
            await self._retry(item, exc)
            return
        closed = await asyncio.to_thread(
            self.outbox.close_absorbed, item.alert.fingerprint, "resolved while absorbed"
        )
        if closed:
            ref = ref.model_copy(update={"note": f"{ref.note}; {closed} absorbed alert(s) closed"})
        await self._finish(item.row.id, "done", ref)

    async def _retry(self, item: _Item, exc: BaseException) -> None:
        self.metrics.dispatch_errors.inc()
        note = f"not started yet: {type(exc).__name__}"
        delay = await asyncio.to_thread(self.outbox.retry, item.row.id, item.row.attempts, note)
        log.warning(
            "intake: alert %r not dispatched (%s: %s); retry in %.1fs",
            item.alert.fingerprint[:128], type(exc).__name__, str(exc)[:300], delay,
        )  # fmt: skip

    async def _finish(self, row_id: int, state: str, ref: IncidentRef) -> None:
        """Answer the waiting post now; the row is written with others in one
        transaction (``flush``): one fsync per 50 rows or 0.5 s, not one per alert, so a
        post being stored meanwhile never queues behind hundreds of them. Killed before the
        flush, the rows are dispatched again, and starting is idempotent per fingerprint."""
        self._finished.append((row_id, state, ref.flow_run_id, ref.note, ref.model_dump_json()))
        fut = self._waiters.pop(row_id, None)
        if fut is not None and not fut.done():
            fut.set_result(ref)
        now = time.monotonic()
        if len(self._finished) >= FLUSH_ROWS or now - self._last_flush >= FLUSH_S:
            # a long round (hundreds of starts) shows its answers as it goes: a post
            # waiting in another process (``?wait=``) reads them from the outbox
            await self.flush()

    async def flush(self) -> None:
        done, self._finished = self._finished, []
        self._last_flush = time.monotonic()
        if self.on_flush is not None:
            self.on_flush()
        if done:
            await asyncio.to_thread(self.outbox.finish_many, done)

    async def release_absorbed(self) -> None:
        """Absorbed alerts whose cause ended ``grace_s`` ago and that did not resolve:
        dispatched on their own."""
        rows = await asyncio.to_thread(self.outbox.absorbed)
        if not rows:
            return
        try:
            ended = await self.starter.ended(sorted({r.run_id for r in rows if r.run_id}))
        except Exception as exc:  # noqa: BLE001 - next time
            log.warning("intake: absorbed alerts not checked (%s)", type(exc).__name__)
            return
        now = time.time()
        for row in rows:
            at = ended.get(row.run_id or "")
            if at is not None and now - at.timestamp() >= self.grace_s:
                note = f"its cause {row.run_id} ended and it still fires: dispatched on its own"
                await asyncio.to_thread(self.outbox.requeue, row.id, note)
                self.wake.set()
