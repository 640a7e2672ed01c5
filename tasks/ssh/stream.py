"""Stream a command's stdout from a host as a file-like object (bounded memory).

Uses the connection's transport channel, so paramiko stays behind tasks/ssh/run.py.

Example::

    with stream_stdout(conn, "tar -C /srv/data -czf - .") as out:
        store.upload_stream(key, out, ...)
    # raises SSHError if the command exited non-zero (stderr tail in the message), or
    # if the connection was lost mid-command (the command may have run)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

from inventory.errors import SSHError
from inventory.secrets import redact
from tasks.ssh.models import LOST_MID_COMMAND, where
from tasks.ssh.run import SSHConnection


@contextmanager
def stream_stdout(conn: SSHConnection, command: str, timeout: float = 3600) -> Iterator[IO[bytes]]:
    """Run ``command``; yield its stdout as a binary stream; check its exit status after."""
    chan: Any = conn.transport.open_session()
    try:
        chan.settimeout(timeout)
        chan.exec_command(command)
        out = chan.makefile("rb", 1024 * 1024)
        yield cast(IO[bytes], out)
        try:
            out.read()  # drain what the consumer left
            status = chan.recv_exit_status()
        except (OSError, EOFError) as exc:
            raise SSHError(f"{where(conn.host)}: {LOST_MID_COMMAND}: {exc}") from exc
        if status < 0:  # the channel closed without an exit status
            raise SSHError(f"{where(conn.host)}: {LOST_MID_COMMAND}: {redact(command)}")
        if status != 0:
            err = chan.makefile_stderr("rb").read()[-500:].decode(errors="replace")
            raise SSHError(f"{where(conn.host)}: backup command exited {status}: {err.strip()}")
    finally:
        chan.close()


def capture(
    conn: SSHConnection, command: str, timeout: float = 120, limit: int = 16 * 1024 * 1024
) -> tuple[int | None, bytes, bool]:
    """Run ``command``; ``(exit status or None, stdout and stderr as sent, truncated)``,
    at most ``limit`` bytes kept (evidence: every byte as it came, not a tail)."""
    chan: Any = conn.transport.open_session()
    try:
        chan.settimeout(timeout)
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        out = chan.makefile("rb", 1024 * 1024)
        data = out.read(limit)
        truncated = bool(out.read(1))
        if truncated:
            while out.read(1024 * 1024):  # drain: the command must be able to finish
                pass
        try:
            status = chan.recv_exit_status()
        except (OSError, EOFError):
            return None, data, truncated
        return (status if status >= 0 else None), data, truncated
    except (OSError, EOFError) as exc:
        raise SSHError(f"{where(conn.host)}: {LOST_MID_COMMAND}: {exc}") from exc
    finally:
        chan.close()
