"""The dispatcher in a process of its own, started and stopped by the intake.

Why a process: routing a storm's alerts and parsing Prefect's answers is CPU work. On
the webhook's event loop, a post arriving during a round waited for it (a 200-alert
post's 202 took 144 ms instead of 20 ms in ``benchmarks/storm.py``); on a thread of the
intake's process it waited for the GIL instead (250 ms). In a process of its own, the
intake only stores each post and answers.

The intake keeps the write end of a pipe: a byte on it means "new alerts are stored",
end of file means the intake is gone (stopped, or killed with ``-9``), and the
dispatcher then stops too. Whatever it had not finished is still pending in the outbox,
and the next intake's dispatcher takes it (starting is idempotent per fingerprint).

Its counters (incidents started, alerts absorbed…) are written to a JSON file beside the
outbox before each round's rows are; the intake's ``/metrics`` adds what is new in it
(``DispatchProcess.sync_metrics``)::

    proc = DispatchProcess(settings, outbox, metrics)
    proc.start()          # in the intake's lifespan
    proc.poke()           # after each stored post
    await proc.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from contingency.intake.dedup import AnsweredCache
from contingency.intake.dispatch import Dispatcher
from contingency.intake.inventory_cache import InventoryCache
from contingency.intake.metrics import IntakeMetrics
from contingency.intake.outbox import Outbox
from contingency.intake.schemas import IncidentRef
from contingency.intake.starter import IncidentStarter
from inventory.errors import CheckFailed
from inventory.settings import Settings, get_settings

log = logging.getLogger("contingency.intake")
COUNTERS_FILE = "dispatch-counters.json"
ANSWER_POLL_S = 0.05
"""How often a post with ``?wait=`` looks for its incidents in the outbox."""
STOP_WAIT_S = 15.0


def _counters(metrics: IntakeMetrics) -> dict[str, Counter]:
    """The counters the dispatcher moves, by family name."""
    return {
        c._name: c  # noqa: SLF001 - prometheus_client keeps the family name there
        for c in (
            metrics.started,
            metrics.deduplicated,
            metrics.dedup_cache_hits,
            metrics.absorbed,
            metrics.dispatch_errors,
        )
    }


def counter_values(metrics: IntakeMetrics) -> list[tuple[str, dict[str, str], float]]:
    """``(family, labels, value)`` of every dispatcher counter sample."""
    out = []
    for name, counter in _counters(metrics).items():
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out.append((name, dict(sample.labels), float(sample.value)))
    return out


def write_counters(path: Path, metrics: IntakeMetrics) -> None:
    """Atomically replace ``path`` with this process's counters."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "counters": counter_values(metrics)}))
    tmp.replace(path)


