"""The product on a Prefect server that `contingency up` did not start — as an operations
team that already runs Prefect would use it: a bare `prefect server start` with an auth
string, `contingency deploy` against it, `contingency worker` (no fork server) and
`contingency intake` as separate processes with their own state directories, and the CLI
with nothing but the API URL and auth string in its environment (no stack.json)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from contingency.cli.alerts import alertmanager_payload
from contingency.runtime.processes import free_port, http_ok, wait_until
from inventory.settings import Settings
from tests.fixtures_stack import last_outbox_row, settle_queued, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AUTH = "ops:" + uuid.uuid4().hex
EXAMPLE = ROOT / "inventory" / "examples" / "lab"


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without any Prefect or Contingency setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    env.update(extra)
    return env


@dataclass
class Server:
    api_url: str
    home: Path
    log: Path

    def env(self, state_dir: Path, **extra: str) -> dict[str, str]:
        """What a machine pointed at this server sets: the API, its auth string and its
        own state directory — nothing else."""
        return clean_env(
            CONTINGENCY_API_URL=self.api_url,
            CONTINGENCY_API_AUTH_STRING=AUTH,
            CONTINGENCY_STATE_DIR=str(state_dir),
            PREFECT_HOME=str(state_dir / "prefect-client"),
            **extra,
        )


def cli(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "contingency"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("bare-prefect")
    port = free_port()
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_AUTH_STRING=AUTH,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    )
    log = home / "server.log"
    proc = _start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_until(lambda: http_ok(f"{api}/health", auth=AUTH), "bare Prefect server", 120, log)
        yield Server(api_url=api, home=home, log=log)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    state = tmp_path_factory.mktemp("deployer")
    done = cli("deploy", env=server.env(state, CONTINGENCY_INVENTORY=str(EXAMPLE)))
    assert done.returncode == 0, done.stderr
    assert "incident/incident-response" in done.stdout
    return server


def test_deploy_writes_no_machine_path_and_creates_limits_once(
    deployed: Server, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from tasks.prefect_api import get_client

    again = cli("deploy", env=deployed.env(tmp_path, CONTINGENCY_INVENTORY=str(EXAMPLE)))
    assert again.returncode == 0, again.stderr
    assert "concurrency limits: 0 created" in again.stdout  # read first, created once
    with (
        temporary_settings({PREFECT_API_URL: deployed.api_url, PREFECT_API_AUTH_STRING: AUTH}),
        get_client(sync_client=True) as client,
    ):
        pool = client.read_work_pool("contingency")
        dep = client.read_deployment_by_name("incident/incident-response")
        limits = client.read_global_concurrency_limits(limit=200)
    job = pool.base_job_template["job_configuration"]
    assert job["command"] == "contingency-flow-run"
    assert "working_dir" not in job
    assert pool.base_job_template["variables"]["additionalProperties"] is False
    assert not dep.pull_steps
    # nothing of the deploying machine: no checkout, venv or state directory
    recorded = json.dumps([pool.base_job_template, dep.model_dump(mode="json")])
    for local in (str(ROOT), str(BIN), str(tmp_path)):
        assert local not in recorded
    assert {"contingency-target-web", "contingency-target-web1"} <= {x.name for x in limits}
    # the server never logged a duplicate-name violation (the limits are read first)
    assert "UniqueViolation" not in deployed.log.read_text(errors="replace")
    assert "IntegrityError" not in deployed.log.read_text(errors="replace")


def test_cli_without_a_stack(deployed: Server, tmp_path: Path) -> None:
    env = deployed.env(tmp_path)
    gates = cli("gates", "--json", env=env)
    assert gates.returncode == 0, gates.stderr
    assert json.loads(gates.stdout) == []
    stats = cli("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    assert isinstance(json.loads(stats.stdout), list)
    missing = cli("report", str(uuid.uuid4()), env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no report" in missing.stderr
    # PREFECT_API_URL alone (an existing Prefect setup) works as well
    plain = clean_env(
        PREFECT_API_URL=deployed.api_url,
        PREFECT_API_AUTH_STRING=AUTH,
        CONTINGENCY_STATE_DIR=str(tmp_path),
    )
    assert cli("gates", "--json", env=plain).returncode == 0


def test_config_file(deployed: Server, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'api_url = "{deployed.api_url}"\napi_auth_string = "{AUTH}"\n')
    env = clean_env(CONTINGENCY_CONFIG=str(config), CONTINGENCY_STATE_DIR=str(tmp_path))
    done = cli("gates", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [("ops:wrong", "refused the auth string (401)"), (None, "refused the auth string (401)")],
    ids=["wrong-auth", "no-auth"],
)
def test_unauthorised_is_one_line(
    server: Server, tmp_path: Path, auth: str | None, expected: str
) -> None:
    env = clean_env(CONTINGENCY_API_URL=server.api_url, CONTINGENCY_STATE_DIR=str(tmp_path))
    if auth:
        env["CONTINGENCY_API_AUTH_STRING"] = auth
    for args in (["gates"], ["freeze", "--reason", "x"], ["stats", "--json"]):
        done = cli(*args, env=env)
        assert done.returncode == 1, (args, done.stdout)
        assert expected in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def test_unreachable_and_unconfigured_are_one_line(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api"
    env = clean_env(CONTINGENCY_API_URL=dead, CONTINGENCY_STATE_DIR=str(tmp_path))
    for args in (["gates"], ["approve", str(uuid.uuid4()), "--as", "x", "--code", "1"]):
        done = cli(*args, env=env)
        assert done.returncode == 1
        assert done.stderr == f"cannot reach the Prefect API at {dead}: ConnectError: " + (
            "[Errno 111] Connection refused\n"
        ), done.stderr
    nothing = cli("gates", env=clean_env(CONTINGENCY_STATE_DIR=str(tmp_path)))
    assert nothing.returncode == 1 and nothing.stderr.startswith("no Prefect API configured")
    assert nothing.stderr.count("\n") == 1
    version = cli("--version", env=clean_env())
    assert version.returncode == 0 and version.stdout.startswith("contingency ")


def test_worker_and_intake_on_their_own(deployed: Server, tmp_path: Path) -> None:
    """A worker with no fork server and an intake, each with its own state directory
    and its own copy of the inventory, handle an alert end to end; the report is read
    back from Prefect by a third machine that has no file of it."""
    inventory = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    port = free_port()
    worker_state, intake_state, reader = (tmp_path / n for n in ("w", "i", "r"))
    procs = [
        _start(
            [str(BIN / "contingency"), "worker", "--name", f"remote-{uuid.uuid4().hex[:6]}"],
            deployed.env(worker_state, CONTINGENCY_INVENTORY=str(inventory)),
            tmp_path / "worker.log",
        ),
        _start(
            [str(BIN / "contingency"), "intake", "--host", "127.0.0.1", "--port", str(port)],
            deployed.env(intake_state, CONTINGENCY_INVENTORY=str(inventory)),
            tmp_path / "intake.log",
        ),
    ]
    try:
        intake = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{intake}/healthz"), "intake", 60, tmp_path / "intake.log")
        # the standalone intake's token is the file in its state dir (no env variable)
        token = (intake_state / "secrets" / "webhook-token").read_text().strip()
        labels = {"alertname": "SomethingOdd", "host": "nowhere", "test": uuid.uuid4().hex}
        outbox = Settings(state_dir=intake_state).outbox_path
        before = last_outbox_row(outbox)
        resp = requests.post(
            f"{intake}/webhook/alertmanager?wait=25",  # the answer carries the incident
            json=alertmanager_payload(labels),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        # a busy machine: the incident may still be queued after the wait
        resp = settle_queued(resp, outbox, before, tmp_path / "intake.log")
        assert resp.status_code == 202, resp.text
        run_id = resp.json()["incidents"][0]["flow_run_id"]
        env = deployed.env(reader)

        def report() -> dict | None:
            done = cli("report", run_id, "--json", env=env)
            return json.loads(done.stdout) if done.returncode == 0 else None

        found = wait_for(report, 120, "the incident's report in Prefect")
        assert found["source"] == "artifact"
        assert found["summary"]["plan"] == "unroutable"
        assert run_id in found["markdown"] or "unroutable" in found["markdown"].lower()
        assert (worker_state / "reports" / f"incident-{run_id}.md").exists()
        assert not (reader / "reports").exists()
    finally:
        for proc in procs:
            _stop(proc)


def test_prefect_deploy_all_from_prefect_yaml(deployed: Server, tmp_path: Path) -> None:
    """The README's path for teams that deploy with Prefect's own CLI: the pool first
    (`contingency deploy --pool-only`), then `prefect deploy --all` from prefect.yaml."""
    env = deployed.env(tmp_path)
    env.update(PREFECT_API_URL=deployed.api_url, PREFECT_API_AUTH_STRING=AUTH)
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from tasks.prefect_api import get_client

    with (
        temporary_settings({PREFECT_API_URL: deployed.api_url, PREFECT_API_AUTH_STRING: AUTH}),
        get_client(sync_client=True) as client,
    ):
        dep = client.read_deployment_by_name("incident/incident-response")
    assert not dep.pull_steps
    assert str(ROOT) not in json.dumps(dep.model_dump(mode="json"))


def test_a_run_that_cannot_start_is_reported(deployed: Server, tmp_path: Path) -> None:
    """A worker on a machine without the launcher (`contingency-flow-run` not on its
    PATH): the run crashes before any flow code runs; the reconciler (on another
    machine) reports it as an incident instead of letting it die silently."""
    inventory = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    env = deployed.env(tmp_path / "w", CONTINGENCY_INVENTORY=str(inventory))
    env.update(PREFECT_API_URL=deployed.api_url, PREFECT_API_AUTH_STRING=AUTH)
    env["PATH"] = "/usr/bin:/bin"  # no venv: the pool's command is not found here
    name = f"broken-{uuid.uuid4().hex[:6]}"
    worker = _start(
        [str(BIN / "prefect"), "worker", "start", "--pool", "contingency", "--name", name],
        env,
        tmp_path / "worker.log",
    )
    try:
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        from tasks.prefect_api import get_client

        with (
            temporary_settings({PREFECT_API_URL: deployed.api_url, PREFECT_API_AUTH_STRING: AUTH}),
            get_client(sync_client=True) as client,
        ):
            dep = client.read_deployment_by_name("incident/incident-response")
            alert = {"fingerprint": f"cannot-start-{uuid.uuid4().hex}", "labels": {"x": "y"}}
            run = client.create_flow_run_from_deployment(dep.id, parameters={"alert": alert})

            def crashed() -> bool:
                state = client.read_flow_run(run.id).state
                return bool(state and state.is_crashed())

            wait_for(crashed, 90, "the run to crash at start")
    finally:
        _stop(worker)
    rec_env = deployed.env(tmp_path / "rec", CONTINGENCY_INVENTORY=str(inventory))
    done = cli("reconciler", "--once", env=rec_env)
    assert done.returncode == 0, done.stderr[-2000:]
    found = cli("report", str(run.id), "--json", env=deployed.env(tmp_path / "reader"))
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["summary"]["outcome"] in ("interrupted", "crashed"), report["summary"]
