"""Notifications through apprise, routed by role, in zh or en; never blocking.

The inventory names notification channels by secret name (``roles.<r>.notify``,
``people.<p>.notify``); each secret holds an apprise URL (``dingtalk://``,
``wecom://``, ``feishu://``, ``slack://``, ``mailto://``, ``json://`` ...). A failed
send is logged and returned, never raised: a remediation never waits on a pager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from inventory.models import Inventory, RoleName
from inventory.secrets import SecretNotFound, redact, resolve_secret

log = logging.getLogger("contingency.notify")
TEMPLATES = Path(__file__).parent / "templates" / "notify.yaml"
R = RoleName

# Who hears about what (the seed: command center decides; tech support and operations
# act; user service informs users; information management gets the report).
ROUTES: dict[str, tuple[RoleName, ...]] = {
    "incident_opened": (R.command_center, R.operations, R.tech_support, R.security_monitoring),
    "gate_opened": (R.command_center, R.operations),
    "gate_reminder": (R.command_center,),
    "gate_decided": (R.command_center, R.operations, R.tech_support),
    "finished": (
        R.command_center,
        R.operations,
        R.tech_support,
        R.user_service,
        R.information_management,
    ),
    "escalation": (R.command_center, R.operations, R.tech_support),
    "failure": tuple(R),
    "drill_failed": (R.command_center, R.operations, R.tech_support),
    "runbook_notice": (R.operations,),
    # the automation's own failures (contingency/runtime/reconciler.py, .../supervisor.py)
    "incident_interrupted": (R.command_center, R.operations, R.tech_support),
    "component_restarted": (R.command_center, R.operations),
}


DRILL_SENDS = {"gate_opened", "gate_reminder", "gate_backup"}
"""What a drill still sends (to the command center, marked [DRILL]): the sign-off codes."""

GATE_EVENTS = DRILL_SENDS
"""Events that carry one-time codes: each approver's own code goes only to that
person's own channels; the role channels get the notice without any code."""


class Delivery(BaseModel):
    event: str
    role: str
    channel: str
    """The secret NAME of the channel, never its URL."""
    ok: bool
    error: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@lru_cache(maxsize=1)
def templates() -> dict[str, dict[str, dict[str, str]]]:
    return yaml.safe_load(TEMPLATES.read_text(encoding="utf-8"))


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(event: str, lang: str, fields: dict[str, Any]) -> tuple[str, str]:
    tpl = templates()[event].get(lang) or templates()[event]["en"]
    values = _Blank({k: redact(str(v)) for k, v in fields.items()})
    return tpl["title"].format_map(values), tpl["body"].format_map(values).strip()


def channels(inv: Inventory, role: RoleName, people: Iterable[str] | None = None) -> list[str]:
    """Secret names for a role: the role's channel plus its members' own channels."""
    names: list[str] = []
    role_def = inv.roles.get(role.value)
    if role_def:
        names += role_def.notify
    for person in inv.members(role):
        if people is None or person.name in people:
            names += person.notify
    return list(dict.fromkeys(names))


def personal_channels(inv: Inventory, person: str) -> list[str]:
    """The channels only ``person`` reads: their ``notify`` secrets minus any role's
    channel and minus channels another person also lists (a shared channel is not
    personal, so a one-time code never goes there). Pure."""
    me = inv.people.get(person)
    if me is None:
        return []
    shared = {n for r in inv.roles.values() for n in r.notify}
    shared |= {n for p in inv.people.values() if p.name != person for n in p.notify}
    return [n for n in dict.fromkeys(me.notify) if n not in shared]


def _send(url: str, title: str, body: str) -> str:
    import apprise

    app = apprise.Apprise()
    if not app.add(url):
        return "not a valid apprise URL"
    return "" if app.notify(title=title, body=body) else "delivery failed"


def send(
    event: str,
    inv: Inventory,
    fields: dict[str, Any],
    lang: str = "en",
    roles: Iterable[RoleName] | None = None,
    people: Iterable[str] | None = None,
    private: dict[RoleName, dict[str, Any]] | None = None,
    skip: Iterable[str] = (),
) -> list[Delivery]:
    """Send ``event`` to every channel of its roles; return one Delivery per channel.

    ``private`` adds fields only for some roles. ``people`` narrows personal channels
    to those people; ``skip`` leaves out channels (those that get a personal message).
    """
    out: list[Delivery] = []
    seen: set[str] = set(skip)
    for role in roles or ROUTES[event]:
        title, body = render(event, lang, {**fields, **(private or {}).get(role, {})})
        for name in channels(inv, role, people):
            if name in seen:
                continue
            seen.add(name)
            out.append(_deliver(event, role.value, name, title, body))
    return out


def _deliver(event: str, role: str, name: str, title: str, body: str) -> Delivery:
    try:
        error = _send(resolve_secret(name).get_secret_value(), title, body)
    except SecretNotFound:
        error = f"channel secret {name!r} is not set"
    except Exception as exc:  # noqa: BLE001 - a pager must never break a plan
        error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
    if error:
        log.warning("notify %s via %s (%s) failed: %s", event, name, role, error)
    return Delivery(event=event, role=role, channel=name, ok=not error, error=error)


