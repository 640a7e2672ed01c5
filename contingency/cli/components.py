"""The product's long-running parts as commands, one per process, so an operations team
can run each where it belongs (systemd units in packaging/systemd, docs/deployment.md):

- ``contingency worker``: a Prefect process worker for the pool (any machine);
- ``contingency intake``: the alert intake (uvicorn), ``--host``/``--port``;
- ``contingency reconciler``: reports incidents whose process died;
- ``contingency forkserver``: optional speed-up for a worker on the same machine;
- ``contingency deploy``: the work pool (locked-down job template), the targets'
  concurrency limits and the deployments of prefect.yaml.

``contingency up`` composes the same commands on one machine. Each long-running command
replaces itself (``exec``) with the real process, so a supervisor or systemd sees it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from contingency.cli.common import StateDir, api, out, settings_for
from inventory.settings import Settings

Host = Annotated[str | None, typer.Option(help="address to listen on (default: the setting)")]
Port = Annotated[int | None, typer.Option(help="port to listen on (default: the setting)")]


def api_env(settings: Settings) -> dict[str, str]:
    """``PREFECT_API_URL`` / ``PREFECT_API_AUTH_STRING`` for a component, from the
    configured API (nothing if none is configured: Prefect's own settings apply)."""
    from contingency.runtime.api import api_target, target_env
    from inventory.errors import NotConfigured

    try:
        return target_env(api_target(settings))
    except NotConfigured:
        return {}


def component_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment, pointed at the API, with this installation's
    scripts first on PATH (the pool's command ``contingency-flow-run`` is found there)."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(api_env(settings))
    env["PATH"] = os.pathsep.join(
        [bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)]
    )
    env.update(extra)
    return env


def _exec(argv: list[str], env: dict[str, str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)  # noqa: S606 - argv built here, never from input


def worker(
    pool: Annotated[str | None, typer.Option(help="work pool (default: the setting)")] = None,
    name: Annotated[str | None, typer.Option(help="worker name (default: host-based)")] = None,
    forkserver: Annotated[
        Path | None,
        typer.Option(help="fork server socket on this machine (optional speed-up)"),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="flow runs at once on this worker")] = None,
    state_dir: StateDir = None,
) -> None:
    """Run a Prefect process worker for the Contingency pool (any machine)."""
    from contingency.runtime.stack import FAST_POLLING

    settings = settings_for(state_dir)
    extra = {k: v for k, v in FAST_POLLING.items() if k not in os.environ}
    if forkserver is not None:
        extra["CONTINGENCY_FORKSERVER"] = str(forkserver)
    # Prefect's worker (see contingency/runtime/worker.py: its API clients share one TLS context)
    argv = [sys.executable, "-m", "contingency.runtime.worker", "worker", "start"]
    argv += ["--type", "process"]
    argv += ["--pool", pool or settings.work_pool]
    if name:
        argv += ["--name", name]
    if limit:
        argv += ["--limit", str(limit)]
    _exec(argv, component_env(settings, **extra))


def intake(host: Host = None, port: Port = None, state_dir: StateDir = None) -> None:
    """Run the alert intake (webhooks for Alertmanager, Grafana and generic senders)."""
    settings = settings_for(state_dir)
    argv = intake_argv(host or settings.intake_host, port or settings.intake_port)
    _exec(argv, component_env(settings))


def intake_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "contingency.intake.app:app_from_env",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        # bounded request heads: 431 past the size / field count, 408 when slow
        "--http",
        "contingency.intake.protocol:GuardedHttpTools",
    ]


def reconciler(
    interval: Annotated[float, typer.Option(help="seconds between passes")] = 3.0,
    once: Annotated[bool, typer.Option(help="one pass, then exit")] = False,
    state_dir: StateDir = None,
) -> None:
    """Run the reconciler: it reports and pages incidents whose process died."""
    argv = [sys.executable, "-m", "contingency.runtime.reconciler", "--interval", str(interval)]
    _exec(argv + (["--once"] if once else []), component_env(settings_for(state_dir)))


def forkserver(
    socket: Annotated[
        Path | None, typer.Option(help="default <state_dir>/run/forkserver.sock")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Run the fork server (optional): flow runs of a worker on this machine start from
    a warm interpreter (pass the same socket to `contingency worker --forkserver`)."""
    settings = settings_for(state_dir)
    path = socket or settings.state_dir / "run" / "forkserver.sock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)  # a killed fork server leaves its socket behind
    argv = [sys.executable, "-m", "contingency.runtime.forkserver", str(path)]
    _exec(argv, component_env(settings))


def deploy(
    pool: Annotated[str | None, typer.Option(help="work pool (default: the setting)")] = None,
    pool_only: Annotated[
        bool, typer.Option(help="only the pool and limits (then `prefect deploy --all`)")
    ] = False,
    prefect_yaml: Annotated[
        Path | None, typer.Option(help="default: the prefect.yaml shipped with the package")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Create or update the work pool (locked-down job template), the targets'
    concurrency limits and the deployments, on the configured Prefect API."""
    from contingency.runtime.deploy import apply_deployments, ensure_limits, ensure_work_pool

    settings = settings_for(state_dir)
    name = pool or settings.work_pool
    with api(settings):
        asyncio.run(
            ensure_work_pool(name, locked=True, concurrency=settings.incident_max_concurrent)
        )
        out.print(f"work pool {name}: job template locked (command contingency-flow-run)")
        made = ensure_limits(settings)
        out.print(f"concurrency limits: {made} created (one per inventory target, read first)")
        if not pool_only:
            names = asyncio.run(apply_deployments(name, path=prefect_yaml))
            out.print(f"deployments: {', '.join(names)}")


def register(app: typer.Typer) -> None:
    for command in (worker, intake, reconciler, forkserver, deploy):
        app.command(command.__name__)(command)
