"""The data-loss plan through the real stack: alert → two sign-offs → restore from the lab's
real SeaweedFS onto a real lab host over SSH → services stopped and started around the
swap → live data identical to the backup, the old copy kept."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from contingency.cli.alerts import alertmanager_payload
from contingency.cli.gates import decide, open_gates
from contingency.lab.inbox import read
from contingency.runtime.waiting import wait_for_run
from inventory.loader import load_inventory
from tasks.storage import MANIFEST_SUFFIX, Store
from tests.fixtures_stack import Stack, person_codes, wait_for

pytestmark = pytest.mark.integration


def _store(stack: Stack, dataset: str) -> tuple[Store, object]:
    ds = load_inventory(stack.inventory).datasets[dataset]
    return Store.for_location(ds.location, stack.settings), ds


def _bytes_of(store: Store, key: str) -> bytes:
    buf = io.BytesIO()
    store.download_to(key, buf.write, expect=store.manifest(key))
    return buf.getvalue()


def _open(stack: Stack, dataset: str) -> str:
    labels = {"alertname": "DataLoss", "dataset": dataset, "test": uuid.uuid4().hex}
    resp = stack.post("/webhook/alertmanager", alertmanager_payload(labels))
    run_id = resp.json()["incidents"][0]["flow_run_id"]
    # a busy CI machine once took over 60 s from the alert to the plan's gate
    wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 120, what="gate open")
    return run_id


def _codes(stack: Stack, run_id: str, person: str) -> list[str]:
    """The distinct one-time codes ``person``'s own channel got for this run, in order."""
    return list(dict.fromkeys(person_codes(stack, run_id, person)))


def _next_code(stack: Stack, run_id: str, n: int, person: str = "zhang.wei") -> str:
    """The n-th one-time code sent to ``person`` for this run (1-based): codes are per
    person; after the first approval the others get fresh ones."""
    codes = wait_for(
        lambda: _codes(stack, run_id, person)[n - 1 :] or None, 30, what=f"{person}'s code {n}"
    )
    return codes[0]


def _decide(run_id: str, *args: str) -> None:
    """Submit a decision once the gate is (again) waiting for one."""

    def paused() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(uuid.UUID(run_id)).state
        return bool(state and state.is_paused())

    wait_for(paused, 60, what="gate waiting")
    decide(run_id, "approve", *args)


def _report(stack: Stack, run_id: str) -> str:
    return (stack.state_dir / "reports" / f"incident-{run_id}.md").read_text()


@pytest.fixture
def report_db(lab_stack: Stack) -> Iterator[tuple[Path, Store, list[str]]]:
    """The lab's report-db with two restore points (the seeded one and a newer one)."""
    from flows.backup import take_backup
    from tasks.ssh.run import SSHConnection

    inv = load_inventory(lab_stack.inventory)
    store, ds = _store(lab_stack, "report-db")
    live = Path(ds.path)  # type: ignore[attr-defined]
    conn = SSHConnection.connect(inv.host("db1"), lab_stack.settings)
    try:
        take_backup(ds, conn, store)  # type: ignore[arg-type]
    finally:
        conn.close()
    keys = [p.key for p in store.restore_points("report-db")]
    yield live, store, keys
    for p in live.parent.glob("report.sqlite.contingency-old-*"):
        p.unlink()


def test_restore_needs_two_approvers_and_puts_back_the_picked_backup(
    lab_stack: Stack, report_db: tuple[Path, Store, list[str]]
) -> None:
    live, store, keys = report_db
    older = keys[0]
    wanted = _bytes_of(store, older)
    live.write_bytes(b"this database was destroyed")
    run_id = _open(lab_stack, "report-db")
    zhang = _next_code(lab_stack, run_id, 1)
    # a code sent to zhang.wei is refused for li.na (3/8: sign-off nobody can forge)
    _decide(run_id, "li.na", zhang, "forged", older)
    # an approver may only pick one of the offered restore points
    _decide(run_id, "zhang.wei", zhang, "go", "nope/x.sqlite")
    _decide(run_id, "zhang.wei", zhang, "go", older)
    code2 = _next_code(lab_stack, run_id, 2, "li.na")  # two-person rule: her fresh code
    # one person cannot be both approvers, even holding the other's code
    _decide(run_id, "zhang.wei", code2, "me again", older)
    _decide(run_id, "zhang.wei", zhang, "me again", older)
    _decide(run_id, "li.na", code2, "agreed", older)
    run = wait_for_run(run_id, timeout_s=120)
    text = _report(lab_stack, run_id)
    assert run.state is not None and run.state.is_completed(), (run.state, text)
    assert "code was not issued to li.na" in text
    assert text.count("zhang.wei already approved; a second, different approver") == 2
    # per approval: the person, the channel (secret name) the code went to, when
    assert re.search(r"\| zhang\.wei \| approve \| person-zhang-wei \| [\d-]+ [\d:]+ \| ", text)
    assert re.search(r"\| li\.na \| approve \| person-li-na \| [\d-]+ [\d:]+ \| ", text)
    assert "json://" not in text  # a channel is named, never its URL
    cc = [m for m in read(lab_stack.state_dir / "lab" / "inbox.jsonl", "/cc")]
    mine = [m for m in cc if run_id in str(m.get("message", ""))]
    assert mine and all("code:" not in str(m["message"]) for m in mine)
    assert all(c not in str(m) for m in mine for c in (zhang, code2))
    assert hashlib.sha256(live.read_bytes()).digest() == hashlib.sha256(wanted).digest()
    kept = list(live.parent.glob("report.sqlite.contingency-old-*"))
    assert [p.read_bytes() for p in kept] == [b"this database was destroyed"]
    assert "is not one of the offered choices" in text
    assert "labctl stop report" in text and "labctl start report" in text
    assert f"picked by the approvers: {older}" in text and "restored" in text
    assert re.search(r"time to approve\W+\d+\.\ds", text) and re.search(
        r"time to recover\W+\d+\.\ds", text
    ), text[:1500]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert any(a.type == "progress" and a.data == 100.0 for a in arts), [a.type for a in arts]


