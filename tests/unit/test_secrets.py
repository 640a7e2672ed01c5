"""resolve_secret's lookup order, and redaction of known secret values."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import inventory.secrets as secrets
from inventory.secrets import (
    RedactingFilter,
    SecretNotFound,
    env_var_name,
    redact,
    register_secret_value,
    resolve_secret,
)
from inventory.settings import Settings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith("CONTINGENCY_SECRET_"):
            monkeypatch.delenv(var)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    secrets._forget_all()
    yield
    secrets._forget_all()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "secrets").mkdir()
    return Settings(state_dir=tmp_path)


def put(settings: Settings, name: str, text: str) -> Path:
    path = settings.secrets_dir / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("name", "var"),
    [
        ("lab-ssh-key", "CONTINGENCY_SECRET_LAB_SSH_KEY"),
        ("cc.channel", "CONTINGENCY_SECRET_CC_CHANNEL"),
        ("s3_key", "CONTINGENCY_SECRET_S3_KEY"),
    ],
)
def test_env_var_name(name: str, var: str) -> None:
    assert env_var_name(name) == var


def test_env_wins_over_file(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    put(settings, "lab-ssh-key", "from-file\n")
    monkeypatch.setenv("CONTINGENCY_SECRET_LAB_SSH_KEY", "from-env")
    assert resolve_secret("lab-ssh-key", settings).get_secret_value() == "from-env"


def test_file_strips_one_trailing_newline(settings: Settings) -> None:
    put(settings, "multi", "line1\nline2\n\n")
    put(settings, "crlf", "value\r\n")
    assert resolve_secret("multi", settings).get_secret_value() == "line1\nline2\n"
    assert resolve_secret("crlf", settings).get_secret_value() == "value"


def test_empty_env_var_falls_through_to_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTINGENCY_SECRET_TOKEN", "")
    put(settings, "token", "from-file")
    assert resolve_secret("token", settings).get_secret_value() == "from-file"


def test_not_found_names_the_places_but_no_value(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTINGENCY_SECRET_OTHER", "s3cr3t-value")
    with pytest.raises(SecretNotFound) as info:
        resolve_secret("cc-channel", settings)
    message = str(info.value)
    assert "'cc-channel'" in message
    assert "CONTINGENCY_SECRET_CC_CHANNEL" in message
    assert str(settings.secrets_dir / "cc-channel") in message
    assert "PREFECT_API_URL not set" in message
    assert "s3cr3t" not in message
    assert isinstance(info.value, KeyError)


def test_empty_file_is_not_a_secret(settings: Settings) -> None:
    put(settings, "blank", "\n")
    with pytest.raises(SecretNotFound, match=r"\(empty\)"):
        resolve_secret("blank", settings)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "", "UPPER", ".hidden"])
def test_names_that_could_escape_the_directory_are_refused(settings: Settings, name: str) -> None:
    with pytest.raises(ValueError, match="invalid secret name"):
        resolve_secret(name, settings)


def test_group_readable_file_warns(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    put(settings, "loose", "v").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="inventory.secrets"):
        assert resolve_secret("loose", settings).get_secret_value() == "v"
    assert "chmod 600" in caplog.text


def test_unreachable_prefect_is_skipped_quickly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback: connection refused, no network involved.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setattr(secrets, "PREFECT_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with pytest.raises(SecretNotFound, match="Prefect Secret block 'nope'"):
        resolve_secret("nope", settings)
    assert time.monotonic() - started < 2


def test_prefect_is_not_imported_without_api_url(settings: Settings) -> None:
    put(settings, "k", "v")
    before = "prefect.blocks.system" in sys.modules
    with pytest.raises(SecretNotFound):
        resolve_secret("absent", settings)
    assert ("prefect.blocks.system" in sys.modules) == before


# --- redaction ----------------------------------------------------------------------------


def test_resolved_secrets_are_redacted(settings: Settings) -> None:
    put(settings, "db", "pa55word-xyz")
    assert redact("connect with pa55word-xyz now") == "connect with pa55word-xyz now"
    resolve_secret("db", settings)
    assert redact("connect with pa55word-xyz now, pa55word-xyz") == "connect with *** now, ***"


def test_redact_longest_first() -> None:
    register_secret_value("abcd")
    register_secret_value("abcdefgh")
    assert redact("x abcdefgh y abcd") == "x *** y ***"


def test_redact_treats_values_literally() -> None:
    register_secret_value("a.b*c")
    assert redact("axb*c a.b*c") == "axb*c ***"


def test_empty_value_is_ignored() -> None:
    register_secret_value("")
    assert redact("text") == "text"


def test_lines_of_a_multiline_secret_are_redacted_alone() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END-----\n"
    register_secret_value(key)
    assert redact("leaked: b3BlbnNzaC1rZXktdjEAAAAABG5vbmU") == "leaked: ***"
    assert redact(f"all: {key}") == "all: ***"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("failed with tok-123456")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_filter_redacts_message_and_args() -> None:
    register_secret_value("tok-123456")
    record = _record("auth %s for %s", "tok-123456", "web1")
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "auth *** for web1"


def test_filter_redacts_tracebacks() -> None:
    register_secret_value("tok-123456")
    record = _record("boom", exc=True)
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "RuntimeError: failed with ***" in text
    assert "tok-123456" not in text


def test_filter_on_a_handler(caplog: pytest.LogCaptureFixture) -> None:
    register_secret_value("tok-123456")
    log = logging.getLogger("test_secrets.handler")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("header Authorization: Bearer %s", "tok-123456")
    assert caplog.messages == ["header Authorization: Bearer ***"]


def test_filter_leaves_records_alone_when_nothing_is_known() -> None:
    record = _record("value %s", "x")
    RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("value %s", ("x",))


def test_install_redaction_filters_every_handler_once() -> None:
    import logging

    from inventory.secrets import RedactingFilter, install_redaction, register_secret_value

    logger = logging.getLogger("contingency.test.redaction")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        assert install_redaction("contingency.test.redaction") == 1
        assert install_redaction("contingency.test.redaction") == 0
        register_secret_value("s3cr3t-value-for-the-filter")
        logger.warning("token=%s", "s3cr3t-value-for-the-filter")
        assert records == ["token=***"]
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)
