"""Fault: target-lock acquisition that times out or errors is never taken for "another
incident holds it". Ten flow runs at once on the real Prefect server (SQLite, the
session's stack), with a 0.2 s acquisition timeout so timeouts really happen: every
one of them ends up holding its lock — none "joins" a holder that does not exist.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from prefect import flow

from remediations import rails
from tests.fixtures_stack import Stack


@flow(name="lock-contention-probe")
def _hold(target: str) -> bool:
    with rails.target_lock(target, wait_s=120, try_s=0.2) as lock:
        if lock.held:
            time.sleep(0.5)
        return lock.held


def test_ten_concurrent_acquisitions_never_join_a_holder_that_does_not_exist(
    lab_stack: Stack,
) -> None:
    shared = f"contention-{uuid.uuid4().hex[:8]}"  # all ten on one target: they queue
    distinct = [f"contention-{uuid.uuid4().hex[:8]}" for _ in range(10)]

    def run_all(targets: list[str]) -> list[bool]:
        # each thread gets this test's Prefect settings (the stack's API): contextvars
        with ThreadPoolExecutor(max_workers=10) as pool:
            futures = [pool.submit(contextvars.copy_context().run, _hold, t) for t in targets]
            return [f.result() for f in futures]

    same = run_all([shared] * 10)
    apart = run_all(distinct)
    assert same == [True] * 10  # each waited its turn instead of "joining"
    assert apart == [True] * 10