def send_codes(
    event: str,
    inv: Inventory,
    fields: dict[str, Any],
    codes: dict[str, str],
    code_line: Callable[[str | None], str],
    lang: str = "en",
    roles: Iterable[RoleName] | None = None,
    people: Iterable[str] | None = None,
) -> list[Delivery]:
    """A gate event: each person in ``codes`` gets their own code on their own
    channels only (Delivery.role ``person:NAME``); the roles' channels (and anyone
    else's) get the same notice without any code."""
    out: list[Delivery] = []
    mine: set[str] = set()
    for person, code in codes.items():
        title, body = render(event, lang, {**fields, "code_line": code_line(code)})
        for name in personal_channels(inv, person):
            mine.add(name)
            out.append(_deliver(event, f"person:{person}", name, title, body))
    notice = {**fields, "code_line": code_line(None)}
    out += send(event, inv, notice, lang, roles=roles, people=people, skip=mine)
    return out


class Pager:
    """Sends an incident's notifications in the background and keeps every delivery
    for the report: a slow or broken channel never delays or fails a plan."""

    def __init__(
        self, inv: Inventory, lang: str, fields: dict[str, Any], drill: bool = False
    ) -> None:
        self.inv = inv
        self.lang = lang
        self.fields = dict(fields)
        self.drill = drill
        self.deliveries: list[Delivery] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")
        self._pending: list[Future[list[Delivery]]] = []

    def event(
        self,
        event: str,
        extra: dict[str, Any] | None = None,
        codes: dict[str, str] | None = None,
        roles: tuple[RoleName, ...] | None = None,
    ) -> None:
        """Queue one event (to ``roles``, default: the event's). ``codes`` (person →
        one-time code, gate events only): each code goes to its person's own channels
        only; the role channels get the notice without a code."""
        fields = {**self.fields, **(extra or {})}
        if self.drill:
            fields["alert"] = f"[DRILL] {fields.get('alert', '')}"
            fields["summary"] = f"[DRILL] {fields.get('summary', '')}"
            if event not in DRILL_SENDS:  # a drill pages nobody; the report lists it
                note = Delivery(event=event, role="-", channel="(drill: not sent)", ok=True)
                self.deliveries.append(note)
                return
        codes = dict(codes or {})
        self._pending.append(self._pool.submit(self._send, event, fields, codes, roles))

    def _send(
        self,
        event: str,
        fields: dict[str, Any],
        codes: dict[str, str],
        roles: tuple[RoleName, ...] | None = None,
    ) -> list[Delivery]:
        try:
            if event == "gate_backup":
                backups = [p.name for p in self.inv.members(R.command_center) if p.backup]
                mine = {p: c for p, c in codes.items() if p in backups}
                return send_codes(
                    "gate_reminder",
                    self.inv,
                    fields,
                    mine,
                    self._code_line,
                    self.lang,
                    roles=(R.command_center,),
                    people=backups,
                )
            if self.drill:
                roles = (R.command_center,)
            if event in GATE_EVENTS:
                return send_codes(
                    event, self.inv, fields, codes, self._code_line, self.lang, roles=roles
                )
            return send(event, self.inv, fields, self.lang, roles=roles)
        except Exception as exc:  # noqa: BLE001 - never let paging break a plan
            log.warning("notify %s failed: %s", event, type(exc).__name__)
            return [
                Delivery(event=event, role="-", channel="-", ok=False, error=type(exc).__name__)
            ]

    def flush(self, timeout_s: float = 30) -> list[Delivery]:
        """Wait (bounded) for queued sends; return every delivery so far."""
        for fut in self._pending:
            try:
                self.deliveries += fut.result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - includes a timeout
                self.deliveries.append(
                    Delivery(
                        event="?",
                        role="-",
                        channel="-",
                        ok=False,
                        error=f"not sent in time ({type(exc).__name__})",
                    )
                )
        self._pending.clear()
        return self.deliveries

    def _code_line(self, code: str | None) -> str:
        zh = self.lang == "zh"
        if code is None:  # the role channel's notice: never a code
            return (
                "一次性审批码已单独发送给每位审批人本人。"
                if zh
                else "Each approver's one-time code was sent to them personally."
            )
        return ("您的一次性审批码：" if zh else "Your one-time approval code: ") + code

    def as_markdown(self) -> str:
        self.flush()
        if not self.deliveries:
            return "No notification channel is configured."
        rows = ["| time (UTC) | event | role | channel | delivered |", "|---|---|---|---|---|"]
        rows += [
            f"| {d.at:%H:%M:%S} | {d.event} | {d.role} | {d.channel} | "
            f"{'yes' if d.ok else 'NO: ' + d.error} |"
            for d in self.deliveries
        ]
        return "\n".join(rows)
