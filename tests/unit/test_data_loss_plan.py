"""The data-loss plan's pure parts: restore-point choice, the plan's commands, the
approvers' pick, and the lab's dataset inventory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inventory.datasets import Dataset
from inventory.loader import InventoryError, load_inventory
from remediations.data_loss import NoRestorePoint, build_plan, choose_point, parse_time
from tasks.actions.restore import host_check_command, swap_command
from tasks.gate.approval import refusal
from tasks.storage import Manifest, RestorePoint

T0 = datetime(2026, 11, 1, tzinfo=UTC)
LOC = {"bucket": "bkp", "prefix": "p", "endpoint": "http://s3", "key_id_ref": "a", "key_ref": "b"}


def _point(hours: int) -> RestorePoint:
    created = T0 + timedelta(hours=hours)
    key = f"p/{created:%Y%m%dT%H%M%S}.bin"
    man = Manifest(
        key=key, size=10, sha256="ab" * 32, created=created, duration_s=1.0,
        source_host="h", source_path="/d", format="file",
    )  # fmt: skip
    return RestorePoint(key=key, manifest=man)


POINTS = [_point(0), _point(24), _point(48)]


def test_latest_latest_before_and_picked() -> None:
    assert choose_point(POINTS) is POINTS[2]
    assert choose_point(POINTS, before=T0 + timedelta(hours=30)) is POINTS[1]
    assert choose_point(POINTS, pick=POINTS[0].key) is POINTS[0]
    with pytest.raises(NoRestorePoint, match="taken before 2026-10-31"):
        choose_point(POINTS, before=T0 - timedelta(days=1))
    with pytest.raises(NoRestorePoint, match="not in the backups"):
        choose_point(POINTS, pick="p/other.bin")


def test_parse_time_defaults_to_utc_and_names_bad_text() -> None:
    assert parse_time("2026-11-01T08:00:00") == T0 + timedelta(hours=8)
    assert parse_time("2026-11-01T08:00:00+08:00") == T0
    with pytest.raises(ValueError, match="not an ISO 8601 time: 'yesterday'"):
        parse_time("yesterday")


def test_approver_may_only_pick_an_offered_point_and_agree_with_the_first() -> None:
    allowed = {"a", "b"}
    keys = [p.key for p in POINTS]
    assert refusal("approve", "a", True, allowed, [], keys[0], keys) == ""
    assert "not one of the offered" in refusal("approve", "a", True, allowed, [], "x", keys)
    assert "differs from the first" in refusal(
        "approve", "b", True, allowed, ["a"], keys[1], keys, chosen=keys[0]
    )
    assert refusal("approve", "b", True, allowed, ["a"], "", keys, chosen=keys[0]) == ""


def test_plan_is_destructive_and_quotes_every_path() -> None:
    inv = load_inventory("inventory/examples/lab")
    ds = inv.datasets["report-db"]
    plan = build_plan("report-db", ds, inv, POINTS[2])
    assert plan.destructive and plan.requires_approval
    commands = [a.shown for a in plan.actions]
    assert commands.index("labctl stop report") < commands.index("labctl start report")
    swap = next(a for a in plan.actions if a.name == "swap")
    assert "contingency-old-" in swap.shown and "<time>" not in plan.as_markdown()
    assert swap.risk == "high" and not swap.idempotent


def test_host_commands_quote_hostile_paths() -> None:
    ds = Dataset(host="h", path="/srv/a b/$(reboot)", location=LOC)
    cmd = host_check_command(ds, "/srv/a b/.x;rm", "/srv/a b/.y", "ab" * 32)
    assert "'/srv/a b/.x;rm'" in cmd and "$(reboot)" not in cmd
    swap = swap_command(ds.path, "/srv/a b/.y", "/srv/a b/$(reboot).old")
    assert "'/srv/a b/$(reboot)'" in swap and "exit 21" in swap


def test_dataset_cross_checks_name_file_and_line(tmp_path) -> None:
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n  h1: {address: 127.0.0.1, user: u, key_secret: k, host_key: 'ssh-ed25519 AAAA'}\n"
    )
    (tmp_path / "services.yaml").write_text(
        "services:\n  s:\n    host: h1\n    health: {kind: command, command: 'true'}\n"
        "    manager: {kind: commands, restart: ['x']}\n"
    )
    (tmp_path / "datasets.yaml").write_text(
        "datasets:\n  d:\n    host: nope\n    path: /d\n    services: [s, ghost]\n"
        "    location: {bucket: bkp, prefix: p, endpoint: 'http://s3', key_id_ref: a, "
        "key_ref: b}\n    drill: {host: h1, path: /drills/d}\n"
    )
    with pytest.raises(InventoryError) as err:
        load_inventory(tmp_path)
    text = str(err.value)
    assert "datasets.yaml:3" in text and "unknown host 'nope'" in text
    assert "datasets.yaml:5" in text and "unknown service 'ghost'" in text
    assert "no stop/start commands" in text


def test_drill_path_must_not_be_the_live_path() -> None:
    with pytest.raises(ValueError, match="drills need a sandbox"):
        Dataset(host="h", path="/d", location=LOC, drill={"host": "h", "path": "/d"})
