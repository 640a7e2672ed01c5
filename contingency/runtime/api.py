"""Which Prefect API this process talks to, and one-line errors when it cannot.

The CLI and the components need no ``stack.json``: the API is, first found,

1. ``CONTINGENCY_API_URL`` / ``api_url`` in the config file (``inventory/settings.py``),
2. the stack ``contingency up`` recorded in the state directory (``stack.json``),
3. ``PREFECT_API_URL`` (environment or the active Prefect profile).

The auth string: ``CONTINGENCY_API_AUTH_STRING``, else the recorded stack's secret file
(for that stack), else ``PREFECT_API_AUTH_STRING``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import httpx
from pydantic import BaseModel, SecretStr

from inventory.errors import ApiRefused, ApiUnreachable, NotConfigured
from inventory.settings import Settings

Source = Literal["settings", "prefect", "stack"]


class ApiTarget(BaseModel):
    url: str
    auth: SecretStr | None = None
    source: Source


def api_target(settings: Settings) -> ApiTarget:
    """Where the Prefect API is (see the module docstring for the order)."""
    from prefect.settings import get_current_settings

    current = get_current_settings()
    prefect_url = current.api.url
    prefect_auth = current.api.auth_string
    if settings.api_url:
        return ApiTarget(
            url=settings.api_url.rstrip("/"),
            auth=settings.api_auth_string or prefect_auth,
            source="settings",
        )
    from contingency.runtime.stack import auth_string, recorded_stack

    if (stack := recorded_stack(settings)) is not None:
        auth = settings.api_auth_string or SecretStr(auth_string(settings))
        return ApiTarget(url=stack.api_url, auth=auth, source="stack")
    if prefect_url:
        return ApiTarget(
            url=prefect_url.rstrip("/"),
            auth=settings.api_auth_string or prefect_auth,
            source="prefect",
        )
    raise NotConfigured(
        "no Prefect API configured: set CONTINGENCY_API_URL (or PREFECT_API_URL, or "
        f"api_url in the config file), or start one here with `contingency up` "
        f"(state dir {settings.state_dir})"
    )


def target_env(target: ApiTarget) -> dict[str, str]:
    """``PREFECT_API_URL`` and, if there is one, ``PREFECT_API_AUTH_STRING``."""
    env = {"PREFECT_API_URL": target.url}
    if target.auth is not None:
        env["PREFECT_API_AUTH_STRING"] = target.auth.get_secret_value()
    return env


def use_api(target: ApiTarget) -> AbstractContextManager[object]:
    """Point this process's Prefect client at ``target``."""
    from contingency.runtime.stack import api_settings

    return api_settings(target_env(target))


def check_api(settings: Settings, timeout_s: float = 5.0) -> ApiTarget:
    """Ask the API's ``/health`` once; raise a one-line error if it cannot be used."""
    target = api_target(settings)
    auth: tuple[str, str] | None = None
    if target.auth is not None:
        user, _, password = target.auth.get_secret_value().partition(":")
        auth = (user, password)
    try:
        resp = httpx.get(f"{target.url}/health", auth=auth, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise unreachable(target.url, exc) from None
    if resp.status_code in (401, 403):
        raise refused(target.url, resp.status_code)
    return target


def unreachable(url: str, exc: BaseException) -> ApiUnreachable:
    why = type(exc).__name__
    detail = str(exc).splitlines()[0][:120] if str(exc) else ""
    return ApiUnreachable(
        f"cannot reach the Prefect API at {url}: {why}{': ' + detail if detail else ''}"
    )


def refused(url: str, status: int) -> ApiRefused:
    return ApiRefused(
        f"the Prefect API at {url} refused the auth string ({status}): set "
        "CONTINGENCY_API_AUTH_STRING or PREFECT_API_AUTH_STRING to the server's "
        "PREFECT_SERVER_API_AUTH_STRING"
    )
