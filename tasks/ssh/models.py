"""Remote commands, the parts that need no paramiko.

The result model, the wrapper that makes the host kill a hung command, the bounded
output buffers, and the loop that drains a channel's two streams under one deadline
(duck-typed on paramiko's ``Channel``). `tasks.ssh.run` puts them on a real connection.

Example:
    >>> remote_command("sleep 60", timeout=30)
    "timeout -k 5 31 sh -c 'sleep 60'"
"""

from __future__ import annotations

import math
import select
import shlex
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, computed_field

from inventory.errors import CommandTimeout
from inventory.models import Host
from inventory.secrets import redact

KILL_GRACE_S = 5
"""``timeout -k``: seconds between TERM and KILL on the host."""
TAIL_BYTES = 4096
"""How much of each stream a result keeps (the end of it)."""
STREAM_LINES = 200
"""Lines of a command's output passed to ``on_line``; after that only tails are kept."""

LineSink = Callable[[str, str], None]
"""``on_line(stream, line)`` with stream ``"stdout"`` or ``"stderr"``."""
CommandOutcome = Literal["ok", "failed", "timed_out", "unknown"]
LOST_MID_COMMAND = "connection lost mid-command — the command may have run"
"""`CommandResult.message` when the connection died after the command was sent."""
NO_EXIT_STATUS = "the channel closed without an exit status — the command may have run"
"""`CommandResult.message` when the host closed the channel without an exit status."""


def where(host: Host) -> str:
    """``"web-1 (10.0.0.5:22)"`` — how every message names a host."""
    return f"{host.name} ({host.address}:{host.port})"


def known_hosts_name(host: Host) -> str:
    """The host's name in known_hosts: ``address`` on port 22, else ``[address]:port``."""
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def remote_command(command: str, timeout: float) -> str:
    """``command`` under ``timeout(1)``, which signals its whole process group.

    The remote deadline is a second later than the local one: we report the timeout,
    the host cleans up even if the connection is gone.
    """
    secs = math.ceil(timeout) + 1
    return f"timeout -k {KILL_GRACE_S} {secs} sh -c {shlex.quote(command)}"


