"""Notifications through apprise, routed by role, in zh or en; never blocking.

The inventory names notification channels by secret name (``roles.<r>.notify``,
``people.<p>.notify``); each secret holds an apprise URL (``dingtalk://``,
``wecom://``, ``feishu://``, ``slack://``, ``mailto://``, ``json://`` ...). A failed
send is logged and returned, never raised: a remediation never waits on a pager.
"""

from __future__ import annotations

import logging
import time
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
    # nobody acknowledged an incident (contingency/runtime/escalation.py); sent to people
    "ack_escalation": (R.command_center,),
    # a problem reported by hand waits for tech support's triage (tasks/gate/triage.py)
    "triage_needed": (R.tech_support,),
    "triage_reminder": (R.tech_support,),
    "triage_backup": (R.command_center,),
    # a review's follow-up action due or overdue (tasks/report/actions.py); to its owner
    "action_due": (R.command_center,),
    "plan_review_due": (R.command_center,),
    "plan_review_overdue": (R.command_center,),
}


DRILL_SENDS = {"gate_opened", "gate_reminder", "gate_backup"}
"""What a drill still sends (to the command center, marked [DRILL]): the sign-off codes."""

GATE_EVENTS = DRILL_SENDS
"""Events that carry one-time codes: each approver's own code goes only to that
person's own channels; the role channels get the notice without any code."""


SEND_ATTEMPTS = 3
"""Tries per channel before its fallback channels are used."""
RETRY_DELAYS_S = (0.5, 1.5)


class Delivery(BaseModel):
    event: str
    role: str
    channel: str
    """The secret NAME of the channel, never its URL."""
    ok: bool
    error: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 1
    fallback_for: str = ""
    """For a fallback send: the channel that failed."""
    person: str = ""
    """Whose own channel it is (the on-duty person, a fallback's owner)."""


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


def ack_line(run_id: str, lang: str) -> str:
    """How to acknowledge incident ``run_id``: the board's link (when the intake's
    address is known, see ``Settings.intake_url``) and the command."""
    from inventory.settings import get_settings

    base = get_settings().public_intake_url()
    command = f"contingency ack {run_id} --as " + ("<姓名>" if lang == "zh" else "<your name>")
    if not base:
        return ("确认接警：" if lang == "zh" else "Acknowledge: ") + command
    link = f"{base}/ack/{run_id}"
    if lang == "zh":
        return f"确认接警：{link}（或执行：{command}）"
    return f"Acknowledge: {link} (or: {command})"


def on_duty(inv: Inventory, role: RoleName, at: datetime | None = None) -> str | None:
    """The role's on-duty person by its roster (``inventory/duty.py``); None: no roster."""
    from inventory.duty import on_duty as shift_at

    roster = inv.rosters.get(role.value)
    return shift_at(roster, at).person if roster is not None else None


def targets(
    inv: Inventory, role: RoleName, people: Iterable[str] | None = None
) -> list[tuple[str, str | None]]:
    """``(secret name, person or None)`` for a role. With a duty roster, the on-duty
    person's own channels come first and the other members hear only through the
    role's channel; without one, the role's channel and every member's own channels."""
    out: list[tuple[str, str | None]] = []
    role_def = inv.roles.get(role.value)
    duty = on_duty(inv, role)
    members = [p for p in inv.members(role) if people is None or p.name in people]
    if duty is not None:
        members = [p for p in members if p.name == duty]
        out += [(n, p.name) for p in members for n in p.notify]
    out += [(n, None) for n in (role_def.notify if role_def else [])]
    if duty is None:
        out += [(n, p.name) for p in members for n in p.notify]
    unique: dict[str, str | None] = {}
    for name, person in out:
        unique.setdefault(name, person)
    return list(unique.items())


def channels(inv: Inventory, role: RoleName, people: Iterable[str] | None = None) -> list[str]:
    """Secret names for a role (see ``targets``)."""
    return [name for name, _ in targets(inv, role, people)]