class DispatchProcess:
    """The intake's side: start, poke, wait for answers, stop, read the counters."""

    def __init__(self, settings: Settings, outbox: Outbox, metrics: IntakeMetrics) -> None:
        self.settings, self.outbox, self.metrics = settings, outbox, metrics
        self.counters_path = outbox.path.parent / COUNTERS_FILE
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None
        self._seen: dict[tuple[int, str, tuple[tuple[str, str], ...]], float] = {}

    def start(self) -> None:
        """Start the process, or start it again if it died (it logs why to stderr)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            code = self._proc.returncode
            log.error("intake: the dispatcher exited (%s); starting it again", code)
            self._close_pipe()
        read, write = os.pipe()
        env = {
            **os.environ,
            "CONTINGENCY_STATE_DIR": str(self.settings.state_dir),
            "CONTINGENCY_INVENTORY": str(self.settings.inventory_path()),
            "CONTINGENCY_INTAKE_OUTBOX": str(self.outbox.path),
        }
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "contingency.intake.dispatch_process", str(read)],
                pass_fds=(read,),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(read)
        os.set_blocking(write, False)
        self._pipe = write

    def ready(self) -> str:
        """``/readyz``: the process runs and has warmed up (it writes its counters, with
        its pid, once its Prefect client and the inventory are loaded). A process that
        died is started again here too, so stored alerts do not wait for the next post."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            self.start()
            raise CheckFailed(f"dispatcher not running (exit code {code}); started again")
        try:
            pid = int(json.loads(self.counters_path.read_text()).get("pid", 0))
        except (OSError, ValueError, AttributeError):
            pid = 0
        if pid != proc.pid:
            raise CheckFailed("dispatcher starting (Prefect client and inventory loading)")
        return f"dispatcher running (pid {proc.pid})"

    def poke(self) -> None:
        """New alerts are stored (never blocks: a full pipe already holds a poke)."""
        if self._pipe is None:
            return
        try:
            os.write(self._pipe, b".")
        except BlockingIOError:
            pass
        except OSError:  # the process died: start it again (it finds the stored alerts)
            self.start()

    async def answers(self, row_ids: list[int], wait_s: float) -> dict[int, IncidentRef]:
        """The incidents of the stored alerts known within ``wait_s``, from the outbox."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        known: dict[int, IncidentRef] = {}
        while True:
            left = [r for r in row_ids if r not in known]
            stored = await asyncio.to_thread(self.outbox.answers, left)
            known |= {r: IncidentRef.model_validate_json(a) for r, a in stored.items()}
            remaining = deadline - loop.time()
            if len(known) == len(row_ids) or remaining <= 0:
                return known
            await asyncio.sleep(min(remaining, ANSWER_POLL_S))

    async def stop(self) -> None:
        """Close the pipe (the process finishes its round's writes and exits)."""
        proc = self._proc
        self._close_pipe()
        if proc is None:
            return
        try:
            await asyncio.to_thread(proc.wait, STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            log.warning("intake: the dispatcher did not stop in %.0f s; killed", STOP_WAIT_S)
            proc.kill()
            await asyncio.to_thread(proc.wait)
        self._proc = None

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None

    def sync_metrics(self) -> None:
        """Add to this process's counters what the dispatcher counted since the last
        call (a restarted dispatcher counts from zero again; these never go down)."""
        try:
            data: dict[str, Any] = json.loads(self.counters_path.read_text())
        except (OSError, ValueError):
            return
        counters = _counters(self.metrics)
        pid = int(data.get("pid", 0))
        for name, labels, value in data.get("counters", []):
            counter = counters.get(name)
            if counter is None:
                continue
            key = (pid, name, tuple(sorted(labels.items())))
            delta = float(value) - self._seen.get(key, 0.0)
            if delta > 0:
                (counter.labels(**labels) if labels else counter).inc(delta)
                self._seen[key] = float(value)


async def serve(settings: Settings, pipe: int) -> None:
    """The dispatcher's process: rounds until the intake's pipe closes."""
    outbox = Outbox(settings.outbox_path)
    starter = IncidentStarter(
        settings.incident_deployment,
        AnsweredCache(settings.intake_dedup_cache, settings.intake_dedup_ttl_s),
    )
    metrics = IntakeMetrics()
    counters = outbox.path.parent / COUNTERS_FILE
    inventory = InventoryCache(settings)
    dispatcher = Dispatcher(
        outbox,
        starter,
        inventory,
        metrics,
        grace_s=settings.correlation_grace_s,
        on_flush=lambda: write_counters(counters, metrics),
    )
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    os.set_blocking(pipe, False)

    def readable() -> None:
        try:
            data = os.read(pipe, 4096)
        except BlockingIOError:
            return
        if data:
            dispatcher.poke()
        else:  # end of file: the intake stopped or was killed
            loop.remove_reader(pipe)
            gone.set()

    loop.add_reader(pipe, readable)
    try:
        await starter.warm_up()  # the first alert as fast as the rest
    except Exception as exc:  # noqa: BLE001 - the server may come later
        log.warning("intake: dispatcher's Prefect client not ready (%s)", type(exc).__name__)
    await asyncio.to_thread(inventory)
    write_counters(counters, metrics)
    dispatcher.start()  # also what a previous intake stored and did not dispatch
    await gone.wait()
    started = time.monotonic()
    await dispatcher.stop()
    await dispatcher.flush()
    await starter.close()
    outbox.close()
    log.info("intake: dispatcher stopped in %.1f s", time.monotonic() - started)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per Prefect call
    asyncio.run(serve(get_settings(), int(args[0])))


if __name__ == "__main__":
    main()