class CommandResult(BaseModel):
    """What one command did on one host.

    ``exit_code`` is ``None`` when the command produced no exit status: it was cut off
    by the deadline (``timed_out``), or the answer never came back — the connection was
    lost after the command was sent (``connection_lost``) or the host closed the channel
    without a status (e.g. the command was killed by a signal). Those last two are
    ``outcome == "unknown"``: the command may have run, in full or in part; ``message``
    says why and the tails hold the output received until then.
    """

    model_config = ConfigDict(frozen=True)

    host: str
    command: str
    exit_code: int | None
    duration_s: float
    stdout_tail: str = ""
    stderr_tail: str = ""
    timed_out: bool = False
    started_at: datetime
    connection_lost: bool = False
    """The connection to the host died after the command was sent."""
    message: str = ""
    """Why the outcome is unknown (empty when the command reported an exit status)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outcome(self) -> CommandOutcome:
        """``ok`` / ``failed`` (an exit status), ``timed_out``, or ``unknown``: no exit
        status came back, so the command may or may not have run."""
        if self.timed_out:
            return "timed_out"
        if self.exit_code is None:
            return "unknown"
        return "ok" if self.exit_code == 0 else "failed"

    def raise_on_timeout(self) -> CommandResult:
        """Return self, or raise `CommandTimeout` naming the host if it timed out."""
        if self.timed_out:
            raise CommandTimeout(
                f"{self.host}: command timed out after {self.duration_s:.1f}s: {self.command}",
                result=self,
            )
        return self


class StreamBuffer:
    """Keeps the last `TAIL_BYTES` of a stream and hands complete lines to a sink.

    Lines and tail are redacted (`inventory.secrets.redact`). At most ``budget[0]``
    lines are passed on (the budget is shared by both streams of a command). A line
    longer than `TAIL_BYTES` is passed on in pieces, so memory stays bounded whatever
    the remote prints.
    """

    def __init__(self, name: str, sink: LineSink | None, budget: list[int]) -> None:
        self.name = name
        self._sink = sink
        self._budget = budget
        self._tail = bytearray()
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        self._tail += data
        del self._tail[:-TAIL_BYTES]
        if self._sink is None or self._budget[0] <= 0:
            return
        self._partial += data
        *lines, rest = self._partial.split(b"\n")
        for line in lines:
            self._emit(line)
        self._partial = bytearray(rest)
        if len(self._partial) > TAIL_BYTES:
            self._emit(self._partial)
            self._partial = bytearray()

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = bytearray()

    def tail(self) -> str:
        return redact(bytes(self._tail).decode("utf-8", errors="replace"))

    def _emit(self, line: bytes | bytearray) -> None:
        if self._sink is None or self._budget[0] <= 0:
            return
        self._budget[0] -= 1
        self._sink(self.name, redact(line.decode("utf-8", errors="replace").rstrip("\r")))


class Channel(Protocol):
    """The part of ``paramiko.Channel`` that `drain` uses."""

    eof_received: bool
    closed: bool

    def fileno(self) -> int: ...
    def recv_ready(self) -> bool: ...
    def recv_stderr_ready(self) -> bool: ...
    def recv(self, nbytes: int) -> bytes: ...
    def recv_stderr(self, nbytes: int) -> bytes: ...
    def exit_status_ready(self) -> bool: ...
    def recv_exit_status(self) -> int: ...


def _read_ready(chan: Channel, out: StreamBuffer, err: StreamBuffer) -> bool:
    got = False
    while chan.recv_ready():
        out.feed(chan.recv(65536))
        got = True
    while chan.recv_stderr_ready():
        err.feed(chan.recv_stderr(65536))
        got = True
    return got


class Drained(NamedTuple):
    status: int | None
    """Exit status; -1 when the channel closed without one (or reading it failed),
    ``None`` on timeout."""
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    error: str | None = None
    """``"EOFError: ..."`` when reading the channel raised one of ``lost_on``."""

    @property
    def no_status(self) -> bool:
        """The command ended, as far as we can see, without an exit status."""
        return self.status is not None and self.status < 0

    def result(
        self,
        host: str,
        command: str,
        started_at: datetime,
        duration_s: float,
        connection_lost: bool = False,
        message: str = "",
    ) -> CommandResult:
        status = self.status if self.status is not None and self.status >= 0 else None
        return CommandResult(
            host=host,
            command=command,
            exit_code=status,
            duration_s=round(duration_s, 3),
            stdout_tail=self.stdout_tail,
            stderr_tail=self.stderr_tail,
            timed_out=self.timed_out,
            started_at=started_at,
            connection_lost=connection_lost,
            message=redact(message),
        )


def drain(
    chan: Channel,
    deadline: float,
    on_line: LineSink | None = None,
    lost_on: tuple[type[BaseException], ...] = (OSError, EOFError),
) -> Drained:
    """Read both streams until the command ends or ``deadline`` (monotonic) passes.

    Never blocks past the deadline; keeps only tails; passes the first `STREAM_LINES`
    lines to ``on_line``. If reading raises one of ``lost_on`` (the connection died),
    the output so far is kept and ``error`` says what happened (status -1).
    """
    budget = [STREAM_LINES]
    out, err = StreamBuffer("stdout", on_line, budget), StreamBuffer("stderr", on_line, budget)
    error = None
    try:
        status, timed_out = _wait(chan, out, err, deadline)
    except lost_on as exc:
        status, timed_out, error = -1, False, f"{type(exc).__name__}: {exc}"
    out.flush()
    err.flush()
    return Drained(status, timed_out, out.tail(), err.tail(), error)


def _wait(
    chan: Channel, out: StreamBuffer, err: StreamBuffer, deadline: float
) -> tuple[int | None, bool]:
    fd = chan.fileno()  # readable whenever either stream has data (or at EOF)
    while True:
        got = _read_ready(chan, out, err)
        finished = chan.exit_status_ready() and (chan.eof_received or chan.closed)
        if finished and not got and not chan.recv_ready() and not chan.recv_stderr_ready():
            return chan.recv_exit_status(), False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, True
        if chan.eof_received:  # fd stays readable after EOF: wait briefly for the status
            time.sleep(min(remaining, 0.005))
        elif not got:
            select.select([fd], [], [], min(remaining, 0.1))
