"""Nothing dies silently: real faults injected into the automation's own processes.

Each test kills a real process of its own stack (``kill -9``), makes the worker fail to
start a run for real, or leaks a lock slot, and then checks what a person would: the
final state, the report file and artifact, the page in the lab inbox, the lock
released, and that the next step acts (the plan runs exactly once: the lab host's
command log counts the restarts).

The stack here is this module's own (faults disturb it); the tests leave it running
and healthy for the next one (the supervisor restarts what they kill).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import read
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from inventory.outcomes import Outcome
from tasks.report.summary import read_summaries
from tests.fixtures_stack import (
    Stack,
    approval_code,
    pointed_at,
    run_whereabouts,
    start_stack,
    stop_stack,
    wait_for,
)

DEAD_AFTER = 45  # tasks/facts/liveness.DEAD_AFTER_S: beats every 10 s (Prefect's own every 30 s)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("faults")
    st = start_stack(state_dir)
    try:
        with pointed_at(st):
            yield st
    finally:
        stop_stack(state_dir)


# -- helpers -------------------------------------------------------------------------
def _alert(stack: Stack, target: str, alertname: str = "ServiceDown") -> str:
    label = "dataset" if alertname == "DataLoss" else "service"
    labels = {"alertname": alertname, label: target, "test": uuid.uuid4().hex}
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    assert resp.status_code == 202, resp.text
    return str(resp.json()["incidents"][0]["flow_run_id"])


def _at_gate(run_id: str, timeout_s: float = 90) -> None:
    try:
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), timeout_s, "gate")
    except AssertionError as exc:  # say where the run is: a bare timeout tells nothing
        raise AssertionError(f"{exc}\n{run_whereabouts(run_id)}") from None


def _run(run_id: str):  # type: ignore[no-untyped-def]
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def _reported(run_id: str, timeout_s: float):  # type: ignore[no-untyped-def]
    """Wait until the run is final and its story is told (tag ``reported``)."""

    def told():  # type: ignore[no-untyped-def]
        run = _run(run_id)
        return run if run.state.is_final() and "reported" in run.tags else None

    return wait_for(told, timeout_s, f"run {run_id} final and reported")


def _successor(run) -> str:  # type: ignore[no-untyped-def]
    found = [t.split(":", 1)[1] for t in run.tags if t.startswith("successor:")]
    assert found, f"no successor started for {run.id}: {run.tags}"
    return found[0]


def _report(stack: Stack, run_id: str) -> str:
    path = stack.state_dir / "reports" / f"incident-{run_id}.md"
    return wait_for(lambda: path.exists() and path.read_text(), 30, f"report {path.name}")


def _artifact(run_id: str) -> str:
    from contingency.cli.reports import read_report_artifact

    with get_client(sync_client=True) as client:
        found = read_report_artifact(client, run_id)
    assert found is not None, f"no report artifact for {run_id}"
    return found


def _paged(stack: Stack, text: str, timeout_s: float = 30) -> dict:  # type: ignore[type-arg]
    def find():  # type: ignore[no-untyped-def]
        for msg in read(stack.state_dir / "lab" / "inbox.jsonl", "/cc"):
            if text in str(msg.get("title", "")) + str(msg.get("message", "")):
                return msg
        return None

    return wait_for(find, timeout_s, f"page to the command center containing {text!r}")


def _restarts(stack: Stack, service: str) -> int:
    log = (
        stack.state_dir / "lab" / "hosts" / service_host(stack.settings, service) / "run"
    ) / "labctl.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if line.endswith(f" restart {service}"))


def _lock_free(target: str) -> bool:
    from remediations.rails import lock_name

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(lock_name(target)).active_slots == 0


def _approve_and_finish(stack: Stack, run_id: str, service: str) -> str:
    before = _restarts(stack, service)
    decide(run_id, "approve", "zhang.wei", approval_code(stack, run_id), "go")
    run = wait_for_run(run_id, timeout_s=90)
    assert run.state is not None and run.state.is_completed(), run.state
    assert _restarts(stack, service) == before + 1  # the plan ran exactly once
    wait_for(lambda: _lock_free(service), 30, f"lock of {service} released")
    return _report(stack, run_id)


def _cancel_open() -> None:
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        for g in open_gates():
            client.set_flow_run_state(UUID(g.flow_run_id), Cancelled(), force=True)


def _pid(stack: Stack, name: str) -> int:
    return int((stack.state_dir / "run" / f"{name}.pid").read_text().strip())


@pytest.fixture
def report_down(stack: Stack) -> Iterator[None]:
    crash_service(stack.settings, "report")
    try:
        yield
    finally:
        _cancel_open()
        labctl(stack.settings, service_host(stack.settings, "report"), "start", "report")


# -- the faults ----------------------------------------------------------------------
def test_flow_process_killed_at_the_gate_is_reported_and_the_gate_reopened(
    stack: Stack, report_down: None
) -> None:
    run_id = _alert(stack, "report")
    _at_gate(run_id)
    pidfile = stack.state_dir / "run" / "flows" / f"{run_id}.pid"
    started = time.monotonic()
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    run = _reported(run_id, 60)
    assert time.monotonic() - started < 60
    assert run.state.is_crashed(), run.state
    successor = _successor(run)
    text = _report(stack, run_id)
    assert "interrupted" in text and "started again" in text
    # the cause, as whoever saw the exit first put it: the fork server's post-mortem or
    # the worker (Prefect's own message for exit status 137)
    assert re.search(r"killed by signal 9|status code: 137", text), text
    assert "The lock of report was released" in text and successor in text
    assert "started again" in _artifact(run_id)
    _paged(stack, "INTERRUPTED: ServiceDown on report")
    # the reconciler's typed summary: what stats and /metrics count
    with get_client(sync_client=True) as client:
        facts = read_summaries(client, [run_id])[run_id]
    assert (facts.outcome, facts.plan, facts.target) == (
        Outcome.interrupted,
        "software_crash",
        "report",
    )
    # The gate is asked again (new codes), listed as live, and an approval acts once.
    _at_gate(successor, 60)
    assert next(g for g in open_gates() if g.flow_run_id == successor).live
    assert "recovered" in _approve_and_finish(stack, successor, "report")


def test_fork_server_killed_while_a_gate_waits_keeps_the_gate(
    stack: Stack, report_down: None
) -> None:
    run_id = _alert(stack, "report")
    _at_gate(run_id)
    old = _pid(stack, "forkserver")
    os.kill(old, signal.SIGKILL)
    # The supervisor starts a new fork server and says so; the run's process lives on.
    wait_for(lambda: _pid(stack, "forkserver") != old, 30, "fork server restarted")
    _paged(stack, "forkserver")
    time.sleep(3)  # the launcher notices the lost fork server: it must not crash the run
    run = _run(run_id)
    assert run.state.is_paused(), run.state
    assert "recovered" in _approve_and_finish(stack, run_id, "report")
    assert "interrupted" not in _report(stack, run_id)


def test_run_the_worker_cannot_start_is_reported_paged_and_retried(stack: Stack) -> None:
    """The run's process cannot start: the worker's work directory (where every run
    works, ``<state>/work``) is unusable — a file stands in its place — so the launcher
    exits before any flow code and Prefect marks the run Crashed before it ran. The
    reconciler reports it, pages, and starts the alert again; once the directory is
    back a successor recovers the service."""
    work = stack.state_dir / "work"
    aside = stack.state_dir / "work-aside"
    crash_service(stack.settings, "web")
    work.mkdir(exist_ok=True)
    work.rename(aside)
    work.write_text("not a directory\n")
    try:
        run_id = _alert(stack, "web")
        wait_for(lambda: _run(run_id).state.is_crashed(), 60, "the run fails to start")
        work.unlink()
        aside.rename(work)
        dead = _reported(run_id, 60)
        text = _report(stack, run_id)
        assert "before it started" in text and "started again" in text
        _paged(stack, "INTERRUPTED: ServiceDown on web")
        with get_client(sync_client=True) as client:
            facts = read_summaries(client, [run_id])[run_id]
        assert facts.outcome is Outcome.interrupted and facts.plan == "unroutable", facts
        # the chain of successors (a few may have crashed too before the directory came
        # back) ends in one that recovered web
        current = _successor(dead)
        for _ in range(4):
            run = wait_for_run(current, timeout_s=90)
            if run.state.is_completed():
                break
            current = _successor(_reported(current, 60))
        assert run.state.is_completed(), run.state
        assert "recovered" in _report(stack, current)
    finally:
        if work.is_file():
            work.unlink()
        if aside.exists():
            aside.rename(work)
        labctl(stack.settings, service_host(stack.settings, "web"), "start", "web")


def test_a_leaked_lock_is_never_joined_and_is_freed(stack: Stack) -> None:
    """A slot of web's lock held by nobody (as a full lease-storage disk leaves it): the
    incident waits instead of "joining" nothing, the reconciler frees the slot, the
    incident acts."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from remediations.rails import ensure_limit, lock_name

    # An earlier incident of web, ended, whose (released) lease is still tagged on it:
    # releasing that again frees nothing, so the reconciler must see the slot stay held.
    crash_service(stack.settings, "web")
    assert wait_for_run(_alert(stack, "web"), timeout_s=90).state.is_completed()
    with get_client(sync_client=True) as client:
        ensure_limit(client, lock_name("web"))
        client.update_global_concurrency_limit(
            lock_name("web"), GlobalConcurrencyLimitUpdate(active_slots=1)
        )
    crash_service(stack.settings, "web")
    try:
        run_id = _alert(stack, "web")
        run = wait_for_run(run_id, timeout_s=150)
        assert run.state.is_completed(), run.state
        text = _report(stack, run_id)
        assert "recovered" in text and "joined" not in text
        assert _lock_free("web")
    finally:
        labctl(stack.settings, service_host(stack.settings, "web"), "start", "web")


