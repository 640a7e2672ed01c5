"""The security-incident plan's settings (安全事件), section ``security``: keyed by host
name or ``default``, like ``rails``::

    security:
      default:
        allow_from: [10.0.0.5/32]        # management: the worker's SSH keeps working
        evidence_location: {bucket: evidence, prefix: incidents,
                            endpoint: "https://s3.example.org",
                            key_id_ref: s3-key-id, key_ref: s3-key}
        hash_files: [/etc/passwd, /etc/shadow, /root/.ssh/authorized_keys]
        evidence:                        # read-only commands whose output is kept
          - {name: processes, command: "ps auxww"}

Every command the plan runs is built here from validated data (addresses, absolute
paths) or taken as written from this section — never from alert text. Pure.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inventory.datasets import BackupLocation

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
TABLE = "contingency_isolation"
"""The nftables table (family inet) that isolates a host; deleting it undoes isolation."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvidenceItem(_Model):
    name: Name
    command: str = Field(min_length=1, max_length=2000)
    """Read-only: its output is kept as evidence (it must change nothing on the host)."""


DEFAULT_EVIDENCE = (
    EvidenceItem(name="processes", command="ps auxww"),
    EvidenceItem(name="connections", command="ss -tanpu"),
    EvidenceItem(name="listening", command="ss -tlnpu"),
    EvidenceItem(name="logins", command="who -a; last -n 50 2>/dev/null || true"),
    EvidenceItem(name="network", command="ip -o addr; ip route"),
    EvidenceItem(name="firewall", command="nft list ruleset"),
)
DEFAULT_HASH_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/crontab",
    "/root/.ssh/authorized_keys",
)


class SecurityPolicy(_Model):
    name: str = "default"
    allow_from: list[str] = Field(default_factory=list)
    """Addresses or networks an isolated host still talks to (the management network
    the worker's SSH comes from). Empty: isolation would cut the worker off too, so the
    plan refuses to isolate."""
    evidence: list[EvidenceItem] = Field(default_factory=lambda: list(DEFAULT_EVIDENCE))
    hash_files: list[Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/@+-]+$")]] = Field(
        default_factory=lambda: list(DEFAULT_HASH_FILES)
    )
    """Files whose SHA-256 is taken (a missing file is reported, not an error)."""
    evidence_location: BackupLocation | None = None
    """Where evidence is uploaded (``<prefix>/<run>/<host>/``); None: the plan refuses
    to act (evidence comes before any change)."""

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item[:64]!r} is not an IP address or network") from None
        return value

    def hash_command(self) -> str:
        files = " ".join(shlex.quote(f) for f in self.hash_files)
        return f"sha256sum -- {files} 2>&1; true"

    def isolate_command(self) -> str:
        """One ``nft`` call: a table that drops every packet in and out but loopback and
        the ``allow_from`` networks (replies included). Replaces an earlier copy."""
        v4 = [str(ipaddress.ip_network(a, strict=False)) for a in self.allow_from]
        v6 = [n for n in v4 if ":" in n]
        v4 = [n for n in v4 if ":" not in n]
        rules = [
            f"add table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"add table inet {TABLE}",
            f"add chain inet {TABLE} in {{ type filter hook input priority -100; policy drop; }}",
            f"add chain inet {TABLE} out {{ type filter hook output priority -100; policy drop; }}",
            f"add rule inet {TABLE} in iif lo accept",
            f"add rule inet {TABLE} out oif lo accept",
        ]
        for family, nets in (("ip", v4), ("ip6", v6)):
            if nets:
                group = "{ " + ", ".join(nets) + " }"
                rules += [
                    f"add rule inet {TABLE} in {family} saddr {group} accept",
                    f"add rule inet {TABLE} out {family} daddr {group} accept",
                ]
        return "nft " + shlex.quote("; ".join(rules))

    @staticmethod
    def release_command() -> str:
        return f"nft delete table inet {TABLE}"

    @staticmethod
    def check_command() -> str:
        return f"nft list table inet {TABLE}"
