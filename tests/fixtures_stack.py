"""A real embedded stack for integration tests: Prefect server, worker, intake and lab.

Started once per test session with ``contingency up --lab`` in a temporary state
directory on free ports, and stopped with ``contingency down`` even when tests fail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from contingency.lab.launcher import DEFAULT_SERVICE_PORTS
from contingency.runtime.processes import free_port
from inventory.settings import Settings, get_settings

CLI = [sys.executable, "-m", "contingency"]
ACK_WAIT = "25"


@dataclass
class Stack:
    state_dir: Path
    api_url: str
    ui_url: str
    intake_url: str
    token: str
    inventory: Path

    @property
    def auth(self) -> str:
        """The Prefect API auth string (``user:password``) the UI asks for."""
        return (self.state_dir / "secrets" / "prefect-auth-string").read_text().strip()

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.state_dir, inventory=self.inventory)

    def post(
        self, path: str, payload: object, token: str | None = None, settle: bool = True
    ) -> requests.Response:
        """Post to the intake. With ``settle``, an incident the answer still calls
        "queued" after the intake's ack wait is read from the outbox once dispatched
        (``settle_queued``); the answer is otherwise the intake's own."""
        outbox = self.settings.outbox_path
        before = last_outbox_row(outbox)
        resp = requests.post(
            f"{self.intake_url}{path}",
            json=payload,
            timeout=60,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )
        if not settle or "?wait=0" in path:
            return resp
        return settle_queued(resp, outbox, before, self.state_dir / "run" / "intake.log")


def _outbox(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def last_outbox_row(outbox: Path) -> int:
    """The id of the intake outbox's newest row (0 if there is none yet)."""
    try:
        with closing(_outbox(outbox)) as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0])
    except sqlite3.Error:
        return 0


def settle_queued(
    resp: requests.Response, outbox: Path, after: int, intake_log: Path, timeout_s: float = 120
) -> requests.Response:
    """An intake answer whose incidents still say "queued" (the dispatcher is behind on a
    busy machine) completed from the outbox once dispatched: the first row of each
    fingerprint stored after row ``after``, up to ``timeout_s``."""
    if resp.status_code != 202:
        return resp
    body = resp.json()
    queued = [i for i in body.get("incidents", []) if i.get("note", "").startswith("queued")]
    for ref in queued:
        ref.update(_dispatched(outbox, after, ref["fingerprint"], intake_log, timeout_s))
    if queued:
        resp._content = json.dumps(body).encode()
    return resp