def fallbacks(inv: Inventory, role: RoleName, person: str | None) -> list[tuple[str, str]]:
    """``(secret name, person)``: where a failed send to ``person``'s channel (or, with
    no person, to the role's channel: the on-duty person, else every member) goes next."""
    if person is not None:
        who = [inv.people[person]] if person in inv.people else []
    else:
        duty = on_duty(inv, role)
        who = [p for p in inv.members(role) if duty is None or p.name == duty]
    return [(n, p.name) for p in who for n in p.fallback]


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
        for name, person in targets(inv, role, people):
            if name in seen:
                continue
            seen.add(name)
            sent = _deliver(event, role.value, name, title, body, person=person or "")
            out.append(sent)
            if sent.ok:
                continue
            for spare, owner in fallbacks(inv, role, person):  # chat down: SMS, voice, mail
                if spare not in seen:
                    seen.add(spare)
                    out.append(_deliver(event, role.value, spare, title, body, name, owner))
    return out


def send_people(
    event: str,
    inv: Inventory,
    fields: dict[str, Any],
    lang: str,
    role: RoleName,
    people: Iterable[str],
) -> list[Delivery]:
    """``event`` to these people's own channels (as members of ``role``); a person none
    of whose channels took it gets it on their fallback channels."""
    title, body = render(event, lang, fields)
    out: list[Delivery] = []
    for name in people:
        person = inv.people.get(name)
        if person is None:
            continue
        mine = [_deliver(event, role.value, ch, title, body, person=name) for ch in person.notify]
        out += mine
        if not any(d.ok for d in mine):
            failed = ", ".join(d.channel for d in mine) or "no own channel"
            out += [
                _deliver(event, role.value, ch, title, body, failed, name) for ch in person.fallback
            ]
    return out


def _deliver(
    event: str,
    role: str,
    name: str,
    title: str,
    body: str,
    fallback_for: str = "",
    person: str = "",
) -> Delivery:
    """One channel, tried ``SEND_ATTEMPTS`` times while the delivery itself fails (not
    when the channel is not configured)."""
    attempts = 0
    while True:
        attempts += 1
        retry = False
        try:
            error = _send(resolve_secret(name).get_secret_value(), title, body)
            retry = error == "delivery failed"
        except SecretNotFound:
            error = f"channel secret {name!r} is not set"
        except Exception as exc:  # noqa: BLE001 - a pager must never break a plan
            error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
            retry = True
        if not (error and retry and attempts < SEND_ATTEMPTS):
            break
        time.sleep(RETRY_DELAYS_S[min(attempts, len(RETRY_DELAYS_S)) - 1])
    if error:
        log.warning(
            "notify %s via %s (%s) failed after %d tries: %s", event, name, role, attempts, error
        )
    return Delivery(
        event=event,
        role=role,
        channel=name,
        ok=not error,
        error=error,
        attempts=attempts,
        fallback_for=fallback_for,
        person=person,
    )


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
        self,
        inv: Inventory,
        lang: str,
        fields: dict[str, Any],
        drill: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.inv = inv
        self.lang = lang
        self.fields = dict(fields)
        if "run_id" in self.fields and "ack_line" not in self.fields:
            self.fields["ack_line"] = ack_line(str(self.fields["run_id"]), lang)
        self.drill = drill
        self.dry_run = dry_run
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
        if self.dry_run:  # `contingency plan --dry-run` pages nobody; the report lists it
            note = Delivery(event=event, role="-", channel="(dry run: not sent)", ok=True)
            self.deliveries.append(note)
            return
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

    def people_event(self, event: str, role: RoleName, people: list[str]) -> None:
        """Queue ``event`` for these people's own channels (escalation to a person)."""
        if self.dry_run:
            self.deliveries.append(
                Delivery(event=event, role="-", channel="(dry run: not sent)", ok=True)
            )
            return
        fields = dict(self.fields)
        self._pending.append(
            self._pool.submit(send_people, event, self.inv, fields, self.lang, role, people)
        )

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
            f"| {d.at:%H:%M:%S} | {d.event} | {d.role}{f' ({d.person})' if d.person else ''} "
            f"| {d.channel}"
            f"{f' (fallback for {d.fallback_for})' if d.fallback_for else ''} | "
            f"{'yes' if d.ok else 'NO: ' + d.error}"
            f"{f' ({d.attempts} tries)' if d.attempts > 1 else ''} |"
            for d in self.deliveries
        ]
        return "\n".join(rows)
