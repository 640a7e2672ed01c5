"""Settings shared by every layer (env prefix ``CONTINGENCY_``).

All state — Prefect home, SQLite database, lab files, reports, secrets — lives under
one state directory, ``~/.contingency`` unless ``CONTINGENCY_STATE_DIR`` says otherwise.

Each setting comes from, first found: the environment (``CONTINGENCY_<NAME>``), then a
TOML config file with the same names in lower case — ``$CONTINGENCY_CONFIG``, else
``/etc/contingency/config.toml`` and ``~/.config/contingency/config.toml`` (the user's
file wins) — then the default.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "CONTINGENCY_CONFIG"
SYSTEM_CONFIG = Path("/etc/contingency/config.toml")


def config_files() -> list[Path]:
    """The TOML config files read, lowest priority first.

    >>> import os; os.environ["CONTINGENCY_CONFIG"] = "/tmp/x.toml"; config_files()
    [PosixPath('/tmp/x.toml')]
    >>> del os.environ["CONTINGENCY_CONFIG"]
    """
    if explicit := os.environ.get(CONFIG_ENV):
        return [Path(explicit)]
    return [SYSTEM_CONFIG, Path.home() / ".config" / "contingency" / "config.toml"]


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (``CONTINGENCY_*``)."""

    model_config = SettingsConfigDict(env_prefix="CONTINGENCY_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = [p for p in config_files() if p.is_file()]
        toml = TomlConfigSettingsSource(settings_cls, toml_file=files) if files else None
        return (init_settings, env_settings, *([toml] if toml else []))

    state_dir: Path = Field(default_factory=lambda: Path.home() / ".contingency")
    inventory: Path | None = None
    """Inventory file or directory; default: ``<state_dir>/lab/inventory`` if present,
    else the shipped lab example."""
    webhook_token: SecretStr | None = None
    api_url: str | None = None
    """The Prefect API the CLI and the components talk to, e.g.
    ``https://prefect.example.org/api``; default ``PREFECT_API_URL`` (environment or
    Prefect profile), else the API of the stack ``contingency up`` recorded here."""
    api_auth_string: SecretStr | None = None
    """``user:password`` for that API; default ``PREFECT_API_AUTH_STRING``, else the
    recorded stack's."""
    intake_url: str | None = None
    """The intake as people and senders reach it (e.g. ``https://contingency.example.org``):
    where ``contingency alert send`` posts, and the base of the acknowledgement link in
    every page (``<intake_url>/ack/<run>``, behind the board's login); default the
    recorded stack's intake."""
    api_host: str = "127.0.0.1"
    """Address the Prefect server of ``contingency up`` listens on (``0.0.0.0``: all)."""
    api_port: int = 4200
    intake_port: int = 8787
    intake_host: str = "127.0.0.1"
    """Address the alert intake listens on (``0.0.0.0``: all, e.g. behind a balancer)."""
    work_pool: str = "contingency"
    incident_deployment: str = "incident/incident-response"
    plan_review_days: int = Field(365, ge=1, le=3650)
    """The command center reviews the plan at least this often (``contingency plans
    review``); the document and ``plans reviews`` say when the next is due."""
    database_url: SecretStr | None = None
    """PostgreSQL for the Prefect server of ``contingency up`` (scale-out), e.g.
    ``postgresql+asyncpg://prefect@db:5432/prefect``; default SQLite in the state dir."""
    ssh_connect_timeout: float = 10.0
    ssh_command_timeout: float = 120.0
    restore_url_expires_s: int = Field(300, ge=10, le=3600)
    """Life of the pre-signed URL a host downloads a backup from (datasets with
    ``restore_via: direct`` or ``auto``); it need only outlive the start of the download."""
    report_dir: Path | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    """``contingency up``: the supervisor rotates a component log in ``<state_dir>/run``
    past this size (checked every 10 s) …"""
    log_keep: int = 3
    """… keeping this many older copies (``worker.log.1`` … ``.3``)."""
    language: Literal["en", "zh"] = "en"
    """Language of notifications (zh or en)."""
    grafana_hmac_secrets: SecretStr | None = None
    """Comma-separated HMAC secrets for ``/webhook/grafana`` (two at once while rotating)."""
    grafana_timestamp_header: str = "X-Grafana-Alerting-Signature-Timestamp"
    """The contact point's "Timestamp Header" (Grafana has no default name for it)."""
    generic_hmac_secrets: SecretStr | None = None
    """Comma-separated HMAC secrets for ``/webhook/generic`` (bearer OR signature)."""
    intake_max_body_bytes: int = 256 * 1024
    intake_rate_per_second: float = 100.0
    """Per (client address, endpoint) token-bucket rate; 0 disables the limit."""
    intake_rate_burst: int = 200
    intake_unauth_rate_per_second: float = 1.0
    """Per client address budget of requests that fail authentication (their own bucket:
    a flood of them never spends an authenticated sender's budget); past it, 429."""
    intake_unauth_burst: int = 20
    intake_max_header_bytes: int = 16 * 1024
    """Request line plus headers of one request; more is answered 431 and the connection
    closed before the rest is read (``contingency/intake/protocol.py``)."""
    intake_max_headers: int = 100
    """Header fields in one request; more is answered 431."""
    intake_header_timeout_s: float = 5.0
    """A request's line and headers must arrive within this long (from the connection, or
    from the first byte of a keep-alive request), else 408 and the connection is closed."""
    intake_dedup_cache: int = 10_000
    """Idempotency keys this intake remembers answering (re-sends skip the Prefect API
    call); 0 disables the fast path."""
    intake_dedup_ttl_s: float = 30.0
    """Seconds the intake answers a re-send from its cache without asking Prefect. Short on
    purpose: an entry can outlive its run (the run crashes), and a re-send answered from the
    cache would then be swallowed by a dead incident; after the TTL the re-send asks Prefect,
    which starts a successor. Alertmanager re-sends a firing alert once per group_interval
    (minutes), so in a storm 30 s still answers the burst of duplicates from memory."""
    intake_ack_wait_s: float = Field(0.0, ge=0, le=25)
    """How long a webhook answer waits for the incidents of its alerts when the request
    does not say (``?wait=SECONDS``). 0: answer 202 as soon as the alerts are stored
    (what a storm needs: Alertmanager gives up after about 10 s); the answer then says
    "queued" for alerts whose incident is not known yet."""
    intake_outbox: Path | None = None
    """SQLite file the intake stores alerts in before answering 202; default
    ``<state_dir>/intake/outbox.sqlite``. Keep it on a local disk of the intake's machine."""
    correlation_grace_s: float = Field(120.0, ge=0)
    """An alert absorbed by its cause's incident that still fires this long after that
    incident ended (no resolve came) becomes an incident of its own."""
    incident_max_concurrent: int = Field(8, ge=1)
    """Cap on incident runs running at once in the work pool (paused at a gate does not
    count); more wait in the pool's queues, critical first (``contingency deploy``)."""
    intake_ready_cache_s: float = 1.0
    """``/readyz`` answers from its last verdict this long (a probe storm costs Prefect at
    most one round of readiness calls per this many seconds)."""
    intake_ready_timeout_s: float = 2.0
    """Each ``/readyz`` check (Prefect API, deployment, worker, state dir) gets this long."""
    report_s3_endpoint: str | None = None
    """If set (with ``report_s3_bucket``), every incident report is also uploaded there."""
    report_s3_bucket: str | None = None
    report_s3_prefix: str = "contingency-reports"
    report_s3_key_id_ref: str = "report-s3-key-id"
    """Secret NAMES of the S3 credentials for reports (resolved like any secret)."""
    report_s3_key_ref: str = "report-s3-key"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    def public_intake_url(self) -> str:
        """``intake_url``, else the intake of the stack recorded in the state dir, else
        "" (no link can be made)."""
        if self.intake_url:
            return self.intake_url.rstrip("/")
        import json

        try:
            stack = json.loads((self.state_dir / "stack.json").read_text(encoding="utf-8"))
            return str(stack.get("intake_url") or "").rstrip("/")
        except (OSError, ValueError, AttributeError):
            return ""

    @property
    def reports_path(self) -> Path:
        return self.report_dir or self.state_dir / "reports"

    @property
    def outbox_path(self) -> Path:
        return self.intake_outbox or self.state_dir / "intake" / "outbox.sqlite"

    @property
    def lab_dir(self) -> Path:
        return self.state_dir / "lab"

    def inventory_path(self) -> Path:
        if self.inventory is not None:
            return self.inventory
        lab = self.lab_dir / "inventory"
        if lab.exists():
            return lab
        return Path(__file__).parent / "examples" / "lab"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
