"""The one error tree of Contingency.

Low-level errors (paramiko, socket, botocore) are converted where they happen into
one of these, with the host, bucket or link named in the message. Messages never
contain a secret.

Example:
    >>> try:
    ...     raise HostUnreachable("web-1 (10.0.0.5:22): connection refused")
    ... except ContingencyError as exc:
    ...     print(exc)
    web-1 (10.0.0.5:22): connection refused
"""

from __future__ import annotations


class ContingencyError(Exception):
    """Root of every error this project raises on purpose."""


class SSHError(ContingencyError):
    """Something went wrong talking SSH to a host."""


class HostUnreachable(SSHError):
    """The host's name did not resolve, or its port refused or timed out."""


class AuthFailed(SSHError):
    """The host rejected our key, or the key could not be loaded."""


class HostKeyError(SSHError):
    """The host's identity could not be verified against the pinned key."""


class HostKeyMismatch(HostKeyError):
    """The host presented a key different from the pinned one (possible MITM)."""


class HostKeyUnknown(HostKeyError):
    """No pinned key for the host: neither ``host_key`` nor a matching known_hosts entry."""


class CommandError(SSHError):
    """A command was sent to the host and then went wrong in a way the caller must see.

    ``result`` is what is known about the command (a ``tasks.ssh_models.CommandResult``,
    or ``None``): a caller that keeps a record of what ran records it before re-raising,
    so a report never says nothing ran when something was sent.
    """

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[CommandError], tuple[str, object | None]]:
        return type(self), (str(self), self.result)


class CommandTimeout(CommandError):
    """A command did not finish within its deadline (for callers that must raise)."""
