"""`contingency up` / `down`: the embedded stack on one machine.

Prefect server (SQLite in the state directory, or PostgreSQL with ``database_url``),
the process work pool and deployments, a worker, and the alert intake — all bound to
127.0.0.1, all recorded under ``<state_dir>/run`` so ``down`` stops exactly them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from contingency.processes import free_port, http_ok, spawn, stop_all, wait_until
from inventory.settings import Settings

LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
STOP_ORDER = ["intake", "worker", "forkserver", "server"]
# Poll intervals that decide alert-to-action latency (Prefect's defaults are 10 s).
FAST_POLLING = {
    "PREFECT_WORKER_QUERY_SECONDS": "0.5",
    "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
}


class StackInfo(BaseModel):
    api_url: str
    ui_url: str
    intake_url: str
    state_dir: str
    inventory: str
    database: str
    lab: bool = False


def _secret_file(settings: Settings, name: str, make: str) -> str:
    path = settings.secrets_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def auth_string(settings: Settings) -> str:
    """The Prefect API auth string of this state dir's stack (generated once)."""
    return _secret_file(settings, "prefect-auth-string", f"admin:{secrets.token_urlsafe(24)}")


def stack_client(settings: Settings) -> AbstractContextManager[object]:
    """Point this process's Prefect client at the running stack (URL and auth)."""
    info = read_stack(settings)
    return api_settings(
        {"PREFECT_API_URL": info.api_url, "PREFECT_API_AUTH_STRING": auth_string(settings)}
    )


def webhook_token(settings: Settings) -> str:
    if settings.webhook_token is not None:
        return settings.webhook_token.get_secret_value()
    return _secret_file(settings, "webhook-token", secrets.token_urlsafe(32))


def stack_env(settings: Settings, api_port: int, database_url: str | None) -> dict[str, str]:
    """Environment shared by the server, worker, flow runs and intake."""
    from cryptography.fernet import Fernet

    api = f"http://127.0.0.1:{api_port}/api"
    prefect_home = settings.state_dir / "prefect"
    db = database_url or f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(FAST_POLLING)
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": api,
            "PREFECT_UI_API_URL": api,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(api_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": db,
            # The open-source server has no users: anyone reaching the API could resume a
            # gate. Require an auth string (the UI asks for it once per browser).
            "PREFECT_SERVER_API_AUTH_STRING": auth_string(settings),
            "PREFECT_API_AUTH_STRING": auth_string(settings),
            "PREFECT_SERVER_ENCRYPTION_KEY": _secret_file(
                settings, "prefect-encryption-key", Fernet.generate_key().decode()
            ),
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASE_STORAGE,
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "1",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOCAL_STORAGE_PATH": str(settings.state_dir / "results"),
            "CONTINGENCY_STATE_DIR": str(settings.state_dir),
            "CONTINGENCY_INVENTORY": str(settings.inventory_path()),
            "CONTINGENCY_WEBHOOK_TOKEN": webhook_token(settings),
        }
    )
    return env


