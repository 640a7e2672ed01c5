"""`contingency up` / `down`: the embedded stack on one machine.

Prefect server (SQLite in the state directory, or PostgreSQL with ``database_url``),
the process work pool and deployments, the fork server, a worker, the alert intake and
the reconciler — all bound to 127.0.0.1, all recorded under ``<state_dir>/run`` so
``down`` stops exactly them — and last the supervisor (``contingency/runtime/supervisor.py``),
which restarts any of them that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from contingency.runtime.processes import (
    check_ok,
    has_env,
    http_ok,
    local_address,
    port_or_free,
    processes_with_env,
    spawn,
    stop_groups,
    wait_until,
)
from inventory.secrets import local_secret, webhook_token
from inventory.settings import Settings

__all__ = ["webhook_token"]  # re-exported: tests and benchmarks import it from here

LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
COMPONENTS = ["server", "forkserver", "worker", "intake", "reconciler"]
"""What the supervisor keeps running, in start order."""
STOP_ORDER = ["supervisor", "intake", "reconciler", "worker", "forkserver", "server"]
STOP_GRACE_S = {"supervisor": 3.0, "forkserver": 5.0}
"""SIGTERM-to-SIGKILL grace per component when stopping (default 8 s)."""
# Poll intervals that decide alert-to-action latency (Prefect's defaults are 10 s).
FAST_POLLING = {
    "PREFECT_WORKER_QUERY_SECONDS": "0.2",
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


def auth_string(settings: Settings) -> str:
    """The Prefect API auth string of this state dir's stack (generated once)."""
    return local_secret(settings, "prefect-auth-string", f"admin:{secrets.token_urlsafe(24)}")


def stack_client(settings: Settings) -> AbstractContextManager[object]:
    """Point this process's Prefect client at the running stack (URL and auth)."""
    info = read_stack(settings)
    return api_settings(
        {"PREFECT_API_URL": info.api_url, "PREFECT_API_AUTH_STRING": auth_string(settings)}
    )


