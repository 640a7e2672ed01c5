"""Direct restores: the host downloads the backup itself, from a pre-signed GET URL.

The URL is short-lived (``Settings.restore_url_expires_s``, default 300 s: S3 checks
the expiry when a request starts, so a long download outlives it) but it is a
credential while it lives (``X-Amz-Credential``, ``X-Amz-Signature``). So it never goes
on a command line — a remote process's arguments show in the host's ``ps`` and the
command is recorded for the report — but to curl's standard input as a config line
(``curl -K -``); the recorded result is scrubbed of it too, in case curl ever quotes it.
The command itself is fixed here, never built from alert text.

Example::

    why = fetch_direct(conn, store, ds.location, point.key, "/srv/.x.download", size)
    if why:  # "" when the copy landed
        print("direct download failed:", why)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from inventory.datasets import BackupLocation
from inventory.errors import ContingencyError
from inventory.settings import get_settings
from tasks.actions.landing import deadline_s
from tasks.ssh.models import CommandResult
from tasks.ssh.run import SSHConnection
from tasks.storage import Store, make_client

URL_MASK = "<pre-signed URL>"
_SIGNED = re.compile(
    r"https?://[^\s\"'<>]*X-Amz-[^\s\"'<>]*"  # a whole pre-signed URL
    r"|X-Amz-(?:Signature|Credential|Security-Token)=[^&\s\"'<>]*"  # or a piece of one
)
CURL_EXITS = {
    127: "curl is not installed on the host",
    6: "the host cannot resolve the store's address",
    7: "the host cannot connect to the store",
    22: "the store answered with an HTTP error",
    23: "the host could not write the copy (disk full?)",
    28: "the download timed out",
    35: "TLS handshake with the store failed",
    56: "the connection to the store broke off",
    60: "the host does not trust the store's TLS certificate",
}


def scrub(text: str, url: str = "") -> str:
    """``text`` without ``url`` or anything that looks like a pre-signed URL or its
    credential parameters.

    >>> scrub("GET http://s3:8333/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12 → 403")
    'GET <pre-signed URL> → 403'
    """
    if url:
        text = text.replace(url, URL_MASK)
    return _SIGNED.sub(URL_MASK, text)


def scrubbed(result: CommandResult, url: str) -> CommandResult:
    """``result`` with the URL scrubbed from the command, its output tails and message."""
    fields = ("command", "stdout_tail", "stderr_tail", "message")
    return result.model_copy(update={f: scrub(getattr(result, f), url) for f in fields})


def curl_config(url: str) -> bytes:
    """The curl config (``-K -``) naming ``url``: one quoted ``url = "…"`` line."""
    quoted = url.replace("\\", "\\\\").replace('"', '\\"')
    return f'url = "{quoted}"\n'.encode()


def fetch_command(path: str) -> str:
    """Download the URL curl reads from stdin to ``path``; curl's exit status on failure
    (127: no curl). ``--retry 2`` retries transient failures (truncating the file)."""
    return (
        f"curl -fsS --retry 2 --connect-timeout 10 -K - -o {shlex.quote(path)}"
        f"  # {URL_MASK} on stdin"
    )


def signing_store(store: Store, loc: BackupLocation) -> Store:
    """``store``, or one for ``loc.host_endpoint`` (a URL is signed for its address)."""
    if not loc.host_endpoint or loc.host_endpoint == loc.endpoint:
        return store
    return Store(make_client(loc.model_copy(update={"endpoint": loc.host_endpoint})), store.bucket)


def failure(result: CommandResult) -> str:
    """Why the host's download failed, in words (plus curl's last line)."""
    if result.outcome == "unknown":
        return result.message
    if result.timed_out:
        return f"the download did not finish within {result.duration_s:.0f}s"
    said = (result.stderr_tail.strip().splitlines() or [""])[-1][:200]
    why = CURL_EXITS.get(result.exit_code or -1, f"curl exited {result.exit_code}")
    return f"{why} ({said})" if said else why


def fetch_direct(
    conn: SSHConnection, store: Store, loc: BackupLocation, key: str, path: str, size: int,
    record: Callable[[CommandResult], None] = lambda _r: None,
) -> str:  # fmt: skip
    """Have ``conn``'s host download ``key`` to ``path`` itself; ``""`` when it did,
    else why not (never quoting the URL). The caller checks the SHA-256 on the host."""
    try:
        url = signing_store(store, loc).presigned_get(key, get_settings().restore_url_expires_s)
    except (ContingencyError, KeyError, ValueError) as exc:
        return f"cannot pre-sign a URL: {scrub(str(exc))}"
    try:
        result = conn.run(fetch_command(path), timeout=deadline_s(size), stdin=curl_config(url))
    except ContingencyError as exc:
        return scrub(str(exc), url)
    result = scrubbed(result, url)
    record(result)
    return "" if result.ok else failure(result)
