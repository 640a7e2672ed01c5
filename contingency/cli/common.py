"""What every `contingency` command shares: the state-dir option, the settings, the
Prefect API (any server — see contingency/runtime/api.py), ``--json`` output and the
one-line error for a problem the user can fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from inventory.settings import Settings

out = Console()
err = Console(stderr=True)
StateDir = Annotated[Path | None, typer.Option("--state-dir", help="default ~/.contingency")]
Json = Annotated[bool, typer.Option("--json", help="print JSON (for scripts) instead of a table")]


def settings_for(state_dir: Path | None) -> Settings:
    return Settings(state_dir=state_dir) if state_dir else Settings()


@contextmanager
def api(settings: Settings) -> Iterator[None]:
    """Talk to the configured Prefect API; raise a one-line ``ApiError`` if it is not
    configured, unreachable or refuses the auth string (``main`` prints it)."""
    from contingency.runtime.api import check_api, use_api

    with use_api(check_api(settings)):
        yield


def emit_json(data: Any) -> None:
    """Print ``data`` (models, lists of models, plain values) as JSON on stdout."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    print(json.dumps(plain(data), indent=2, default=str, ensure_ascii=False))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr; return the Exit to raise."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)
