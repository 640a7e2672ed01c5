"""Sections 1 to 4 of the plan document: introduction, organisation (roles, contacts,
duty roster), categories with the severity levels, and the response procedure in its
five stages with each role's duty at each, then each plan's steps and, said once, the
sign-off timeouts and the safety rails.

The prose is the organisation's (the inventory's ``wording``, ``inventory/wording.py``)
or the plan's own defaults (``templates/plandoc.yaml``); role names in any text are the
inventory's titles of those roles. Pure: inventory and texts in, markdown lines out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inventory.duty import on_duty
from inventory.models import Inventory, PlanName, RoleName
from inventory.severity import SeverityLevel, levels_of
from inventory.wording import CATEGORIES, STAGES
from remediations import MODULES

DESTRUCTIVE = {
    PlanName.data_loss,
    PlanName.network_outage,
    PlanName.hardware_failure,
    PlanName.security_incident,
}


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def duration(seconds: float, t: dict[str, Any], lang: str) -> str:
    """``86400`` → "1 天" / "1 day"; ``5400`` → "1 小时 30 分钟" / "1 h 30 min"."""
    units = t["units"]
    left, parts = round(float(seconds)), []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        n, left = divmod(left, size)
        if n:
            word = units[unit]
            if isinstance(word, list):  # en: day / days
                word = word[0] if n == 1 else word[1]
            parts.append(f"{n} {word}")
    return " ".join(parts) if parts else f"{seconds:g} {units['s']}"


@dataclass
class Doc:
    """What every section needs: the inventory, the texts in ``lang``, the defaults."""

    inv: Inventory
    t: dict[str, Any]
    lang: str
    data: dict[str, Any]

    def role(self, role: str) -> str:
        spec = self.inv.roles.get(role)
        title = (spec.title_zh if self.lang == "zh" else spec.title_en) if spec else ""
        return title or self.data["role_titles"][self.lang].get(role, role)

    def person(self, name: str) -> str:
        person = self.inv.people.get(name)
        return (person.display_name or person.name) if person else name

    def fill(self, text: str) -> str:
        """``{command_center}`` and the other role names → the inventory's titles."""
        for role in RoleName:
            title = self.role(role.value)
            if self.lang == "en":  # in running text: "reports it to the command center"
                title = f"the {title[0].lower()}{title[1:]}"
            text = text.replace("{" + role.value + "}", title)
        return text

    def word(self, key: str) -> str:
        """The organisation's text for ``key``, else the plan's default ("" if none)."""
        own = self.inv.wording.get(key)
        if own is not None:
            return self.fill(own.text(self.lang))
        default = self.data["defaults"].get(key) or {}
        return self.fill(default.get(self.lang, ""))

    def d(self, seconds: float) -> str:
        return duration(seconds, self.t, self.lang)

    def join(self, items: Any) -> str:
        """A list in the language's own way (zh: 、)."""
        return str(self.t["sep"]).join(items)

    def schedule(self, s: dict[str, Any]) -> str:
        """A prefect.yaml schedule in words: "每天 01:00，时区 UTC", "Tuesdays at 10:00"."""
        t = self.t
        if s.get("interval"):
            when = t["every"].format(d=self.d(float(s["interval"])))
        elif (cron := str(s.get("cron") or "")) and _simple(cron):
            minute, hour, _, _, dow = cron.split()
            at = f"{int(hour):02d}:{int(minute):02d}"
            when = t["daily"].format(time=at) if dow == "*" else \
                t["weekly"].format(day=t["weekdays"][int(dow) % 7], time=at)  # fmt: skip
        else:
            when = t["cron"].format(cron=cron or s)
        return str(t["in_zone"].format(when=when, zone=s["timezone"])) if s.get("timezone") \
            else when  # fmt: skip

    def plan_name(self, plan: PlanName) -> str:
        return str(self.data["plans"][plan.value][self.lang]["name"])


