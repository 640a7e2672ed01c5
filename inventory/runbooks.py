"""Declarative runbooks for "other emergencies" (其他突发事件): YAML steps, typed parameters.

A runbook lives in any inventory YAML file under ``runbooks:`` (e.g. ``runbooks.yaml``)
and is loaded, validated and cross-checked like the rest of the inventory: errors name
file, line and field (``runbooks.<name>.steps.<n>.<field>``) and the step's name.
Commands come from the runbook file; ``{param}`` placeholders take only declared,
typed parameters (from the routing rule, the CLI or the API — never alert text),
shell-quoted::

    runbooks:
      clear-tmp:
        title: {en: Clear temporary files, zh: 清理临时文件}
        parameters:
          max_age_min: {type: int, default: 60, min: 0}
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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]  # as inventory.models
RoleValue = Literal[
    "command_center", "tech_support", "security_monitoring", "operations", "user_service",
    "information_management",
]  # fmt: skip
"""inventory.models.RoleName's values (that module imports this one)."""

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
StepKind = Literal["ssh", "probe", "approval", "notify", "http", "wait"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Param(_Model):
    type: Literal["str", "int", "float", "bool"] = "str"
    default: Any = None
    required: bool = False
    choices: list[str] | None = None
    pattern: str | None = None
    """A full-match regex for str values."""
    min: float | None = None
    max: float | None = None
    description: str = ""

    def coerce(self, name: str, raw: Any) -> Any:
        """The typed value, or ValueError naming the parameter."""
        try:
            if self.type == "bool":
                value: Any = (
                    raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes")
                )
            elif self.type == "int":
                value = int(raw)
            elif self.type == "float":
                value = float(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name}: {str(raw)[:40]!r} is not a {self.type}") from None
        if self.choices is not None and str(value) not in self.choices:
            raise ValueError(f"parameter {name}: {str(value)[:40]!r} is not one of {self.choices}")
        if self.pattern and not re.fullmatch(self.pattern, str(value)):
            raise ValueError(f"parameter {name}: {str(value)[:40]!r} does not match {self.pattern}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise ValueError(f"parameter {name}: {value} is below {self.min:g}")
            if self.max is not None and value > self.max:
                raise ValueError(f"parameter {name}: {value} is above {self.max:g}")
        return value


class Step(_Model):
    name: Name
    kind: StepKind
    description: str = ""
    host: Name | None = None
    service: Name | None = None
    command: str | None = None
    role: RoleValue = "operations"
    message: str | None = None
    url: str | None = Field(None, pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "HEAD"] = "GET"
    expect_status: int = 200
    seconds: float | None = Field(None, ge=0, le=3600)
    timeout_s: float = Field(60, gt=0, le=3600)
    on_failure: Literal["stop", "continue"] = "stop"

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Step:
        need = {
            "ssh": ("command",),
            "probe": ("service",),
            "notify": ("message",),
            "http": ("url",),
        }.get(self.kind, ())
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"step {self.name!r} ({self.kind}) needs {', '.join(missing)}")
        if self.kind == "ssh" and (self.host is None) == (self.service is None):
            raise ValueError(f"step {self.name!r} (ssh) needs exactly one of host or service")
        if self.kind == "wait" and self.seconds is None and self.service is None:
            raise ValueError(f"step {self.name!r} (wait) needs seconds or a service to wait for")
        return self

    @property
    def changes(self) -> bool:
        """Steps that act on the estate (the rails are checked before the first)."""
        return self.kind in ("ssh", "http") and not (
            self.kind == "http" and self.method in ("GET", "HEAD")
        )


class Runbook(_Model):
    name: Name
    title: dict[Literal["en", "zh"], str] = Field(default_factory=dict)
    description: str = ""
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
            for text in (s.command, s.url, s.message):
                for ph in PLACEHOLDER.findall(text or ""):
                    if ph not in self.parameters:
                        raise ValueError(f"step {s.name!r}: {{{ph}}} is not a declared parameter")
        return self

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


def render(text: str, values: dict[str, Any], quote: bool = True) -> str:
    """Fill ``{param}`` placeholders; shell-quoted for commands.

    >>> render("find {dir} -delete", {"dir": "/tmp/a b; rm -rf /"})
    "find '/tmp/a b; rm -rf /' -delete"
    """

    def sub(m: re.Match[str]) -> str:
        v = values[m.group(1)]
        v = str(v).lower() if isinstance(v, bool) else str(v)
        return shlex.quote(v) if quote else v

    return PLACEHOLDER.sub(sub, text)


def describe_step(step: Step) -> str:
    """One line for the plan document (placeholders left as they are)."""
    what = {
        "ssh": f"`{step.command}`",
        "http": f"{step.method} {step.url} → {step.expect_status}",
        "probe": f"health check of {step.service}",
        "wait": f"{step.seconds:g}s"
        if step.seconds is not None
        else f"until {step.service} is healthy",
        "notify": f"{step.role}: {step.message}",
        "approval": "command center",
    }[step.kind]
    return what.replace("|", "\\|") + (
        "" if step.on_failure == "stop" else " (on failure: continue)"
    )
