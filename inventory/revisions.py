"""Revisions of the plan (预案修订) — of the organisation's plan, not of this product.

The plan is the inventory, so its history is the inventory's own:

- a ``changelog`` section, keyed by version (the organisation's own numbering)::

      changelog:
        "1.1":
          date: 2026-11-02
          by: wang.fang
          change: Backup restore drills every Sunday
          change_zh: 每周日进行备份恢复演练

- else, when the inventory directory is a git repository of its own, its commits that
  touched the inventory (short hash, date, author, subject).

``current_version`` names what the command center reviews (``contingency plans review``).
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PRODUCT_ROOT = Path(__file__).resolve().parents[1]


class Revision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    """The version (the changelog key)."""
    date: date
    by: str = Field(min_length=1, max_length=120)
    """Who made the change (a person of the inventory, or a name)."""
    change: str = Field(min_length=3, max_length=500)
    change_zh: str | None = Field(None, max_length=500)


class HistoryEntry(BaseModel):
    version: str
    date: date
    by: str
    change: str
    change_zh: str | None = None


def from_changelog(changelog: dict[str, Revision]) -> list[HistoryEntry]:
    """Newest first (by date, then version). Pure."""
    entries = [
        HistoryEntry(version=v, **r.model_dump(exclude={"name"})) for v, r in changelog.items()
    ]
    return sorted(entries, key=lambda e: (e.date, e.version), reverse=True)


def _own_repository(path: Path) -> Path | None:
    """The git work tree ``path`` is in, unless it is this product's own checkout (the
    embedded lab inventory lives there: its history is the product's, not a plan's)."""
    folder = path if path.is_dir() else path.parent
    try:
        top = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if not top or Path(top).resolve() == PRODUCT_ROOT:
        return None
    return Path(top)


def from_git(path: Path, limit: int = 30) -> list[HistoryEntry]:
    """The commits that touched the inventory at ``path``, newest first; empty when it is
    not in a repository of its own."""
    top = _own_repository(path)
    if top is None:
        return []
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "log", f"-{limit}", "--date=short",
             "--format=%h%x09%ad%x09%an%x09%s", "--", str(path.resolve())],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    entries = []
    for line in out.splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4:
            version, day, by, subject = parts
            entries.append(
                HistoryEntry(version=version, date=date.fromisoformat(day), by=by, change=subject)
            )
    return entries


def history(changelog: dict[str, Revision], path: Path | None) -> list[HistoryEntry]:
    """The plan's history: its changelog, else its own git history, else nothing."""
    if changelog:
        return from_changelog(changelog)
    return from_git(path) if path is not None else []


def current_version(changelog: dict[str, Revision], path: Path | None) -> str:
    """The version a review approves: the newest history entry, or ``unversioned``."""
    found = history(changelog, path)
    return found[0].version if found else "unversioned"
