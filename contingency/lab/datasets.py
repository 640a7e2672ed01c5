"""The lab's datasets: a local S3 server, sample data on the lab hosts, seeded backups.

``contingency up --lab`` starts SeaweedFS (``weed server -s3``) on a free loopback
port, writes the lab's placeholder S3 credentials as named secrets, renders
``datasets.yaml`` (paths under the lab directory, the server's endpoint), creates the
sample data on the lab hosts and takes one backup of each dataset with the same code
the ``backup`` flow uses, so restores and drills have something to work with.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from inventory.settings import Settings

PLACEHOLDER_DIR = "/var/lib/contingency-lab"
PLACEHOLDER_ENDPOINT = "http://127.0.0.1:8333"
S3_SECRETS = {"lab-s3-key-id": "lab-access", "lab-s3-key": "lab-secret"}
"""SeaweedFS without an identities file accepts any credentials; these are placeholders."""


def render(example: Path, settings: Settings, endpoint: str) -> dict[str, Any]:
    """The example datasets with the lab's directory and S3 endpoint filled in."""
    text = example.read_text(encoding="utf-8")
    text = text.replace(PLACEHOLDER_DIR, str(settings.lab_dir)).replace(
        PLACEHOLDER_ENDPOINT, endpoint
    )
    return yaml.safe_load(text)


def write_secrets(settings: Settings) -> None:
    settings.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, value in S3_SECRETS.items():
        path = settings.secrets_dir / name
        path.write_text(value)
        path.chmod(0o600)


def create_sample_data(settings: Settings) -> None:
    """A small SQLite database for ``report`` and a static site for ``web``."""
    db = settings.lab_dir / "hosts" / "db1" / "data" / "report.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
            conn.executemany(
                "INSERT INTO reports (title, body) VALUES (?, ?)",
                [(f"daily report {i}", "x" * 200) for i in range(500)],
            )
        conn.close()
    www = settings.lab_dir / "hosts" / "web1" / "data" / "www"
    www.mkdir(parents=True, exist_ok=True)
    index = www / "index.html"
    if not index.exists():
        index.write_text("<h1>Contingency lab</h1>\n", encoding="utf-8")
        (www / "about.html").write_text("<p>lab web content</p>\n", encoding="utf-8")
    (settings.lab_dir / "drills").mkdir(parents=True, exist_ok=True)


def seed_backups(settings: Settings, inv_dir: Path) -> list[str]:
    """One backup of each lab dataset (skipped for datasets that already have one)."""
    from flows.backup import take_backup
    from inventory.loader import load_inventory
    from tasks.ssh.run import SSHConnection
    from tasks.storage import Store

    inv = load_inventory(inv_dir)
    notes = []
    for name, ds in sorted(inv.datasets.items()):
        store = Store.for_location(ds.location, settings)
        store.ensure_bucket()
        if _has_backup(store, ds.location.prefix):
            continue
        conn = SSHConnection.connect(inv.host(ds.host), settings)
        try:
            man = take_backup(ds, conn, store)
        finally:
            conn.close()
        notes.append(f"seeded a backup of {name}: {man.key} ({man.size} bytes)")
    return notes


def _has_backup(store: Any, prefix: str, attempts: int = 5) -> bool:
    """Does ``prefix`` hold a readable backup? A freshly started S3 server may answer
    InternalError for a while, and one killed mid-write (a power loss) may have left an
    unreadable object: retried, then taken as "none" (a new backup is seeded)."""
    import time

    from inventory.errors import ContingencyError

    for attempt in range(attempts):
        try:
            return bool(store.restore_points(prefix))
        except ContingencyError:
            if attempt == attempts - 1:
                return False
            time.sleep(2)
    return False