def _dispatched(
    outbox: Path, after: int, fingerprint: str, intake_log: Path, timeout_s: float
) -> dict:
    sql = (
        "SELECT answer FROM alerts WHERE id > ? AND fingerprint = ? AND answer IS NOT NULL"
        " ORDER BY id LIMIT 1"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with closing(_outbox(outbox)) as db:
            row = db.execute(sql, (after, fingerprint)).fetchone()
        if row:
            return dict(json.loads(row[0]))
        time.sleep(0.5)
    lines = intake_log.read_text(errors="replace").splitlines()[-30:] if intake_log.exists() else []
    raise AssertionError(
        f"alert {fingerprint} not dispatched after {timeout_s}s; intake log:\n" + "\n".join(lines)
    )


def start_stack(
    state_dir: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Stack:
    # Every lab service on a port of its own: two stacks starting at once (one per xdist
    # worker) would otherwise both find a default port free and share it.
    ports = ",".join(f"{name}={free_port()}" for name in DEFAULT_SERVICE_PORTS)
    argv = [
        *CLI,
        "up",
        "--lab",
        "--state-dir",
        str(state_dir),
        "--api-port",
        "0",
        "--intake-port",
        "0",
        "--lab-ssh-port",
        str(free_port()),
        "--lab-service-ports",
        ports,
    ]
    if database_url:
        argv += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    # The tests read each post's incidents from the answer: the intake waits for them
    # (up to 25 s; Stack.post waits longer) unless a post says ?wait=0.
    env["CONTINGENCY_INTAKE_ACK_WAIT_S"] = ACK_WAIT
    env.update(extra_env or {})
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        subprocess.run([*CLI, "down", "--state-dir", str(state_dir)], env=env, timeout=120)
        raise RuntimeError(f"contingency up failed:\n{proc.stdout}\n{proc.stderr}")
    from contingency.runtime.stack import read_stack

    info = read_stack(Settings(state_dir=state_dir))
    token = (state_dir / "secrets" / "webhook-token").read_text().strip()
    return Stack(state_dir, info.api_url, info.ui_url, info.intake_url, token, Path(info.inventory))


def stop_stack(state_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    subprocess.run(
        [*CLI, "down", "--state-dir", str(state_dir)], env=env, timeout=120, capture_output=True
    )


@contextmanager
def pointed_at(stack: Stack) -> Iterator[Stack]:
    """This process's Prefect client and ``CONTINGENCY_*`` settings on ``stack``; the
    environment is put back afterwards."""
    from contingency.runtime.stack import stack_client

    keys = ("PREFECT_API_URL", "CONTINGENCY_STATE_DIR", "CONTINGENCY_INVENTORY")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        PREFECT_API_URL=stack.api_url,
        CONTINGENCY_STATE_DIR=str(stack.state_dir),
        CONTINGENCY_INVENTORY=str(stack.inventory),
    )
    get_settings.cache_clear()  # settings read in this process follow the environment
    try:
        with stack_client(stack.settings):
            yield stack
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def lab_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded stack with the lab, on SQLite; this process's Prefect client uses it."""
    state_dir = tmp_path_factory.mktemp("stack")
    stack = start_stack(state_dir)
    try:
        with pointed_at(stack):
            yield stack
    finally:
        stop_stack(state_dir)


@pytest.fixture(autouse=True)
def _no_incident_left_open(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test on the shared lab stack leaves no incident of its own open: one that
    failed half-way would hold its target's lock, and the next test's alert for that
    target would join it instead of opening its own. Cancelled at the test's end."""
    if "lab_stack" not in request.fixturenames:
        yield
        return
    since = datetime.now(UTC) - timedelta(seconds=1)
    yield
    cancel_open_incidents(since)


def cancel_open_incidents(since: datetime) -> list[str]:
    """Cancel the incident runs created since ``since`` that have not ended."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    open_types = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["incident"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_types)),
            )
        )
        mine = [r for r in runs if r.created is not None and r.created >= since]
        for run in mine:
            client.set_flow_run_state(run.id, Cancelled(message="test ended"), force=True)
    return [str(r.id) for r in mine]


def service_pid(url: str) -> int | None:
    try:
        return int(requests.get(url, timeout=2).json()["pid"])
    except (requests.RequestException, ValueError, KeyError):
        return None


def wait_for(check, timeout_s: float = 60, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def approval_code(stack: Stack, run_id: str, person: str = "zhang.wei") -> str:
    """The newest one-time approval code ``person``'s own lab channel got for a run
    (codes are per person; the command-center channel never carries one)."""
    return wait_for(
        lambda: person_codes(stack, run_id, person)[-1:] or None,
        timeout_s=20,
        what=f"approval code for {person} in the lab inbox",
    )[0]


def person_codes(stack: Stack, run_id: str, person: str = "zhang.wei") -> list[str]:
    """Every one-time code ``person``'s own lab channel got for a run, oldest first
    (a reminder repeats the still-valid code)."""
    from contingency.lab.inbox import codes_for

    return codes_for(stack.state_dir / "lab" / "inbox.jsonl", run_id, person)


def cli(
    stack: Stack, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``contingency ARGS --state-dir <the stack's>`` as a user would run it (no Prefect
    or Contingency variables from the test's environment but ``env``), output captured."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env = {**base, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "contingency", *args, "--state-dir", str(stack.state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "COLUMNS": "200"},
    )


def run_whereabouts(run_id: str) -> str:
    """The run's state, tags and last log lines (for a failure message)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]))
        )
    lines = [f"{entry.timestamp:%H:%M:%S} {entry.message[:300]}" for entry in logs[-15:]]
    state = run.state.name if run.state else None
    return "\n".join([f"run {run_id}: {state}, tags {run.tags}", *lines])