def _simple(cron: str) -> bool:
    """``M H * * *`` or ``M H * * D``: said in words; anything else is shown as cron."""
    f = cron.split()
    return (
        len(f) == 5
        and f[0].isdigit()
        and f[1].isdigit()
        and f[2] == f[3] == "*"
        and (f[4] == "*" or f[4].isdigit())
    )


def introduction(doc: Doc) -> list[str]:
    t, inv = doc.t, doc.inv
    estate = t["estate"].format(hosts=len(inv.hosts), services=len(inv.services),
                                datasets=len(inv.datasets), links=len(inv.links))  # fmt: skip
    return [
        f"### {t['purpose']}", "", doc.word("purpose"), "",
        f"### {t['scope']}", "", doc.word("scope"), "", estate, "",
        doc.fill(t["automation"]),
    ]  # fmt: skip


def organisation(doc: Doc) -> list[str]:
    t, inv = doc.t, doc.inv
    rows = []
    for role in RoleName:
        spec = inv.roles.get(role.value)
        duties = ((spec.duties_zh or spec.duties) if doc.lang == "zh" else spec.duties) if spec \
            else ""  # fmt: skip
        members = doc.join(doc.person(p.name) for p in inv.members(role)) or "—"
        rows.append([doc.role(role.value), duties or "—", members])
    out = table(t["roles_head"], rows)
    out += ["", f"### {t['contacts']}", ""]
    out += table(t["contacts_head"], [_contact(doc, p) for p in inv.people.values()])
    if inv.rosters:
        out += ["", f"### {t['rosters']}", ""]
        out += table(t["rosters_head"], [_roster(doc, r) for r in inv.rosters.values()])
    return out


def _contact(doc: Doc, person: Any) -> list[str]:
    t = doc.t
    how = [t["channels"].format(own=len(person.notify))] if person.notify else []
    if person.fallback:
        how.append(t["fallbacks"].format(n=len(person.fallback)))
    if any(doc.inv.roles.get(r) and doc.inv.roles[r].notify for r in person.roles):
        how.append(t["role_channel"])
    if person.backup:
        how.append(t["backup_approver"])
    roles = doc.join(doc.role(r) for r in person.roles) or "—"
    return [doc.person(person.name), roles, person.phone or "—", person.email or "—",
            str(t["semi"]).join(how) or "—"]  # fmt: skip


def _roster(doc: Doc, roster: Any) -> list[str]:
    shift = on_duty(roster)
    when = doc.t["shift"].format(days=roster.period_days,
                                 handover=roster.handover.strftime("%H:%M"),
                                 timezone=roster.timezone)  # fmt: skip
    rotation = " → ".join(doc.person(p) for p in roster.rotation)
    return [doc.role(roster.name), rotation, when, doc.person(shift.person)]


def categories(doc: Doc) -> list[str]:
    t, inv = doc.t, doc.inv
    names = doc.data["categories"][doc.lang]
    rows = []
    for cat, plans in CATEGORIES.items():
        automated = [doc.plan_name(PlanName(p)) for p in plans if PlanName(p) in MODULES]
        rules = [f"`{r.name}`" for r in inv.routing if r.plan and r.plan.value in plans]
        rows.append([names[cat], doc.word(f"category.{cat}"), doc.join(automated) or "—",
                     doc.join(rules) or "—"])  # fmt: skip
    out = table(t["categories_head"], rows)
    out += ["", f"### {t['severity']}", ""]
    return out + table(t["severity_head"], [_level(doc, lv) for lv in levels_of(inv)])


def _level(doc: Doc, level: SeverityLevel) -> list[str]:
    t = doc.t
    when = []
    for c in level.when:
        part = []
        if c.labels:
            part.append(
                t["sev_labels"].format(labels=", ".join(f"`{k}={v}`" for k, v in c.labels.items()))
            )
        if c.plans:
            part.append(
                t["sev_plans"].format(plans=", ".join(doc.plan_name(PlanName(p)) for p in c.plans))
            )
        if c.min_blast_radius:
            part.append(t["sev_radius"].format(n=c.min_blast_radius))
        when.append(", ".join(part))
    name = level.name_zh if doc.lang == "zh" else level.name_en
    return [
        f"{level.name} {name}".strip(),
        t["sev_or"].join(when) or t["sev_rest"],
        t["yes_word"] if level.activation else t["no_word"],
        doc.join(doc.role(r) for r in level.page) or "—",
        doc.d(level.tell_command_center_min * 60),
        " / ".join(doc.d(m * 60) for m in level.escalation_min) or "—",
    ]  # fmt: skip


