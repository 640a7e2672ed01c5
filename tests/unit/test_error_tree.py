"""One error tree: every error the project raises on purpose is defined in
inventory/errors.py and derives from ContingencyError (what the incident flow catches)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import inventory.errors as errors

ROOT = Path(__file__).resolve().parents[2]
OWN_EXCEPTION = re.compile(r"^class (\w+)\((?:[\w.]*Error|Exception|[\w.]*Exception)\b", re.M)


def test_every_error_in_the_tree_derives_from_the_root() -> None:
    found = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__
    ]
    assert len(found) > 20
    assert all(issubclass(c, errors.ContingencyError) for c in found)
    assert issubclass(errors.SecretNotFound, KeyError) and issubclass(errors.UnknownName, KeyError)


def test_no_error_class_is_defined_outside_the_tree() -> None:
    elsewhere = []
    for package in ("inventory", "tasks", "remediations", "flows", "contingency"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "errors.py" and path.parent.name == "inventory":
                continue
            for name in OWN_EXCEPTION.findall(path.read_text(encoding="utf-8")):
                if not name.startswith("_"):  # private control flow inside one module
                    elsewhere.append(f"{path.relative_to(ROOT)}: {name}")
    assert elsewhere == []