def test_prefect_server_killed_during_the_restart_still_reports(stack: Stack) -> None:
    crash_service(stack.settings, "web")
    try:
        run_id = _alert(stack, "web")
        wait_for(lambda: "acted" in _run(run_id).tags, 60, "the plan starts acting")
        os.kill(_pid(stack, "server"), signal.SIGKILL)
        # The restart goes on over SSH; the lock release and the report wait for the
        # API the supervisor brings back.
        run = wait_for(lambda: _safe_final(run_id), 120, "the run final after the server came back")
        assert run.state.is_completed(), run.state
        text = _report(stack, run_id)
        assert "recovered" in text
        assert "recovered" in _artifact(run_id)
        wait_for(lambda: _lock_free("web"), 60, "lock of web released")
        # The next alert for web acts (it is healthy now: nothing to do, not "joined").
        crash_service(stack.settings, "web")
        nxt = wait_for_run(_alert(stack, "web"), timeout_s=90)
        assert nxt.state.is_completed() and "recovered" in _report(stack, str(nxt.id))
    finally:
        labctl(stack.settings, service_host(stack.settings, "web"), "start", "web")


def _safe_final(run_id: str):  # type: ignore[no-untyped-def]
    with contextlib.suppress(Exception):
        run = _run(run_id)
        if run.state.is_final():
            return run
    return None