def api_settings(env: dict[str, str]) -> AbstractContextManager[object]:
    """Point this process's Prefect client at the stack's API (settings are cached, so
    changing os.environ after Prefect was imported is not enough)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: env["PREFECT_API_URL"]}
    if env.get("PREFECT_API_AUTH_STRING"):
        updates[PREFECT_API_AUTH_STRING] = env["PREFECT_API_AUTH_STRING"]
    return temporary_settings(updates=updates)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def up(
    settings: Settings,
    lab: bool = False,
    database_url: str | None = None,
    api_port: int | None = None,
    intake_port: int | None = None,
    console: Console | None = None,
    lab_ssh_port: int | None = None,
    lab_service_ports: dict[str, int] | None = None,
    polling: dict[str, str] | None = None,
) -> StackInfo:
    console = console or Console(stderr=True)
    run_dir = settings.state_dir / "run"
    if any(run_dir.glob("*.pid")):
        console.print("[yellow]a stack is already recorded here; stopping it first[/]")
        down(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if lab:
        from contingency.lab.launcher import start_lab

        with console.status("starting the lab (sshd hosts and sample services)"):
            inv_path = start_lab(settings, lab_ssh_port, lab_service_ports)
        settings = settings.model_copy(update={"inventory": inv_path})
    api_port = settings.api_port if api_port is None else api_port
    intake_port = settings.intake_port if intake_port is None else intake_port
    api_port, intake_port = api_port or free_port(), intake_port or free_port()
    if database_url:
        _secret_file(settings, "prefect-database-url", database_url)
    env = _env(settings, api_port, database_url, polling)
    argvs = _argvs(settings, api_port, intake_port, run_dir)
    (run_dir).mkdir(parents=True, exist_ok=True)
    (run_dir / "components.json").write_text(
        json.dumps({"argv": argvs, "api_port": api_port, "polling": polling or {}}, indent=2)
    )
    (settings.state_dir / "prefect").mkdir(parents=True, exist_ok=True)
    with console.status(f"starting the Prefect server on 127.0.0.1:{api_port}"):
        _start(settings, "server", argvs, env, run_dir)
    with console.status("applying the work pool and deployments"), api_settings(env):
        from contingency.deploy import apply_deployments, ensure_work_pool

        asyncio.run(ensure_work_pool(settings.work_pool))
        work_dir = settings.state_dir / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        names = asyncio.run(
            apply_deployments(
                settings.work_pool,
                work_dir=work_dir,
                command=f"{sys.executable} -m contingency.forkexec",
            )
        )
    console.print(f"deployments: {', '.join(names)}")
    for name in ("forkserver", "worker", "intake"):
        _start(settings, name, argvs, env, run_dir)
    intake_url = f"http://127.0.0.1:{intake_port}"
    wait_until(lambda: http_ok(f"{intake_url}/healthz"), "alert intake", 60, run_dir / "intake.log")
    info = StackInfo(
        api_url=env["PREFECT_API_URL"],
        ui_url=f"http://127.0.0.1:{api_port}",
        intake_url=intake_url,
        state_dir=str(settings.state_dir),
        inventory=str(settings.inventory_path()),
        database="postgresql" if database_url else "sqlite",
        lab=lab,
    )
    (settings.state_dir / "stack.json").write_text(info.model_dump_json(indent=2))
    return info


def _env(
    settings: Settings, api_port: int, database_url: str | None, polling: dict[str, str] | None
) -> dict[str, str]:
    env = stack_env(settings, api_port, database_url)
    env.update(polling or {})
    # A warm interpreter forks each flow run (see contingency/forkserver.py).
    env["CONTINGENCY_FORKSERVER"] = str(settings.state_dir / "run" / "forkserver.sock")
    return env


def _argvs(
    settings: Settings, api_port: int, intake_port: int, run_dir: Path
) -> dict[str, list[str]]:
    return {
        "server": [
            _bin("prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
        ],
        "forkserver": [
            sys.executable,
            "-m",
            "contingency.forkserver",
            str(run_dir / "forkserver.sock"),
        ],
        "worker": [
            _bin("prefect"),
            "worker",
            "start",
            "--pool",
            settings.work_pool,
            "--type",
            "process",
            "--name",
            f"contingency-{settings.work_pool}",
        ],
        "intake": [
            _bin("uvicorn"),
            "--factory",
            "contingency.intake.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(intake_port),
            "--no-access-log",
        ],
    }


def _start(
    settings: Settings, name: str, argvs: dict[str, list[str]], env: dict[str, str], run_dir: Path
) -> None:
    spawn(name, argvs[name], env, run_dir)
    if name == "server":
        wait_until(
            lambda: http_ok(
                f"{env['PREFECT_API_URL']}/health", auth=env["PREFECT_API_AUTH_STRING"]
            ),
            "Prefect server",
            120,
            run_dir / "server.log",
        )
    elif name == "forkserver":
        wait_until(
            Path(env["CONTINGENCY_FORKSERVER"]).exists,
            "fork server",
            60,
            run_dir / "forkserver.log",
        )


def restart(settings: Settings, name: str) -> None:
    """Stop one component of a running stack and start it again (used by the
    resilience tests: a gate must survive a worker or server restart)."""
    run_dir = settings.state_dir / "run"
    info = read_stack(settings)
    meta = json.loads((run_dir / "components.json").read_text())
    db_file = settings.secrets_dir / "prefect-database-url"
    database_url = db_file.read_text().strip() if db_file.exists() else None
    settings = settings.model_copy(update={"inventory": Path(info.inventory)})
    env = _env(settings, int(meta["api_port"]), database_url, meta.get("polling"))
    pidfile = run_dir / f"{name}.pid"
    if pidfile.exists():
        from contingency.processes import stop_pid

        stop_pid(int(pidfile.read_text().strip()))
        pidfile.unlink(missing_ok=True)
    _start(settings, name, meta["argv"], env, run_dir)


def read_stack(settings: Settings) -> StackInfo:
    path = settings.state_dir / "stack.json"
    if not path.exists():
        raise FileNotFoundError(f"no stack recorded in {settings.state_dir}; run `contingency up`")
    return StackInfo.model_validate(json.loads(path.read_text()))


def down(settings: Settings) -> list[str]:
    """Stop everything `up` started (intake, worker, server, then the lab)."""
    stopped = stop_all(settings.state_dir / "run", STOP_ORDER)
    from contingency.lab.launcher import stop_lab

    stopped += stop_lab(settings)
    (settings.state_dir / "stack.json").unlink(missing_ok=True)
    return stopped