def stages(doc: Doc) -> list[str]:
    """4.1–4.5: each stage's description, what the automation does, each role's duty."""
    t = doc.t
    out: list[str] = []
    for n, stage in enumerate(STAGES, 1):
        out += [f"### 4.{n} {t['stage_titles'][stage]}", "", doc.word(f"stage.{stage}"), ""]
        out += [f"**{t['stage_auto']}**{t['colon']}{doc.fill(t['stage_do'][stage])}", ""]
        rows = [[doc.role(r.value), text] for r in RoleName
                if (text := doc.word(f"stage.{stage}.{r.value}"))]  # fmt: skip
        if rows:
            out += table(t["stage_head"], rows) + [""]
    return out


def plan_steps(doc: Doc, plan: PlanName) -> list[str]:
    """One plan's steps and its sign-off (the timeouts and rails are in 4.7 and 4.8)."""
    t = doc.t
    p = doc.data["plans"][plan.value][doc.lang]
    out = [f"#### {p['name']}", "", f"**{t['steps']}**", ""]
    out += [f"{i}. {doc.fill(step)}" for i, step in enumerate(p["steps"], 1)]
    return out + ["", f"**{t['signoff']}**{t['colon']}{_signoff(doc, plan)}", ""]


def _signoff(doc: Doc, plan: PlanName) -> str:
    two = plan in DESTRUCTIVE or doc.inv.gate_policy(plan.value).two_person
    return str(doc.t["signoff_destructive"] if two else doc.t["signoff_no"])


def timeouts_and_rails(doc: Doc) -> list[str]:
    """4.7 and 4.8, each fact once: one line when every plan has the same policy."""
    t, inv = doc.t, doc.inv
    plans = [p for p in PlanName if p in MODULES]
    gates = {p: inv.gate_policy(p.value) for p in plans}
    out = [f"### {t['timeouts']}", ""]
    if len({(g.remind_after_s, g.backup_after_s, g.abort_after_s) for g in gates.values()}) == 1:
        g = gates[plans[0]]
        out += [t["timeouts_all"].format(remind=doc.d(g.remind_after_s),
                                         backup=doc.d(g.backup_after_s),
                                         abort=doc.d(g.abort_after_s))]  # fmt: skip
    else:
        out += table(t["timeouts_head"], [
            [doc.plan_name(p), _signoff(doc, p), doc.d(g.remind_after_s),
             doc.d(g.backup_after_s), doc.d(g.abort_after_s)] for p, g in gates.items()
        ])  # fmt: skip
    rails = {p: inv.rails_policy(p.value) for p in plans}
    out += ["", f"### {t['rails']}", ""]
    if len({r.model_dump_json() for r in rails.values()}) == 1:
        r = rails[plans[0]]
        out += [t["rails_all"].format(
            cooldown=doc.d(r.cooldown_s), flaps=r.flap_count, flap_window=doc.d(r.flap_window_s),
            hosts=r.max_hosts_per_run, percent=f"{r.max_group_percent:g}",
            runs=r.max_runs_per_window, window=doc.d(r.window_s))]  # fmt: skip
    else:
        out += table(t["rails_head"], [
            [doc.plan_name(p), doc.d(r.cooldown_s),
             t["rails_flaps"].format(flaps=r.flap_count, window=doc.d(r.flap_window_s)),
             t["rails_hosts"].format(hosts=r.max_hosts_per_run,
                                     percent=f"{r.max_group_percent:g}"),
             t["rails_runs"].format(runs=r.max_runs_per_window, window=doc.d(r.window_s))]
            for p, r in rails.items()
        ])  # fmt: skip
    return out + ["", t["kill_switch"]]
