"""Every docstring example (``>>>``) in the project's packages runs and shows what it says.

One test per module whose source has a ``>>>``: every prompt must be collected by
doctest (none outside a docstring it finds, none skipped), and every example must pass.
An example that needs a Prefect server, an SSH host or a real service belongs in an
``Example::`` literal block instead. Run from the repository root (examples load
``inventory/examples/lab``).
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("inventory", "tasks", "remediations", "flows", "contingency")
PROMPT = re.compile(r"^\s*>>>", re.MULTILINE)


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts or ">>>" not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = _modules()


def test_modules_with_examples_are_found() -> None:
    assert "remediations.plan" in MODULES and "inventory.outcomes" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    source = Path(module.__file__).read_text(encoding="utf-8")
    tests = doctest.DocTestFinder().find(module)
    examples = [e for t in tests for e in t.examples]
    prompts = len(PROMPT.findall(source))
    assert len(examples) == prompts, (
        f"{name}: {prompts} '>>>' prompts in the source, doctest collects {len(examples)} "
        "(a '>>>' outside a docstring doctest finds?)"
    )
    skipped = [e.source.strip() for e in examples if e.options.get(doctest.SKIP)]
    assert not skipped, f"{name}: examples that never run: {skipped}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, (
        f"{name}: {result.failed} of {result.attempted} examples failed\n{out.getvalue()}"
    )