@pytest.fixture
def corrupt_latest(lab_stack: Stack) -> Iterator[tuple[Path, bytes]]:
    """A newer web-content backup whose bytes do not match its manifest."""
    store, ds = _store(lab_stack, "web-content")
    [first, *_] = store.restore_points("web-content")
    bogus = "web-content/29991231T000000000000Z.tar.gz"
    man = first.manifest.model_copy(update={"key": bogus, "created": first.manifest.created})
    man = man.model_copy(update={"created": man.created.replace(year=2999)})
    body = _bytes_of(store, first.key)
    store.client.put_object(Bucket=store.bucket, Key=bogus, Body=body[:-10] + b"0123456789")
    store.client.put_object(
        Bucket=store.bucket, Key=bogus + MANIFEST_SUFFIX, Body=man.model_dump_json().encode()
    )
    index = Path(ds.path) / "index.html"  # type: ignore[attr-defined]
    index.write_text("<h1>changed after the backup</h1>\n")
    yield index.parent, index.read_bytes()
    store.client.delete_object(Bucket=store.bucket, Key=bogus)
    store.client.delete_object(Bucket=store.bucket, Key=bogus + MANIFEST_SUFFIX)


def test_corrupt_backup_leaves_live_data_untouched(
    lab_stack: Stack, corrupt_latest: tuple[Path, bytes]
) -> None:
    www, before = corrupt_latest
    run_id = _open(lab_stack, "web-content")
    _decide(run_id, "zhang.wei", _next_code(lab_stack, run_id, 1))
    _decide(run_id, "li.na", _next_code(lab_stack, run_id, 2, "li.na"))
    run = wait_for_run(run_id, timeout_s=120)
    assert run.state is not None and run.state.name == "Escalated"
    assert (www / "index.html").read_bytes() == before
    assert sorted(p.name for p in www.parent.iterdir()) == ["www"]  # nothing left beside it
    text = _report(lab_stack, run_id)
    assert "restore_failed" in text and "download failed, live data untouched" in text


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    return subprocess.run(
        [sys.executable, "-m", "contingency", *args, "--state-dir", str(stack.state_dir)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_lists_backups_and_plans_a_restore(lab_stack: Stack) -> None:
    store, _ = _store(lab_stack, "web-content")
    keys = [p.key for p in store.restore_points("web-content")]
    listed = _cli(lab_stack, "backups", "list", "web-content")
    assert listed.returncode == 0, listed.stderr
    assert all(k in listed.stdout for k in keys) and "within" in listed.stdout
    assert _cli(lab_stack, "backups", "list", "no-such").returncode == 2
    plan = _cli(lab_stack, "restore", "web-content", "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    run_id = re.search(r"incident flow run ([0-9a-f-]{36})", plan.stdout).group(1)  # type: ignore[union-attr]
    report = _report(lab_stack, run_id)
    assert "dry_run" in report and "tar -tzf" in report and "labctl" not in report
    assert "restore: completed" in plan.stdout
    early = _cli(lab_stack, "restore", "web-content", "--at", "2000-01-01T00:00:00", "--dry-run")
    assert early.returncode == 1 and "no backups found taken before 2000-01-01" in early.stdout
    assert _cli(lab_stack, "restore", "web-content", "--at", "yesterday").returncode == 2


def test_cli_restore_follows_the_gate_and_the_download(lab_stack: Stack) -> None:
    _, ds = _store(lab_stack, "web-content")
    www = Path(ds.path)  # type: ignore[attr-defined]
    (www / "index.html").write_text("vandalised")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "contingency", "restore", "web-content",
         "--state-dir", str(lab_stack.state_dir)],
        env={**env, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: any("waiting for sign-off" in line for line in lines), 120, "CLI gate")
        run_id = open_gates()[0].flow_run_id
        _decide(run_id, "zhang.wei", _next_code(lab_stack, run_id, 1))
        _decide(run_id, "li.na", _next_code(lab_stack, run_id, 2, "li.na"))
        proc.wait(timeout=120)
        reader.join(10)
    finally:
        proc.kill()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "100.0%" in output and "restored" in output
    assert (www / "index.html").read_text() == "<h1>Contingency lab</h1>\n"
    for old in www.parent.glob("www.contingency-old-*"):
        shutil.rmtree(old)