def _every_process(state_dir: Path) -> list[int]:
    """Every process whose environment names this stack's state directory."""
    pids = []
    needle = f"CONTINGENCY_STATE_DIR={state_dir}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of the test's own: the test takes every process of it down."""
    st = start_stack(tmp_path / "state")
    try:
        yield st
    finally:
        stop_stack(st.state_dir)


def _use(st: Stack) -> contextlib.AbstractContextManager[Stack]:
    return pointed_at(st)


def _reboot_then_approve_once(st: Stack, run_ids: list[str], down: bool) -> None:
    """Take the whole stack away (``contingency down``, or ``kill -9`` of every process),
    start it again, and check each gate is re-asked and one approval acts once."""
    if down:
        stop_stack(st.state_dir)
    else:
        for pid in _every_process(st.state_dir):  # every stack process, flows included
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _every_process(st.state_dir), 30, "every process gone")
    again = start_stack(st.state_dir)
    crash_service(again.settings, "report")  # the lab came back with report running
    started = time.monotonic()
    with _use(again):
        successors = []
        for run_id in run_ids:
            old = _reported(run_id, 60 + DEAD_AFTER)
            assert old.state.is_crashed(), old.state
            assert "started again" in _report(again, run_id)
            successors.append(_successor(old))
        assert time.monotonic() - started < 60 + DEAD_AFTER
        _paged(again, "INTERRUPTED: ServiceDown on report")
        for successor in successors:
            _at_gate(successor, 60)
        assert "recovered" in _approve_and_finish(again, successors[0], "report")
        _cancel_open()


def test_power_loss_with_a_gate_waiting_then_up_reopens_and_acts_once(
    own_stack: Stack,
) -> None:
    with _use(own_stack):
        crash_service(own_stack.settings, "report")
        run_id = _alert(own_stack, "report")
        _at_gate(run_id)
    _reboot_then_approve_once(own_stack, [run_id], down=False)


def test_down_then_up_with_two_gates_waiting_reopens_both(own_stack: Stack) -> None:
    with _use(own_stack):
        crash_service(own_stack.settings, "report")
        first = _alert(own_stack, "report")
        _at_gate(first)
        second = _alert(own_stack, "report-db", alertname="DataLoss")
        _at_gate(second)
    _reboot_then_approve_once(own_stack, [first, second], down=True)


def test_forced_running_at_the_gate_is_reported_interrupted_and_can_be_reopened(
    stack: Stack, report_down: None
) -> None:
    """Someone holding the API forces a waiting incident to Running (no decision): the
    gate closes as interrupted, is reported and paged; `contingency gates reopen` asks
    the command center again and an approval then acts once."""
    from prefect.states import Running

    from contingency.cli.gates import reopen

    run_id = _alert(stack, "report")
    _at_gate(run_id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Running(), force=True)
    run = _reported(run_id, 60)
    assert run.state.name == "Interrupted", run.state
    text = _report(stack, run_id)
    assert "interrupted" in text and f"contingency gates reopen {run_id}" in text
    assert "No command was run." in text
    _paged(stack, "INTERRUPTED: ServiceDown on report")
    successor = reopen(run_id)
    assert reopen(run_id) == successor  # asked twice: still one successor
    _at_gate(successor, 60)
    assert "recovered" in _approve_and_finish(stack, successor, "report")
