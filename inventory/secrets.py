"""Resolve secrets by name, and keep their values out of logs.

The inventory names secrets (``key_secret``, ``notify``); their values come from, in order:

1. the environment variable ``CONTINGENCY_SECRET_<NAME>`` (upper-cased, ``-``/``.`` → ``_``);
2. the file ``<state_dir>/secrets/<name>`` (one trailing newline stripped);
3. a Prefect ``Secret`` block named ``<name>``, tried only when ``PREFECT_API_URL`` is set.

Every resolved value is registered so that :func:`redact` and :class:`RedactingFilter`
hide it::

    key = resolve_secret("lab-ssh-key")
    logging.getLogger().addFilter(RedactingFilter())
    connect(pkey_text=key.get_secret_value())
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import cast

from pydantic import SecretStr

from inventory.errors import SecretNotFound
from inventory.models import NAME_RE
from inventory.settings import Settings, get_settings

ENV_PREFIX = "CONTINGENCY_SECRET_"
PREFECT_TIMEOUT_S = 5.0
MASK = "***"
_MIN_LINE_LEN = 16
"""Lines of a multi-line secret at least this long are registered on their own too."""

log = logging.getLogger(__name__)


def local_secret(settings: Settings, name: str, make: str) -> str:
    """``<state_dir>/secrets/<name>``, created (0600) with ``make`` the first time."""
    path = settings.secrets_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make)
    return path.read_text().strip()


def webhook_token(settings: Settings) -> str:
    """The intake's bearer token: ``CONTINGENCY_WEBHOOK_TOKEN``, else the file
    ``<state_dir>/secrets/webhook-token`` (generated the first time)."""
    import secrets

    if settings.webhook_token is not None:
        return settings.webhook_token.get_secret_value()
    return local_secret(settings, "webhook-token", secrets.token_urlsafe(32))


def env_var_name(name: str) -> str:
    """``lab-ssh-key`` → ``CONTINGENCY_SECRET_LAB_SSH_KEY``."""
    return ENV_PREFIX + name.upper().replace("-", "_").replace(".", "_")


def resolve_secret(name: str, settings: Settings | None = None) -> SecretStr:
    """Return the value of the secret ``name`` and register it for redaction.

    Raises:
        ValueError: ``name`` is not a valid inventory name (e.g. contains ``/``).
        SecretNotFound: no source holds it; the message says where it looked.
    """
    if not re.fullmatch(NAME_RE, name):
        raise ValueError(f"invalid secret name {name[:80]!r}: must match {NAME_RE}")
    settings = settings or get_settings()
    looked: list[str] = []
    value = (
        _from_env(name, looked)
        or _from_file(settings.secrets_dir / name, looked)
        or _from_prefect(name, looked)
    )
    if value is None:
        raise SecretNotFound(f"secret {name!r} not found; looked in: {'; '.join(looked)}")
    register_secret_value(value)
    return SecretStr(value)


def _from_env(name: str, looked: list[str]) -> str | None:
    var = env_var_name(name)
    value = os.environ.get(var)
    looked.append(f"env {var}" + (" (set but empty)" if value == "" else ""))
    return value or None


def _from_file(path: Path, looked: list[str]) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        looked.append(f"file {path}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        looked.append(f"file {path} (unreadable: {type(exc).__name__})")
        return None
    if path.stat().st_mode & 0o077:
        log.warning("secret file %s is readable by group or others; chmod 600 it", path)
    value = text.removesuffix("\r\n") if text.endswith("\r\n") else text.removesuffix("\n")
    if not value:
        looked.append(f"file {path} (empty)")
    return value or None


def _from_prefect(name: str, looked: list[str]) -> str | None:
    if not os.environ.get("PREFECT_API_URL"):
        looked.append("Prefect Secret block (skipped: PREFECT_API_URL not set)")
        return None
    # Prefect retries connections with backoff; a thread bounds the whole lookup.
    result: dict[str, str] = {}
    worker = threading.Thread(
        target=_load_prefect_secret, args=(name, result), daemon=True, name="secret-lookup"
    )
    worker.start()
    worker.join(PREFECT_TIMEOUT_S)
    if "value" in result:
        return result["value"] or None
    why = result.get("error", f"no answer within {PREFECT_TIMEOUT_S:g}s")
    looked.append(f"Prefect Secret block {name!r} ({why})")
    return None


def _load_prefect_secret(name: str, result: dict[str, str]) -> None:
    """Thread body: put the block's value, or the error's type name, into ``result``."""
    try:
        from prefect.blocks.system import Secret
        from prefect.settings import (
            PREFECT_API_REQUEST_TIMEOUT,
            PREFECT_CLIENT_MAX_RETRIES,
            temporary_settings,
        )

        quick = {PREFECT_API_REQUEST_TIMEOUT: PREFECT_TIMEOUT_S, PREFECT_CLIENT_MAX_RETRIES: 0}
        with temporary_settings(updates=quick):
            # _sync=True: Prefect's async_dispatch takes it at run time (the signature it
            # shows omits it); the blocking call then returns the block, not a coroutine
            secret = cast(Secret, Secret.load(name, _sync=True))  # type: ignore[call-arg]
            value = secret.get()
    except Exception as exc:  # an optional source: any failure means "not here"
        result["error"] = type(exc).__name__
        return
    if isinstance(value, str):
        result["value"] = value
    else:
        result["error"] = f"block holds a {type(value).__name__}, not a string"


# --- redaction ------------------------------------------------------------------------

_known: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def register_secret_value(value: str) -> None:
    """Remember ``value`` so that :func:`redact` hides it (process-wide).

    Multi-line values (private keys) also register each long line, so a partial
    quote is hidden too.
    """
    global _pattern
    parts = {value, value.strip()}
    parts |= {line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_LINE_LEN}
    parts.discard("")
    with _lock:
        if parts <= _known:
            return
        _known.update(parts)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """Replace every known secret value in ``text`` with ``***``."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


def _forget_all() -> None:
    """Clear the registry (for tests)."""
    global _pattern
    with _lock:
        _known.clear()
        _pattern = None


class RedactingFilter(logging.Filter):
    """Logging filter that redacts known secret values from messages and tracebacks.

    Install on handlers (``handler.addFilter(RedactingFilter())``) so records from
    every logger pass through it. The record is rewritten in place; it always passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: redact what we have
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(*logger_names: str) -> int:
    """Add a RedactingFilter to every handler of the named loggers (default: root and
    Prefect's), once; returns how many handlers got one."""
    added = 0
    for name in logger_names or ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
                added += 1
    return added
