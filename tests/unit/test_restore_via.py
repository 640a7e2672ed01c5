"""`Dataset.restore_via` / `BackupLocation.host_endpoint` validation, and the pieces of a
direct restore that need no host: the curl config, the command, the scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from inventory.datasets import Dataset
from inventory.settings import Settings
from tasks.actions.direct import URL_MASK, curl_config, failure, fetch_command, scrub, scrubbed
from tasks.ssh.models import CommandResult

LOC = {"bucket": "bkp", "prefix": "x", "endpoint": "http://s3:8333", "key_id_ref": "id",
       "key_ref": "k"}  # fmt: skip
URL = (
    "http://s3:8333/bkp/x/1.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0123456789abcdef"
)


def _ds(**kw: Any) -> Dataset:
    return Dataset.model_validate({"host": "h", "path": "/d/x.bin", "location": LOC, **kw})


def test_restore_via_defaults_to_sftp_for_existing_inventories() -> None:
    assert _ds().restore_via == "sftp"
    assert _ds().location.host_endpoint is None


@pytest.mark.parametrize("via", ["sftp", "direct", "auto"])
def test_restore_via_accepts_the_three_ways(via: str) -> None:
    assert _ds(restore_via=via).restore_via == via


@pytest.mark.parametrize("via", ["http", "SFTP", "", "curl", None, 1])
def test_restore_via_rejects_anything_else(via: object) -> None:
    with pytest.raises(ValidationError, match="restore_via"):
        _ds(restore_via=via)


def test_host_endpoint_must_be_an_http_url() -> None:
    ok = _ds(location={**LOC, "host_endpoint": "https://s3.internal:9000"})
    assert ok.location.host_endpoint == "https://s3.internal:9000"
    with pytest.raises(ValidationError, match="host_endpoint"):
        _ds(location={**LOC, "host_endpoint": "s3.internal:9000"})


def test_url_expiry_setting_is_bounded() -> None:
    assert Settings().restore_url_expires_s == 300
    assert Settings(restore_url_expires_s=60).restore_url_expires_s == 60
    for bad in (0, 5, 7200):
        with pytest.raises(ValidationError):
            Settings(restore_url_expires_s=bad)


def test_the_url_goes_to_stdin_never_the_command_line() -> None:
    cmd = fetch_command("/srv/.x.contingency-download-1")
    assert "X-Amz" not in cmd and "http" not in cmd and "-K -" in cmd
    assert cmd.startswith("curl -fsS --retry 2 ") and URL_MASK in cmd
    assert curl_config(URL) == f'url = "{URL}"\n'.encode()
    assert curl_config('http://h/a"b\\c') == b'url = "http://h/a\\"b\\\\c"\n'


def test_scrub_hides_the_url_and_its_credential_parameters() -> None:
    assert scrub(f"curl: (22) {URL} returned 403") == f"curl: (22) {URL_MASK} returned 403"
    assert "0123456789abcdef" not in scrub("X-Amz-Signature=0123456789abcdef&x=1")
    assert "AKID" not in scrub("...&X-Amz-Credential=AKID%2F2026 oops")
    assert scrub("plain text", URL) == "plain text"
    res = CommandResult(
        host="h", command=f"echo {URL}", exit_code=22, duration_s=0.1,
        stderr_tail=f"error {URL}", started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    clean = scrubbed(res, URL).model_dump_json()
    assert "X-Amz" not in clean and "0123456789abcdef" not in clean


def test_failure_names_what_the_host_could_not_do() -> None:
    def res(code: int | None, err: str = "", **kw: Any) -> CommandResult:
        return CommandResult(
            host="h", command="curl", exit_code=code, duration_s=1.0, stderr_tail=err,
            started_at=datetime(2026, 1, 1, tzinfo=UTC), **kw,
        )  # fmt: skip

    assert failure(res(127, "sh: 1: curl: not found\n")).startswith("curl is not installed")
    assert "cannot connect to the store" in failure(res(7, "curl: (7) Failed to connect\n"))
    assert "HTTP error" in failure(res(22))
    assert failure(res(99)) == "curl exited 99"
    assert "did not finish" in failure(res(None, timed_out=True))


def test_the_data_loss_plan_shows_how_the_copy_gets_there() -> None:
    from inventory.loader import load_inventory
    from remediations.data_loss import build_plan
    from remediations.plan import TransferAction
    from tasks.storage import Manifest, RestorePoint

    inv = load_inventory("inventory/examples/lab")
    man = Manifest(
        key="p/1.bin", size=10, sha256="ab" * 32, created=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=1.0, source_host="h", source_path="/d", format="sqlite",
    )  # fmt: skip
    point = RestorePoint(key="p/1.bin", manifest=man)
    ds = inv.datasets["report-db"]
    shown = {}
    for via in ("sftp", "direct", "auto"):
        plan = build_plan("report-db", ds.model_copy(update={"restore_via": via}), inv, point)
        transfer = plan.actions[0]
        assert isinstance(transfer, TransferAction) and transfer.via == via
        shown[via] = transfer.shown
    assert "host downloads" not in shown["sftp"]  # unchanged for existing inventories
    assert "(the host downloads it)" in shown["direct"]
    assert "(the host downloads it, else SFTP)" in shown["auto"]
