"""Backup flow: stream a dataset off its host over SSH straight into a multipart upload.

Commands come only from inventory values, quoted with :func:`shlex.quote`.

Example::

    from flows.backup import backup_flow
    backup_flow(datasets=["orders-db"])         # as a Prefect flow (deployment: backup)

    man = take_backup(ds, conn, store)           # the plain logic, e.g. for the lab seeder
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import PurePosixPath

from prefect import flow, get_run_logger

from inventory.datasets import BackupFormat, Dataset
from inventory.errors import (
    BackupFailed,
    ContingencyError,
)
from inventory.secrets import redact
from tasks.ssh.run import SSHConnection, get_connection
from tasks.ssh.stream import stream_stdout
from tasks.storage import Manifest, Store


def backup_command(ds: Dataset) -> str:
    """The shell command whose stdout is the backup of ``ds``.

    >>> from inventory.datasets import Dataset
    >>> loc = {"bucket": "bkp", "prefix": "p", "endpoint": "http://s", "key_id_ref": "a",
    ...        "key_ref": "b"}
    >>> backup_command(Dataset(host="h", path="/srv/my data", kind="directory",
    ...                        format="tar.gz", location=loc))
    "tar -C '/srv/my data' -czf - ."
    """
    q = shlex.quote(ds.path)
    if ds.format is BackupFormat.tar_gz:
        return f"tar -C {q} -czf - ."
    if ds.format is BackupFormat.tar:
        return f"tar -C {q} -cf - ."
    if ds.format is BackupFormat.sqlite:
        tmp = str(PurePosixPath(ds.path).parent / ".contingency-backup.sqlite")
        dot = shlex.quote(f'.backup "{tmp}"')
        t = shlex.quote(tmp)
        return f"sqlite3 {q} {dot} && cat {t}; rc=$?; rm -f {t}; exit $rc"
    return f"cat {q}"


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def take_backup(ds: Dataset, conn: SSHConnection, store: Store) -> Manifest:
    """Stream one backup of ``ds`` into ``store`` and write its manifest."""
    key = ds.object_key(stamp())
    with stream_stdout(conn, backup_command(ds)) as out:
        return store.upload_stream(
            key, out, source_host=ds.host, source_path=ds.path, fmt=ds.format.value
        )


@flow(name="backup")
def backup_flow(
    datasets: list[str] | None = None, inventory_path: str | None = None
) -> list[Manifest]:
    """Take a backup of each named dataset (default: all), one after the other.

    A failing dataset does not stop the others; the run fails if any failed.
    """
    from inventory.loader import load_inventory
    from inventory.settings import get_settings

    logger = get_run_logger()
    inv = load_inventory(inventory_path or get_settings().inventory_path())
    names = datasets or sorted(inv.datasets)
    unknown = [n for n in names if n not in inv.datasets]
    if unknown:
        raise ValueError(f"unknown datasets: {', '.join(repr(n[:60]) for n in unknown)}")
    done, failed = [], []
    for name in names:
        ds = inv.datasets[name]
        try:
            store = Store.for_location(ds.location)
            store.ensure_bucket()
            man = take_backup(ds, get_connection(inv.host(ds.host)), store)
        except ContingencyError as exc:
            logger.error("backup of %s failed: %s", name, redact(str(exc)))
            failed.append(name)
            continue
        logger.info("backup of %s: %s (%d bytes, %.1fs)", name, man.key, man.size, man.duration_s)
        done.append(man)
    if failed:
        raise BackupFailed(f"backups failed for: {', '.join(failed)}")
    return done
