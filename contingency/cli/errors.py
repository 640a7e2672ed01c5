"""Errors a user can fix are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from contingency.cli.common import fail


def one_line(exc: BaseException) -> str | None:
    """The line to print for an error the user can act on; None for a bug (traceback).

    >>> from inventory.errors import NotConfigured
    >>> one_line(NotConfigured("no Prefect API configured"))
    'no Prefect API configured'
    >>> one_line(ZeroDivisionError()) is None
    True
    """
    import httpx
    import requests

    from contingency.runtime.api import refused, unreachable
    from inventory.errors import ContingencyError

    if isinstance(exc, ContingencyError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TransportError):
        return str(unreachable(_url(exc), exc))
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        return str(refused(_url(exc), exc.response.status_code))
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        url = exc.request.url if exc.request is not None else "?"
        return f"cannot reach {url}: {type(exc).__name__}"
    return None


def _url(exc: Any) -> str:
    try:
        url = exc.request.url
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError if unset
        return "the configured URL"
    path = url.path
    api = path[: path.find("/api") + 4] if "/api" in path else ""
    return f"{url.scheme}://{url.netloc.decode()}{api}"


class Guarded(TyperGroup):
    """The command group every `contingency` command runs under: errors with a
    :func:`one_line` become that line on stderr and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            line = one_line(exc)
            if line is None:
                raise
            raise fail(line) from None
