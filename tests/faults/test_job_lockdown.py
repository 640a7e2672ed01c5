"""Attacks through the Prefect API with only what an approver holds (the auth string):
no code runs through a flow run's or a deployment's job variables, parameters off the
deployment's schema are refused, flow processes carry no key they do not need, and a
freeze during a gate stops an approved plan."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError

from contingency.cli.gates import decide, open_gates
from contingency.lab.launcher import crash_service, labctl, service_host
from contingency.runtime.waiting import wait_for_run
from remediations import rails
from tests.faults.test_reliability import _alert, _cancel_open, _report, _restarts
from tests.fixtures_stack import Stack, approval_code, wait_for


def _deployment_id():  # type: ignore[no-untyped-def]
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name("incident/incident-response").id


@pytest.mark.parametrize(
    "job_variables",
    [
        {"command": "sh -c 'touch {marker}'"},
        {"env": {"PYTHONSTARTUP": "{marker}", "LD_PRELOAD": "{marker}"}},
        {"working_dir": "/tmp"},
    ],
    ids=["command", "env", "working_dir"],
)
def test_job_variables_cannot_change_command_env_or_directory(
    lab_stack: Stack, job_variables: dict, tmp_path: Path
) -> None:
    from prefect.client.schemas.actions import DeploymentUpdate

    marker = tmp_path / f"marker-{uuid.uuid4().hex}"
    values = {
        k: (v.format(marker=marker) if isinstance(v, str) else
            {ek: ev.format(marker=marker) for ek, ev in v.items()})
        for k, v in job_variables.items()
    }  # fmt: skip
    dep = _deployment_id()
    with get_client(sync_client=True) as client:
        with pytest.raises(PrefectHTTPStatusError) as run_refused:
            client.create_flow_run_from_deployment(
                dep,
                parameters={"alert": {"fingerprint": "x", "labels": {"alertname": "X"}}},
                job_variables=values,
            )
        assert run_refused.value.response.status_code == 422
        # The open-source server stores a deployment update without checking it
        # against the pool: no run can be created from it, and the reconciler removes
        # the job variables within a pass.
        client.update_deployment(dep, DeploymentUpdate(job_variables=values))
        with pytest.raises(PrefectHTTPStatusError) as still_refused:
            client.create_flow_run_from_deployment(
                dep, parameters={"alert": {"fingerprint": "x", "labels": {}}}
            )
        assert still_refused.value.response.status_code == 422
        wait_for(
            lambda: not client.read_deployment(dep).job_variables, 30, "job variables reverted"
        )
        pool = client.read_work_pool("contingency")
    assert pool.base_job_template["variables"]["additionalProperties"] is False
    assert "{{" not in str(pool.base_job_template["job_configuration"]["command"])
    assert not marker.exists()


def test_parameters_off_the_schema_are_refused(lab_stack: Stack) -> None:
    dep = _deployment_id()
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError) as refused:
        client.create_flow_run_from_deployment(dep, parameters={"alert": "sh -c id", "extra": 1})
    assert refused.value.response.status_code in (409, 422)


def test_flow_processes_carry_no_server_or_intake_secret(lab_stack: Stack) -> None:
    crash_service(lab_stack.settings, "report")
    try:
        run_id = _alert(lab_stack, "report")
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 60, "gate")
        pid = (lab_stack.state_dir / "run" / "flows" / f"{run_id}.pid").read_text().strip()
        env = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        for secret in (
            "PREFECT_SERVER_ENCRYPTION_KEY",
            "PREFECT_SERVER_API_AUTH_STRING",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL",
            "CONTINGENCY_WEBHOOK_TOKEN",
        ):
            assert secret not in env, secret
        assert env.get("CONTINGENCY_STATE_DIR") == str(lab_stack.state_dir)  # read right
        token = (lab_stack.state_dir / "secrets" / "webhook-token").read_text().strip()
        assert token not in Path(f"/proc/{pid}/environ").read_text()
    finally:
        _cancel_open()
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")


def test_freeze_during_a_gate_then_approve_runs_nothing(lab_stack: Stack) -> None:
    crash_service(lab_stack.settings, "report")
    try:
        run_id = _alert(lab_stack, "report")
        wait_for(lambda: any(g.flow_run_id == run_id for g in open_gates()), 60, "gate")
        before = _restarts(lab_stack, "report")
        rails.freeze("li.na", "change freeze during the gate")
        decide(run_id, "approve", "zhang.wei", approval_code(lab_stack, run_id), "go")
        run = wait_for_run(run_id, timeout_s=90)
        assert run.state is not None and run.state.name == "Escalated", run.state
        text = _report(lab_stack, run_id)
        assert "frozen" in text and "after sign-off" in text
        assert _restarts(lab_stack, "report") == before  # nothing ran
    finally:
        rails.thaw()
        _cancel_open()
        labctl(lab_stack.settings, service_host(lab_stack.settings, "report"), "start", "report")
