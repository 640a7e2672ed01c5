"""Settings from a TOML config file: below the environment, above the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from contingency.runtime.api import api_target
from inventory.errors import NotConfigured
from inventory.settings import Settings


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("API_URL", "API_AUTH_STRING", "LANGUAGE", "INVENTORY", "STATE_DIR"):
        monkeypatch.delenv(f"CONTINGENCY_{name}", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(
        'api_url = "https://prefect.example.org/api/"\n'
        'api_auth_string = "ops:from-file"\n'
        'language = "zh"\n'
        f'inventory = "{tmp_path / "inv"}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
    )
    monkeypatch.setenv("CONTINGENCY_CONFIG", str(path))
    return path


def test_the_file_sets_what_the_environment_does_not(config: Path) -> None:
    s = Settings()
    assert s.language == "zh" and s.inventory == config.parent / "inv"
    assert s.state_dir == config.parent / "state"
    target = api_target(s)
    assert (target.url, target.source) == ("https://prefect.example.org/api", "settings")
    assert target.auth is not None and target.auth.get_secret_value() == "ops:from-file"
    assert "from-file" not in repr(s)  # a secret in the file stays secret in logs


def test_the_environment_wins(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINGENCY_LANGUAGE", "en")
    monkeypatch.setenv("CONTINGENCY_API_URL", "http://10.0.0.5:4200/api")
    s = Settings()
    assert s.language == "en" and api_target(s).url == "http://10.0.0.5:4200/api"


def test_a_bad_value_in_the_file_names_the_setting(config: Path) -> None:
    config.write_text('language = "fr"\n')
    with pytest.raises(ValueError, match="language"):
        Settings()


def test_nothing_configured_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("CONTINGENCY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("CONTINGENCY_API_URL", raising=False)
    with temporary_settings({PREFECT_API_URL: None}), pytest.raises(NotConfigured) as exc:
        api_target(Settings(state_dir=tmp_path))
    assert "CONTINGENCY_API_URL" in str(exc.value) and "\n" not in str(exc.value)
