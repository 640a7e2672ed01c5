"""The CLI's inventory validation, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "examples" / "lab"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contingency", *args], capture_output=True, text=True, timeout=60
    )


def test_validate_shipped_lab_inventory() -> None:
    proc = _cli("inventory", "validate", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())  # rich wraps at the terminal's width
    assert "5 hosts" in said and "4 services (1 on many hosts: 3 instances)" in said


def test_validate_reports_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "inv.yaml"
    bad.write_text(
        "hosts:\n"
        "  web1: {address: 127.0.0.2, user: root, key_secret: k}\n"
        "services:\n"
        "  web:\n"
        "    host: web9\n"
        "    health: {kind: tcp, port: 99999}\n"
        "    manager: {kind: commands, restart: [x]}\n"
    )
    proc = _cli("inventory", "validate", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:6:" in proc.stderr and "port" in proc.stderr
    assert f"{bad}:5:" in proc.stderr and "web9" in proc.stderr
