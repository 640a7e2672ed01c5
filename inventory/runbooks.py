"""Declarative runbooks for "other emergencies" (其他突发事件): YAML steps, typed parameters.

A runbook lives in any inventory YAML file under ``runbooks:`` (e.g. ``runbooks.yaml``)
and is loaded, validated and cross-checked like the rest of the inventory: errors name
file, line and field (``runbooks.<name>.steps.<n>.<field>``) and the step's name.
Commands come from the runbook file; ``{param}`` placeholders take only declared,
typed parameters (from the routing rule, the CLI or the API — never alert text),
shell-quoted (URL-quoted in ``http`` URLs)::

    runbooks:
      clear-tmp:
        title: {en: Clear temporary files, zh: 清理临时文件}
        parameters:
          max_age_min: {type: int, default: 60, min: 0}
          settle: {type: duration, default: 30s}
        steps:
          - {name: usage, kind: ssh, host: app1, command: "du -sk /var/tmp"}
          - {name: sign-off, kind: approval}
          - {name: clean, kind: ssh, host: app1,
             command: "find /var/tmp -type f -mmin +{max_age_min} -delete"}
          - {name: api-up, kind: probe, service: api}
          - {name: tell-ops, kind: notify, role: operations, message: "tmp cleared"}
"""

from __future__ import annotations

import re
import shlex
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]  # as inventory.models
RoleValue = Literal[
    "command_center", "tech_support", "security_monitoring", "operations", "user_service",
    "information_management",
]  # fmt: skip
"""inventory.models.RoleName's values (that module imports this one)."""

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
Texts = str | dict[Literal["en", "zh"], str]
"""One text, or one per language: ``{en: ..., zh: ...}``."""


def pick(value: Texts | None, lang: str) -> str:
    """``value`` in ``lang`` (else English, else any)."""
    if value is None or isinstance(value, str):
        return value or ""
    texts: dict[str, str] = {str(k): v for k, v in value.items()}
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")


def _all(value: Texts | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value.values())


StepKind = Literal["ssh", "probe", "approval", "notify", "http", "wait", "rolling"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ParamType = Literal["str", "int", "float", "bool", "duration"]
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_A = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
      "duration": "a duration"}  # fmt: skip
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_duration(raw: Any) -> float:
    """Seconds from a number or a string like ``90``, ``90s``, ``5m``, ``1h30m``.

    >>> parse_duration("1h30m"), parse_duration(2.5), parse_duration("250ms")
    (5400.0, 2.5, 0.25)
    """
    if isinstance(raw, bool):
        raise ValueError("a bool is not a duration")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        text = str(raw).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{text[:40]!r} is not a duration")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{raw!r} is not a duration")
    return seconds


def _convert(kind: ParamType, raw: Any) -> Any:
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError
    if kind == "int":
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        return int(raw)
    if kind == "float":
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError
        return value
    if kind == "duration":
        return parse_duration(raw)
    if isinstance(raw, dict | list):
        raise ValueError
    return str(raw)