def stack_env(settings: Settings, api_port: int, database_url: str | None) -> dict[str, str]:
    """Environment shared by the server, worker, flow runs and intake."""
    from cryptography.fernet import Fernet

    api = f"http://{local_address(settings.api_host)}:{api_port}/api"
    prefect_home = settings.state_dir / "prefect"
    db = database_url or f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(FAST_POLLING)
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": api,
            "PREFECT_UI_API_URL": api,
            "PREFECT_SERVER_API_HOST": settings.api_host,
            "PREFECT_SERVER_API_PORT": str(api_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": db,
            # The open-source server has no users: anyone reaching the API could resume a
            # gate. Require an auth string (the UI asks for it once per browser).
            "PREFECT_SERVER_API_AUTH_STRING": auth_string(settings),
            "PREFECT_API_AUTH_STRING": auth_string(settings),
            "PREFECT_SERVER_ENCRYPTION_KEY": local_secret(
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
    if db.startswith("sqlite"):
        # Prefect marks each run still Scheduled 15 s after its time "Late", one
        # transaction per run on concurrent workers. On SQLite that fights the intake's
        # run creations for the one write lock: with 200 incidents queued behind the
        # pool's cap, thousands of "database is locked" and dispatch fell to ~1 run/s
        # (benchmarks/storm.py). "Late" is only a name (the type stays Scheduled).
        env["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
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
    game_days: bool = False,
) -> StackInfo:
    """Start the stack. ``game_days`` (a lab only): the game-day schedules of
    prefect.yaml whose targets the lab has are turned on (the drill calendar)."""
    console = console or Console(stderr=True)
    run_dir = settings.state_dir / "run"
    if any(run_dir.glob("*.pid")):
        console.print("[yellow]a stack is already recorded here; stopping it first[/]")
        down(settings)
    # Owner only: the state dir 0700, and everything the stack creates from here on
    # (database, secrets, reports, lab inbox) 0600 — spawn() gives each component 077 too.
    os.umask(0o077)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.state_dir.chmod(0o700)
    if lab:
        from contingency.lab.launcher import start_lab

        with console.status("starting the lab (sshd hosts and sample services)"):
            inv_path = start_lab(settings, lab_ssh_port, lab_service_ports)
        settings = settings.model_copy(update={"inventory": inv_path})
    if database_url is None and settings.database_url is not None:
        database_url = settings.database_url.get_secret_value()
    # The configured ports unless taken and not asked for (a second stack on this
    # machine): then free ones. 0 always picks a free port.
    api_port = port_or_free(
        settings.api_port if api_port is None else api_port,
        [settings.api_host],
        explicit=bool(api_port) or "api_port" in settings.model_fields_set,
    )
    intake_port = port_or_free(
        settings.intake_port if intake_port is None else intake_port,
        [settings.intake_host],
        explicit=bool(intake_port) or "intake_port" in settings.model_fields_set,
    )
    if database_url:
        local_secret(settings, "prefect-database-url", database_url)
    env = _env(settings, api_port, database_url, polling)
    argvs = _argvs(settings, api_port, intake_port, run_dir)
    (run_dir).mkdir(parents=True, exist_ok=True)
    (run_dir / "components.json").write_text(
        json.dumps(
            {
                "argv": argvs,
                "api_port": api_port,
                "polling": polling or {},
                "supervised": COMPONENTS,
            },
            indent=2,
        )
    )
    # What the supervisor restarts a component with (secrets inside: owner only).
    _write_private(run_dir / "env.json", json.dumps({"env": {n: env for n in argvs}}))
    (settings.state_dir / "prefect").mkdir(parents=True, exist_ok=True)
    with console.status(f"starting the Prefect server on {settings.api_host}:{api_port}"):
        _start(settings, "server", argvs, env, run_dir)
    with console.status("applying the work pool and deployments"), api_settings(env):
        from contingency.runtime.deploy import apply_deployments, ensure_work_pool

        # command, env and working directory fixed in the pool's template (no overrides)
        asyncio.run(
            ensure_work_pool(
                settings.work_pool, locked=True, concurrency=settings.incident_max_concurrent
            )
        )
        activate = None
        if game_days and lab:
            from contingency.runtime.deploy import game_days_in
            from inventory.loader import load_inventory

            activate = game_days_in(load_inventory(settings.inventory_path()))
        names = asyncio.run(apply_deployments(settings.work_pool, activate=activate))
    console.print(f"deployments: {', '.join(names)}")
    for name in ("forkserver", "worker", "intake", "reconciler", "supervisor"):
        _start(settings, name, argvs, env, run_dir)
    intake_url = f"http://{local_address(settings.intake_host)}:{intake_port}"
    info = StackInfo(
        api_url=env["PREFECT_API_URL"],
        ui_url=f"http://{local_address(settings.api_host)}:{api_port}",
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
    # A warm interpreter forks each flow run (see contingency/runtime/forkserver.py).
    env["CONTINGENCY_FORKSERVER"] = str(settings.state_dir / "run" / "forkserver.sock")
    return env


def _argvs(
    settings: Settings, api_port: int, intake_port: int, run_dir: Path
) -> dict[str, list[str]]:
    """The components as `contingency` commands (contingency/cli/components.py), as an
    operations team would run them one per machine; the server is Prefect's own."""
    me = [sys.executable, "-m", "contingency"]
    return {
        "server": [
            _bin("prefect"),
            "server",
            "start",
            "--host",
            settings.api_host,
            "--port",
            str(api_port),
        ],
        "forkserver": [*me, "forkserver", "--socket", str(run_dir / "forkserver.sock")],
        "worker": [
            *me,
            "worker",
            "--pool",
            settings.work_pool,
            "--name",
            f"contingency-{settings.work_pool}",
        ],
        "intake": [*me, "intake", "--host", settings.intake_host, "--port", str(intake_port)],
        "reconciler": [*me, "reconciler"],
        "supervisor": [
            sys.executable,
            "-m",
            "contingency.runtime.supervisor",
            str(settings.state_dir.resolve()),
        ],
    }


def _start(
    settings: Settings, name: str, argvs: dict[str, list[str]], env: dict[str, str], run_dir: Path
) -> int:
    """Start one component and wait until it is ready; return its pid."""
    if name == "forkserver":  # a killed fork server leaves its socket behind
        Path(env["CONTINGENCY_FORKSERVER"]).unlink(missing_ok=True)
    pid = spawn(name, argvs[name], least_env(name, env), run_dir)
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
    elif name == "intake":
        argv = argvs[name]
        port = argv[argv.index("--port") + 1]
        host = local_address(argv[argv.index("--host") + 1])
        wait_until(
            lambda: http_ok(f"http://{host}:{port}/healthz"),
            "alert intake",
            60,
            run_dir / "intake.log",
        )
        # its dispatcher (a process of its own) is what turns stored alerts into incidents
        wait_until(
            lambda: check_ok(f"http://{host}:{port}/readyz", "dispatcher"),
            "alert intake's dispatcher",
            60,
            run_dir / "intake.log",
        )
    return pid


SERVER_ONLY = (
    "PREFECT_SERVER_ENCRYPTION_KEY",
    "PREFECT_SERVER_API_AUTH_STRING",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",  # may hold a PostgreSQL password
)
INTAKE_ONLY = ("CONTINGENCY_WEBHOOK_TOKEN",)


def least_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """What component ``name`` may see of the stack's environment: the encryption key,
    the server's own auth setting and the database URL only in the server; the
    webhook token only in the intake. The worker, the fork server — and so every flow
    run — the reconciler and the supervisor get neither (a flow that needs a secret
    resolves it at use: inventory/secrets.py).

    >>> sorted(least_env("worker", {"PREFECT_SERVER_ENCRYPTION_KEY": "k",
    ...     "CONTINGENCY_WEBHOOK_TOKEN": "t", "PREFECT_API_URL": "u"}))
    ['PREFECT_API_URL']
    """
    drop = set(SERVER_ONLY if name != "server" else ()) | set(
        INTAKE_ONLY if name != "intake" else ()
    )
    return {k: v for k, v in env.items() if k not in drop}


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, replaced atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def component_env(run_dir: Path, name: str) -> dict[str, str]:
    """The environment ``name`` was last started with (recorded by up / restart)."""
    return dict(json.loads((run_dir / "env.json").read_text())["env"][name])


def record_env(run_dir: Path, name: str, env: dict[str, str]) -> None:
    path = run_dir / "env.json"
    data = json.loads(path.read_text()) if path.exists() else {"env": {}}
    data["env"][name] = env
    _write_private(path, json.dumps(data))


@contextlib.contextmanager
def component_lock(run_dir: Path, name: str, wait: bool = True) -> Iterator[bool]:
    """Hold ``run/locks/<name>.lock`` while stopping or starting a component, so the
    supervisor never restarts what ``restart`` is restarting. Yields False if
    ``wait`` is off and someone else holds it."""
    lock_dir = run_dir / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def stack_marks(settings: Settings) -> dict[str, str]:
    """Environment variables every process of this stack has, flow runs included (the
    fork server's children inherit its environment block): how ``down`` recognises
    them, and tells them from an unrelated process that got a recorded pid."""
    return {
        "CONTINGENCY_STATE_DIR": str(settings.state_dir),
        "CONTINGENCY_FORKSERVER": str(settings.state_dir / "run" / "forkserver.sock"),
    }


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
    marks = stack_marks(settings)
    with component_lock(run_dir, name):
        if pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                stop_groups([pid], lambda p: has_env(p, marks))
            pidfile.unlink(missing_ok=True)
        record_env(run_dir, name, env)  # what the supervisor restarts it with from now on
        _start(settings, name, meta["argv"], env, run_dir)


def recorded_stack(settings: Settings) -> StackInfo | None:
    """The stack `contingency up` recorded in the state dir, if there is one."""
    path = settings.state_dir / "stack.json"
    if not path.exists():
        return None
    return StackInfo.model_validate(json.loads(path.read_text()))


def read_stack(settings: Settings) -> StackInfo:
    info = recorded_stack(settings)
    if info is None:
        raise FileNotFoundError(f"no stack recorded in {settings.state_dir}; run `contingency up`")
    return info


def down(settings: Settings) -> list[str]:
    """Stop everything `up` started — the supervisor first (so it restarts nothing),
    then intake, reconciler, worker, fork server with every flow-run process, server,
    then the lab — and return the names stopped. Each component's whole process group
    is stopped, also when its leader already died; what is left anywhere with this
    stack's environment (e.g. a run that left its group) is stopped last. Pids are
    checked against the stack's environment first: after a power loss a stale pid
    file may name somebody else's process."""
    run_dir = settings.state_dir / "run"
    marks = stack_marks(settings)

    def owned(pid: int) -> bool:
        return has_env(pid, marks)

    pidfiles = {p.stem: p for p in run_dir.glob("*.pid")} if run_dir.exists() else {}
    flows = sorted((run_dir / "flows").glob("*.pid")) if run_dir.exists() else []
    names = [n for n in STOP_ORDER if n in pidfiles] + sorted(set(pidfiles) - set(STOP_ORDER))
    if flows and "forkserver" not in names:
        names.append("forkserver")
    for name in names:
        pids = [_read_pid(pidfiles[name])] if name in pidfiles else []
        if name == "forkserver":
            pids += [_read_pid(p) for p in flows]
        stop_groups([p for p in pids if p], owned, STOP_GRACE_S.get(name, 8.0))
        if name in pidfiles:
            pidfiles[name].unlink(missing_ok=True)
    for path in flows:
        path.unlink(missing_ok=True)
    left = processes_with_env(marks)
    if left:
        stop_groups(left, owned, 3.0)
    (run_dir / "forkserver.sock").unlink(missing_ok=True)
    from contingency.lab.launcher import stop_lab

    stopped = [n for n in names if n in pidfiles] + stop_lab(settings)
    (settings.state_dir / "stack.json").unlink(missing_ok=True)
    return stopped


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
