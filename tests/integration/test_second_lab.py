"""Two labs on one machine: `contingency up --lab` with no port options picks free ports
itself when another lab already holds the defaults (sshd 2222, services 8080-8082, API
4200, intake 8787), and both stacks work."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import requests
import yaml

from contingency.cli.alerts import alertmanager_payload
from contingency.runtime.stack import read_stack
from inventory.settings import Settings
from tests.fixtures_stack import stop_stack

CLI = [sys.executable, "-m", "contingency"]


def _up(state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CONTINGENCY_"))}
    return subprocess.run(
        [*CLI, "up", "--lab", "--state-dir", str(state_dir)],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _ports(state_dir: Path) -> dict[str, int]:
    inv = state_dir / "lab" / "inventory"
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())["hosts"]
    services = yaml.safe_load((inv / "services.yaml").read_text())["services"]
    ports = {f"ssh:{h}": int(v["port"]) for h, v in hosts.items()}
    ports.update(
        {
            s: int(v["health"]["url"].rsplit(":", 1)[1].split("/")[0])
            for s, v in services.items()
            if "url" in v["health"]
        }
    )  # noqa: E501
    return ports


def test_second_lab_picks_free_ports(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        done = _up(first)
        assert done.returncode == 0, done.stderr[-3000:]
        again = _up(second)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Traceback" not in again.stderr
        a, b = (read_stack(Settings(state_dir=d)) for d in (first, second))
        assert a.api_url != b.api_url and a.intake_url != b.intake_url
        pa, pb = _ports(first), _ports(second)
        assert pa.keys() == pb.keys()
        assert all(pa[k] != pb[k] for k in pa), (pa, pb)
        # both stacks take an alert
        for state in (first, second):
            info = read_stack(Settings(state_dir=state))
            token = (state / "secrets" / "webhook-token").read_text().strip()
            labels = {"alertname": "Probe", "host": "nowhere", "test": uuid.uuid4().hex}
            resp = requests.post(
                f"{info.intake_url}/webhook/alertmanager",
                json=alertmanager_payload(labels),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert resp.status_code == 202, resp.text
    finally:
        stop_stack(second)
        stop_stack(first)