class Param(_Model):
    """A typed runbook parameter. ``duration`` values are seconds (``90``, ``5m``,
    ``1h30m``); ``min``/``max`` bound numbers and durations (in seconds)."""

    type: ParamType = "str"
    default: Any = None
    required: bool = False
    choices: list[str | int | float | bool] | None = None
    pattern: str | None = None
    """A full-match regex for str values."""
    min: float | None = None
    max: float | None = None
    description: Texts = ""

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {self.pattern!r}: {exc}") from None
            if self.type != "str":
                raise ValueError("pattern applies to str parameters only")
        for choice in self.choices or []:
            try:
                _convert(self.type, choice)
            except (TypeError, ValueError):
                raise ValueError(f"choice {choice!r} is not {_A[self.type]}") from None
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default")
        if self.default is not None:
            try:
                self._check(self.default)
            except ValueError as exc:
                raise ValueError(f"default {exc}") from None
        return self

    def coerce(self, name: str, raw: Any) -> Any:
        """The typed value, or ValueError naming the parameter."""
        try:
            return self._check(raw)
        except ValueError as exc:
            raise ValueError(f"parameter {name}: {exc}") from None

    def _check(self, raw: Any) -> Any:
        shown = str(raw)[:40]
        try:
            value = _convert(self.type, raw)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{shown!r} is not {_A[self.type]}") from None
        if self.choices is not None and value not in [_convert(self.type, c) for c in self.choices]:
            raise ValueError(f"{shown!r} is not one of {self.choices}")
        if self.pattern and not re.fullmatch(self.pattern, str(value)):
            raise ValueError(f"{shown!r} does not match {self.pattern}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise ValueError(f"{value:g} is below {self.min:g}")
            if self.max is not None and value > self.max:
                raise ValueError(f"{value:g} is above {self.max:g}")
        return value


_COMMON = {"name", "kind", "description", "timeout_s", "on_failure"}
_FIELDS: dict[str, set[str]] = {
    "ssh": {*_COMMON, "host", "service", "command"},
    "probe": {*_COMMON, "service"},
    "approval": {*_COMMON},
    "notify": {*_COMMON, "role", "message"},
    "http": {*_COMMON, "url", "method", "expect_status"},
    "wait": {*_COMMON, "seconds", "service"},
    "rolling": {*_COMMON, "service", "batch_size", "max_unavailable", "stop_failure_pct"},
}
"""The fields each kind of step takes (a typo'd or misplaced field is an error)."""


class Step(_Model):
    name: Name
    kind: StepKind
    description: Texts = ""
    host: Name | None = None
    service: Name | None = None
    command: str | None = None
    role: RoleValue = "operations"
    message: Texts | None = None
    """The notice, in the plan's language (``CONTINGENCY_LANGUAGE``) when given in both."""
    url: str | None = Field(None, pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "HEAD"] = "GET"
    expect_status: int = 200
    seconds: float | None = Field(None, ge=0, le=3600)
    timeout_s: float = Field(60, gt=0, le=3600)
    batch_size: int = Field(1, ge=1, le=1000)
    """rolling: instances restarted at once (at most ``max_unavailable``)."""
    max_unavailable: int = Field(1, ge=1, le=1000)
    """rolling: instances that may be down at once, counting those whose restart failed
    and that are still unhealthy; when none is left, the rollout stops."""
    stop_failure_pct: float = Field(0, ge=0, le=100)
    """rolling: the rollout stops once more than this percentage of all instances
    failed (0: at the first failure)."""
    on_failure: Literal["stop", "continue", "escalate"] = "stop"
    """stop: the runbook stops, the incident is escalated; continue: the failure is
    reported and the next step runs (a best-effort step); escalate: the command center
    is paged at once, the next step runs, the incident ends escalated."""

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Step:
        need = {
            "ssh": ("command",),
            "probe": ("service",),
            "notify": ("message",),
            "http": ("url",),
            "rolling": ("service",),
        }.get(self.kind, ())
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"the {self.kind} step needs {', '.join(missing)}")
        if self.kind == "ssh" and (self.host is None) == (self.service is None):
            raise ValueError("the ssh step needs exactly one of host or service")
        if self.kind == "wait" and self.seconds is None and self.service is None:
            raise ValueError("the wait step needs seconds or a service to wait for")
        allowed = _FIELDS[self.kind]
        extra = sorted(f for f in self.model_fields_set if f not in allowed)
        if extra:
            raise ValueError(f"the {self.kind} step takes no {', '.join(extra)}")
        return self

    @property
    def changes(self) -> bool:
        """Steps that act on the estate (the rails are checked before the first)."""
        return self.kind in ("ssh", "http", "rolling") and not (
            self.kind == "http" and self.method in ("GET", "HEAD")
        )


class Runbook(_Model):
    name: Name
    title: dict[Literal["en", "zh"], str] = Field(default_factory=dict)
    description: Texts = ""
    """One text, or one per language like the title (so are parameters' and steps'
    descriptions and notices' messages)."""
    parameters: dict[str, Param] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _placeholders_declared(self) -> Runbook:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        for p in self.parameters:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", p):
                raise ValueError(f"parameter name {p!r}: lowercase letters, digits, _")
        for s in self.steps:
            for text in (s.command, s.url, *_all(s.message)):
                for ph in PLACEHOLDER.findall(text or ""):
                    if ph not in self.parameters:
                        raise ValueError(f"step {s.name!r}: {{{ph}}} is not a declared parameter")
        return self

    def text(self, what: Literal["title", "description"], lang: str) -> str:
        """The title or description in ``lang`` (else English, else any)."""
        return pick(getattr(self, what), lang)

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Typed parameter values: given, else default; ValueError names what is wrong."""
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise ValueError(f"unknown parameters: {', '.join(u[:40] for u in unknown)}")
        out = {}
        for name, p in self.parameters.items():
            if name in given:
                out[name] = p.coerce(name, given[name])
            elif p.default is not None:
                out[name] = p.coerce(name, p.default)
            elif p.required:
                raise ValueError(f"parameter {name} is required")
            else:
                out[name] = ""
        return out


def show(value: Any) -> str:
    """A parameter value as text: bools lowercase, whole numbers without ``.0``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(
    text: str, values: dict[str, Any], quote: bool = True, how: Literal["shell", "url"] = "shell"
) -> str:
    """Fill ``{param}`` placeholders; shell-quoted for commands, URL-quoted for URLs.

    >>> render("find {dir} -delete", {"dir": "/tmp/a b; rm -rf /"})
    "find '/tmp/a b; rm -rf /' -delete"
    >>> render("http://h/x?q={q}", {"q": "a&b=c"}, how="url")
    'http://h/x?q=a%26b%3Dc'
    """

    def sub(m: re.Match[str]) -> str:
        v = show(values[m.group(1)])
        if not quote:
            return v
        return urllib.parse.quote(v, safe="") if how == "url" else shlex.quote(v)

    return PLACEHOLDER.sub(sub, text)
