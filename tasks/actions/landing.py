"""Hash a restore's copy on the host while it lands, so the check after the download
need not read the whole copy again.

A second command on the same connection follows the file as it grows (``tail -F``),
hashes its first ``size`` bytes, and waits until it is told the download is over (its
standard input closes: `SSHConnection.run` ``hold``). The hash counts only if the file
did not change after it was taken (same modification time, exactly ``size`` bytes), so
a writer that rewrote the file — curl retrying — voids it. Anything else
(no GNU ``tail``, the download failed, the connection dropped) also voids it: the
caller then hashes the copy from disk as before. The result is never trusted for less.

Used for the host's own download (``restore_via: direct``). Measured on the lab, 1 GiB,
three runs each in one process: direct restore 5.18 / 4.70 / 5.31 s with it, 5.84 /
5.39 / 5.30 s without. Not for the SFTP relay: there the host is this machine, its two
cores already busy relaying, and following the copy made it slower (8.98 / 9.48 / 8.48 s
against 8.30 / 8.71 / 7.62 s).

Example::

    with LandingHash(conn, dl, manifest.size) as landing:
        fetch_direct(conn, store, loc, key, dl, manifest.size)  # the host downloads
    hashed = landing.matches(manifest.sha256)  # False: hash the copy again
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable

from inventory.errors import ContingencyError
from tasks.ssh.models import CommandResult
from tasks.ssh.run import SSHConnection

FOLLOW_S = 0.2
"""How often ``tail`` looks whether it should stop following."""
MIN_RATE = 5 * 1024 * 1024
"""Bytes/s below which a download counts as hung (deadline: 600 s plus the size at
this rate)."""


def deadline_s(size: int) -> float:
    """How long a download of ``size`` bytes (and its hash) may take."""
    return 600 + size / MIN_RATE


def sha256_command(path: str = "") -> str:
    """The hex SHA-256 of ``path`` (or of standard input): openssl where present (it uses
    the CPU's SHA instructions), else sha256sum."""
    q = f" {shlex.quote(path)}" if path else ""
    return (
        f"(command -v openssl >/dev/null 2>&1 && openssl dgst -sha256 -r{q} || sha256sum{q}) "
        "| cut -d' ' -f1"
    )


def follow_command(path: str, size: int) -> str:
    """Print the SHA-256 of the first ``size`` bytes written to ``path`` as they are
    written; once standard input closes, print ``unchanged`` if the file has not
    changed since.

    ``tail`` stops with the process reading standard input (``--pid``), started in a
    subshell so that it is not this shell's child: a child that ended stays a zombie
    until its parent waits for it, and ``tail`` would take it for alive."""
    q = shlex.quote(path)
    return (
        "exec 3<&0; w=$(cat <&3 >/dev/null & echo $!); "
        f"{{ tail -c +1 -F -s {FOLLOW_S} --pid=$w {q} 2>/dev/null & }} | head -c {size} | "
        f"{sha256_command()}; "
        f"m=$(stat -c %y {q}); cat >/dev/null; "
        f'[ -n "$m" ] && [ "$(stat -c %y {q})" = "$m" ] && [ "$(wc -c < {q})" -eq {size} ] '
        "&& echo unchanged"
    )


class LandingHash:
    """`follow_command` on ``conn``'s host for the length of a ``with`` block (see the
    module's example); ``record`` sees its result, like the restore's other commands."""

    def __init__(
        self, conn: SSHConnection, path: str, size: int,
        record: Callable[[CommandResult], None] = lambda _r: None,
    ) -> None:  # fmt: skip
        self._conn, self._path, self._size, self._record = conn, path, size, record
        self._over = threading.Event()
        self._result: CommandResult | None = None
        self._thread = threading.Thread(target=self._follow, name="landing-hash", daemon=True)

    def _follow(self) -> None:
        cmd = follow_command(self._path, self._size)
        try:
            self._result = self._conn.run(cmd, timeout=deadline_s(self._size), hold=self._over)
        except ContingencyError:
            self._result = None  # could not start it: the caller hashes from disk

    def __enter__(self) -> LandingHash:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._over.set()
        self._thread.join()
        if self._result is not None:
            self._record(self._result)

    def matches(self, sha256: str) -> bool:
        """Whether the copy's bytes, hashed as they landed, have ``sha256``."""
        r = self._result
        if r is None or not r.ok:
            return False
        return r.stdout_tail.split() == [sha256, "unchanged"]
