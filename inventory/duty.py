"""The duty roster (值班): who of a role is on duty at a given time.

One roster per role, in the inventory section ``rosters`` keyed by role name::

    rosters:
      operations:
        timezone: Asia/Shanghai     # the handover happens at this zone's wall-clock time
        handover: "09:00"
        period_days: 1              # 1: a daily rotation, 7: weekly
        start: 2026-01-05           # the first shift starts on this day at the handover
        rotation: [wang.fang, zhao.lei]
        overrides:                  # swaps, leave: the last one listed that covers wins
          - {person: zhao.lei, start: 2026-12-24T09:00, end: 2026-12-26T09:00}

An override's times without a zone are in the roster's zone. Pure: no I/O::

    shift = on_duty(inv.rosters["operations"], datetime.now(UTC))
    shift.person, shift.until
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Override(_Model):
    person: str = Field(pattern=NAME_RE)
    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> Override:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Roster(_Model):
    name: str = Field(pattern=NAME_RE)
    """The role this roster is for."""
    timezone: str = "Asia/Shanghai"
    handover: time = time(9, 0)
    period_days: int = Field(1, ge=1, le=31)
    start: date
    rotation: list[str] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name: Asia/Shanghai)") from None
        return v

    @field_validator("rotation")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        import re

        bad = [p for p in v if not re.match(NAME_RE, p)]
        if bad:
            raise ValueError(f"not person names: {bad}")
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def people(self) -> list[str]:
        """Everyone this roster may put on duty."""
        return list(dict.fromkeys([*self.rotation, *(o.person for o in self.overrides)]))


class Shift(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    person: str
    since: datetime
    until: datetime
    override: bool = False
    next_person: str | None = None
    """Who takes over at ``until`` (from the rotation; an override may change it)."""


def _aware(at: datetime, zone: ZoneInfo) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def on_duty(roster: Roster, at: datetime | None = None) -> Shift:
    """The shift covering ``at`` (default: now). Naive times are in the roster's zone."""
    zone = roster.zone
    at = _aware(at or datetime.now(UTC), zone)
    for o in reversed(roster.overrides):
        start, end = _aware(o.start, zone), _aware(o.end, zone)
        if start <= at < end:
            after = _rotation_shift(roster, end)
            return Shift(
                role=roster.name,
                person=o.person,
                since=start,
                until=end,
                override=True,
                next_person=after.person,
            )
    return _rotation_shift(roster, at)


def _rotation_shift(roster: Roster, at: datetime) -> Shift:
    """The rotation's shift at ``at``, counted on the roster zone's wall clock (a daylight
    saving change moves no handover)."""
    zone = roster.zone
    local = at.astimezone(zone).replace(tzinfo=None)
    first = datetime.combine(roster.start, roster.handover)
    n = math.floor((local - first).total_seconds() / 86400 / roster.period_days)
    begins = first + timedelta(days=n * roster.period_days)
    ends = begins + timedelta(days=roster.period_days)
    size = len(roster.rotation)
    return Shift(
        role=roster.name,
        person=roster.rotation[n % size],
        since=begins.replace(tzinfo=zone),
        until=ends.replace(tzinfo=zone),
        next_person=roster.rotation[(n + 1) % size],
    )
