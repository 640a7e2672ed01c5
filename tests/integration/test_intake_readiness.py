"""``GET /readyz`` of real intake processes: the lab stack's own intake is ready; extra
uvicorn intakes pointed at a closed Prefect port, at a work pool with no worker, or at a
state directory on a read-only (or full) filesystem answer 503 naming that check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from contingency.runtime.processes import check_ok, free_port
from tests.fixtures_stack import ACK_WAIT, Stack, wait_for


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def dispatcher_ready(url: str) -> bool:
    try:
        return check_ok(f"{url}/readyz", "dispatcher")
    except requests.RequestException:
        return False


@contextmanager
def intake_process(stack: Stack, **extra: str) -> Iterator[str]:
    """A second real intake (``uvicorn --factory``) on the stack's Prefect server; ``extra``
    environment variables override the stack's (e.g. ``CONTINGENCY_WORK_POOL``)."""
    port = free_port()
    # its own outbox, as a replica on another machine has (the stack's intake and other
    # replicas would otherwise dispatch this one's alerts: answers from their caches)
    outbox = Path(tempfile.mkdtemp(prefix="outbox-")) / "outbox.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env |= {
        "CONTINGENCY_INTAKE_OUTBOX": str(outbox),
        "PREFECT_API_URL": stack.api_url,
        "PREFECT_API_AUTH_STRING": stack.auth,
        "CONTINGENCY_WEBHOOK_TOKEN": stack.token,
        "CONTINGENCY_INVENTORY": str(stack.inventory),
        "CONTINGENCY_STATE_DIR": str(stack.state_dir),
        "CONTINGENCY_INTAKE_ACK_WAIT_S": ACK_WAIT,  # answers carry the incidents
        **extra,
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", "contingency.intake.app:app_from_env"]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), what="intake up")
        # and its dispatcher warmed up: answers then carry the incidents (``ACK_WAIT``)
        wait_for(lambda: dispatcher_ready(url), what="intake's dispatcher ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(outbox.parent, ignore_errors=True)


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    r = requests.get(f"{url}/readyz", timeout=15)  # no Authorization header: probes have none
    return r.status_code, r.json()


def test_the_stack_intake_is_ready_without_a_token(lab_stack: Stack) -> None:
    status, body = wait_for(
        lambda: (answer := readyz(lab_stack.intake_url))[0] == 200 and answer,
        timeout_s=60,
        what="the stack intake ready (a worker heartbeat)",
    )
    assert status == 200 and body["ready"] is True and "failing" not in body
    checks = body["checks"]
    assert set(checks) == {"prefect_api", "deployment", "worker", "state_dir", "dispatcher"}
    assert all(c["ok"] for c in checks.values()), checks
    assert "live worker" in checks["worker"]["detail"]
    text = requests.get(f"{lab_stack.intake_url}/readyz", timeout=5).text
    assert lab_stack.token not in text and lab_stack.auth not in text
    assert str(lab_stack.state_dir) not in text
    # liveness is unchanged
    assert requests.get(f"{lab_stack.intake_url}/healthz", timeout=5).json() == {"status": "ok"}


def test_prefect_unreachable_is_not_ready(lab_stack: Stack) -> None:
    dead = free_port()
    with intake_process(
        lab_stack,
        PREFECT_API_URL=f"http://127.0.0.1:{dead}/api",
        PREFECT_CLIENT_MAX_RETRIES="0",
    ) as url:
        started = time.monotonic()
        status, body = readyz(url)
        assert time.monotonic() - started < 10  # each check is bounded (~2 s)
        assert status == 503 and body["ready"] is False
        assert "prefect_api" in body["failing"]
        assert body["checks"]["state_dir"]["ok"] is True
        assert str(dead) not in str(body) and lab_stack.auth not in str(body)


def test_a_work_pool_without_a_live_worker_is_not_ready(lab_stack: Stack) -> None:
    with intake_process(lab_stack, CONTINGENCY_WORK_POOL="no-such-pool") as url:
        status, body = readyz(url)
        assert status == 503 and body["failing"] == ["worker"], body
        assert body["checks"]["worker"]["detail"] == "work pool 'no-such-pool' not found"
        assert body["checks"]["prefect_api"]["ok"] and body["checks"]["deployment"]["ok"]


@contextmanager
def small_tmpfs(path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``path`` (root can write through permissions, not through a
    read-only or full filesystem); unmounted afterwards."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_an_unwritable_state_dir_is_not_ready(lab_stack: Stack, tmp_path: Path, fault: str) -> None:
    with (
        small_tmpfs(tmp_path / "state") as state,
        intake_process(lab_stack, CONTINGENCY_STATE_DIR=str(state)) as url,
    ):
        status, body = wait_for(
            lambda: (answer := readyz(url))[0] == 200 and answer, what="ready on tmpfs"
        )
        if fault == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
            code = "EROFS"
        else:
            fill(state / "filler")
            code = "ENOSPC"
        time.sleep(1.2)  # the verdict is cached for 1 s
        status, body = readyz(url)
        assert status == 503 and body["failing"] == ["state_dir"], body
        assert body["checks"]["state_dir"]["detail"] == (f"state directory not writable ({code})")
        assert str(state) not in str(body)
        # the disk recovers: ready again
        if fault == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)
        else:
            (state / "filler").unlink()
        wait_for(lambda: readyz(url)[0] == 200, timeout_s=10, what="ready again")
