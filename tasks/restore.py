"""Restore one backup onto a host without ever losing live data.

Order: download (SHA-256 on the fly, via SFTP) to a temp path beside the target →
SHA-256 of the copy on the host → format check + verify command on the copy → stop
the services (``hooks.stop``) → move live data aside (kept) → rename the copy into
place → start the services and check their health (``hooks.start``) → verify command
on the live path → on failure, put the old data back and start the services again.
Any failure before the swap leaves live data untouched.

Example::

    res = restore_point(ds, conn, store, point)
    print(res.ok, res.reason, res.aside)
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from pydantic import BaseModel

from inventory.datasets import BackupFormat, Dataset, DatasetKind
from tasks.errors import ContingencyError
from tasks.ssh import SSHConnection
from tasks.ssh_models import CommandResult
from tasks.storage import RestorePoint, Store


@dataclass
class RestoreHooks:
    """What happens around the swap; each returns False on failure."""

    stop: Callable[[], bool] = lambda: True
    """Stop the dataset's services (called only once the copy is verified)."""
    start: Callable[[], bool] = lambda: True
    """Start the services again and check their health."""
    record: Callable[[CommandResult], None] = lambda _r: None
    """Sees every command the restore runs (for the report)."""


class RestoreResult(BaseModel):
    dataset_path: str
    key: str
    ok: bool
    swapped: bool = False
    rolled_back: bool = False
    aside: str = ""
    reason: str = ""


def _q(p: str) -> str:
    return shlex.quote(p)


def format_check(ds: Dataset, copy: str) -> str:
    """Command that fails unless ``copy`` (a downloaded file) has the dataset's format."""
    if ds.format is BackupFormat.sqlite:
        return f"test \"$(sqlite3 {_q(copy)} 'PRAGMA integrity_check')\" = ok"
    if ds.format is BackupFormat.tar_gz:
        return f"tar -tzf {_q(copy)} >/dev/null"
    if ds.format is BackupFormat.tar:
        return f"tar -tf {_q(copy)} >/dev/null"
    return "true"


def verify_command(ds: Dataset, path: str) -> str:
    return ds.verify.replace("{path}", _q(path)) if ds.verify else "true"


def restore_point(
    ds: Dataset, conn: SSHConnection, store: Store, point: RestorePoint,
    target: str | None = None, progress: Callable[[int], None] | None = None,
    hooks: RestoreHooks | None = None,
) -> RestoreResult:  # fmt: skip
    """Restore ``point`` to ``target`` (default: the dataset's live path) on ``conn``'s host."""
    live = target or ds.path
    tag = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    parent = str(PurePosixPath(live).parent)
    name = PurePosixPath(live).name
    dl = f"{parent}/.{name}.contingency-download-{tag}"
    staged = f"{parent}/.{name}.contingency-new-{tag}"
    aside = f"{parent}/{name}.contingency-old-{tag}"
    res = RestoreResult(dataset_path=live, key=point.key, ok=False)
    hooks = hooks or RestoreHooks()

    def run(cmd: str) -> bool:
        result = conn.run(cmd, timeout=600)
        hooks.record(result)
        return result.ok

    def cleanup() -> None:
        run(f"rm -rf {_q(dl)} {_q(staged)}")

    try:
        sftp = conn.open_sftp()
        try:
            with sftp.open(dl, "wb") as f:
                f.set_pipelined(True)
                store.download_to(point.key, f.write, expect=point.manifest, progress=progress)
        finally:
            sftp.close()
    except (ContingencyError, OSError) as exc:
        cleanup()
        return res.model_copy(update={"reason": f"download failed, live data untouched: {exc}"})
    # The bytes streamed matched the manifest; check the bytes that landed on the host
    # too (a full disk or a short write must never reach the swap).
    landed = conn.run(f"sha256sum {_q(dl)}", timeout=600)
    hooks.record(landed)
    if not landed.ok or landed.stdout_tail.split()[:1] != [point.manifest.sha256]:
        cleanup()
        return res.model_copy(
            update={
                "reason": "download failed, live data untouched: the copy on the host does not "
                "match the manifest's SHA-256 (disk full or short write?)"
            }
        )
    if not run(format_check(ds, dl)):
        cleanup()
        return res.model_copy(update={"reason": "format check failed, live data untouched"})
    if ds.kind is DatasetKind.directory:
        flag = "z" if ds.format is BackupFormat.tar_gz else ""
        ok = run(f"mkdir {_q(staged)} && tar -C {_q(staged)} -x{flag}f {_q(dl)} && rm -f {_q(dl)}")
    else:
        ok = run(f"mv {_q(dl)} {_q(staged)}")
    if not ok:
        cleanup()
        return res.model_copy(update={"reason": "staging failed (disk full?), live data untouched"})
    if not run(verify_command(ds, staged)):
        cleanup()
        return res.model_copy(update={"reason": "verify command failed, live data untouched"})
    if not hooks.stop():
        hooks.start()
        cleanup()
        return res.model_copy(update={"reason": "could not stop the services; live data untouched"})
    had_live = run(f"test -e {_q(live)}")
    if had_live and not run(f"mv {_q(live)} {_q(aside)}"):
        cleanup()
        hooks.start()
        return res.model_copy(update={"reason": "could not move live data aside; untouched"})
    res = res.model_copy(update={"aside": aside if had_live else ""})
    swapped = run(f"mv {_q(staged)} {_q(live)}")
    if swapped and hooks.start() and run(verify_command(ds, live)):
        return res.model_copy(update={"ok": True, "swapped": True, "reason": "restored"})
    hooks.stop()
    back = had_live and run(f"rm -rf {_q(live)} && mv {_q(aside)} {_q(live)}")
    hooks.start()
    cleanup()
    why = "the swap failed" if not swapped else "the health check failed after the swap"
    after = (
        "old data put back" if back
        else "ROLLBACK FAILED" if had_live
        else "there was no old data to put back"
    )  # fmt: skip
    return res.model_copy(
        update={"swapped": True, "rolled_back": back, "reason": f"{why}; {after}"}
    )
