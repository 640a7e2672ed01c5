"""Every benchmark runs exactly as its docstring says (the command line it shows, with
``--help`` so that nothing is started): a reader who copies the line gets the script."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"^\s*\.venv/bin/python (.+?)(?:\s+#.*)?$", re.M)
SCRIPTS = sorted(
    p
    for p in (ROOT / "benchmarks").glob("*.py")
    if p.name not in ("__init__.py", "common.py", "intake_load.py")  # helpers
)


def _commands(path: Path) -> list[list[str]]:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    out = []
    for line in COMMAND.findall(doc):
        argv = shlex.split(re.sub(r"\[[^\]]*\]", "", line))  # drop [optional] parts
        out.append([a for a in argv if not a.startswith("-") or a == "-m"][:2])
    return out


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_docstring_command_runs(path: Path) -> None:
    commands = _commands(path)
    assert commands, f"{path.name}: its docstring shows no `.venv/bin/python …` command"
    for argv in {tuple(c) for c in commands}:
        done = subprocess.run(
            [sys.executable, *argv, "--help"], cwd=ROOT, capture_output=True, text=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr[-1500:]}"
        assert "usage:" in done.stdout
