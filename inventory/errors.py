"""The one error tree of Contingency, at the lowest layer so every layer can raise it.

Every error the project raises on purpose derives from :class:`ContingencyError`; the
incident flow catches that one root. Low-level errors (paramiko, socket, botocore) are
converted where they happen into one of these, naming the host, bucket or link.
Messages never contain a secret.

Example:
    >>> try:
    ...     raise HostUnreachable("web-1 (10.0.0.5:22): connection refused")
    ... except ContingencyError as exc:
    ...     print(exc)
    web-1 (10.0.0.5:22): connection refused
    >>> issubclass(SecretNotFound, KeyError), issubclass(InventoryError, ContingencyError)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence


class ContingencyError(Exception):
    """Root of every error this project raises on purpose."""


# --- the inventory -------------------------------------------------------------------


class InventoryError(ContingencyError):
    """The inventory could not be loaded; ``problems`` lists every reason (each with
    its file, line and field when known)."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __reduce__(self) -> tuple[type[InventoryError], tuple[list[object]]]:
        return type(self), (self.problems,)


class SecretNotFound(ContingencyError, KeyError):
    """No source holds the secret. The message names the places looked, never a value."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "secret not found"


class UnknownName(ContingencyError, KeyError):
    """A host, service, link or dataset name that is not in the inventory."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown name"


# --- SSH -----------------------------------------------------------------------------


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

    ``result`` is what is known about the command (a ``CommandResult``, or ``None``): a
    caller that keeps a record of what ran records it before re-raising, so a report
    never says nothing ran when something was sent.
    """

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[CommandError], tuple[str, object | None]]:
        return type(self), (str(self), self.result)


class CommandTimeout(CommandError):
    """A command did not finish within its deadline (for callers that must raise)."""


# --- object storage, networks, drills ------------------------------------------------


class StorageError(ContingencyError):
    """Object storage failed; the message names bucket and key."""


class ObjectMissing(StorageError):
    """The backup object or its manifest does not exist."""


class ChecksumMismatch(StorageError):
    """Downloaded bytes do not match the manifest's size or SHA-256 (corrupt or truncated)."""


class NoRestorePoint(ContingencyError):
    """No backup fits the request."""


class BackupFailed(ContingencyError):
    """One or more datasets could not be backed up."""


class NetworkError(ContingencyError):
    """A link could not be probed or switched; the message names the link."""


class FaultRefused(ContingencyError):
    """The scenario or target cannot be drilled (unknown, or not a drill host)."""


# --- the gate, locks, reviews ----------------------------------------------------------


class GateInterrupted(ContingencyError):
    """The run left the Paused state without a decision (cancelled, failed, ...)."""


class LockUnavailable(ContingencyError):
    """The target's lock could not be taken and no live incident holds it."""


class ReviewError(ContingencyError):
    """The review cannot be accepted (unknown run, owner or reviewer); says why."""


class PlanError(ContingencyError):
    """A plan cannot be built or run as asked (a wrong target kind, bad parameters)."""


# --- the application shell -------------------------------------------------------------


class SignatureError(ContingencyError):
    """A webhook signature that does not verify; the message is safe to return."""


class BodyTooLarge(ContingencyError):
    """A request body over the limit (declared by Content-Length or seen while streaming)."""


class CheckFailed(ContingencyError):
    """A readiness check failed; ``detail`` is safe to show to an unauthenticated prober."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StartupError(ContingencyError, RuntimeError):
    """A component of the stack did not come up; the message says which and why."""


# --- talking to the Prefect API (the CLI and the components) ----------------------------


class ApiError(ContingencyError):
    """The Prefect API could not be used; the message is one line naming the URL."""


class NotConfigured(ApiError):
    """No Prefect API is configured and no stack is recorded in the state directory."""


class ApiUnreachable(ApiError):
    """The Prefect API did not answer (connection refused, timeout, DNS)."""


class ApiRefused(ApiError):
    """The Prefect API refused our credentials (401/403)."""


class Refused(ContingencyError, ValueError):
    """A person's request about an incident is wrong (acknowledge, report a problem): the
    message says what; nothing was changed (``contingency/runtime/people.py``)."""
