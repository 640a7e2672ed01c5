"""Every result of a command, transfer, driver call and probe says ``ok``."""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.runners import StepResult, VerifyResult
from tasks.actions.failover import DriverResult
from tasks.actions.restore import RestoreResult
from tasks.facts.hosts import HostProbe
from tasks.facts.network import LinkProbe
from tasks.facts.probes import ProbeResult
from tasks.results import Result
from tasks.ssh.models import CommandResult

AT = datetime(2026, 12, 1, tzinfo=UTC)


CMD = {"host": "h", "command": "c", "duration_s": 0.1, "started_at": AT}
DRV = {"link": "l", "host": "r", "driver": "linux-route", "action": "ip route"}
RES = {"dataset_path": "/d", "key": "k"}
PRB = {"target": "w", "check": "tcp"}
LNK = {"link": "l", "interface": "e"}
STEP = {"index": 1, "kind": "ssh", "where": "h", "what": "c"}
# model, fields of a success, fields of a failure
CASES: list[tuple[type, dict[str, object], dict[str, object]]] = [
    (CommandResult, {**CMD, "exit_code": 0}, {**CMD, "exit_code": 1}),
    (DriverResult, {**DRV, "ok": True}, {**DRV, "ok": False}),
    (RestoreResult, {**RES, "ok": True}, {**RES, "ok": False}),
    (ProbeResult, {**PRB, "healthy": True}, {**PRB, "healthy": False}),
    (HostProbe, {"host": "h", "ports": {22: True}}, {"host": "h", "ports": {22: False}}),
    (LinkProbe, {**LNK, "state": "up"}, {**LNK, "state": "down"}),
    (VerifyResult, {"recovered": True, "attempts": []}, {"recovered": False, "attempts": []}),
    (StepResult, {**STEP, "outcome": "ok"}, {**STEP, "outcome": "unknown"}),
]  # fmt: skip


def test_every_result_model_says_ok_in_one_word() -> None:
    for model, good, bad in CASES:
        yes, no = model(**good), model(**bad)
        assert isinstance(yes, Result) and isinstance(no, Result), model
        assert (getattr(yes, "ok"), getattr(no, "ok")) == (True, False), model
