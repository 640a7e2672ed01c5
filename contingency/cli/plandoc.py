"""The human-readable emergency-response plan (预案), generated from the code.

Roles, people and channels come from the inventory; the plan categories from the
remediations that exist; sign-off, timeouts and rails from the inventory's policies;
schedules from prefect.yaml; the revision history from git. So the paper plan never
drifts from what runs. ``contingency plans doc --lang zh|en [--format md|html]``.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from contingency.runtime.deploy import read_deployments
from inventory.models import Inventory, PlanName, RoleName
from remediations import MODULES

TEXT = Path(__file__).resolve().parents[1] / "templates" / "plandoc.yaml"
ROOT = Path(__file__).resolve().parents[2]
DESTRUCTIVE = {
    PlanName.data_loss,
    PlanName.network_outage,
    PlanName.hardware_failure,
    PlanName.security_incident,
}


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def _duration(seconds: float, lang: str) -> str:
    minutes = seconds / 60
    if lang == "zh":
        return f"{minutes:g} 分钟" if minutes >= 1 else f"{seconds:g} 秒"
    return f"{minutes:g} min" if minutes >= 1 else f"{seconds:g} s"


def _history(limit: int = 15) -> list[list[str]]:
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "log",
                f"-{limit}",
                "--date=short",
                "--format=%ad\t%s",
                "--",
                "inventory",
                "remediations",
                "flows",
                "prefect.yaml",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("\t", 1) for line in out.splitlines() if "\t" in line]


def _roles(inv: Inventory, t: dict[str, Any], lang: str) -> list[str]:
    rows = []
    for role in RoleName:
        spec = inv.roles.get(role.value)
        title = (spec.title_zh if lang == "zh" else spec.title_en) if spec else ""
        members = ", ".join(p.display_name or p.name for p in inv.members(role)) or "—"
        channels = ", ".join(spec.notify) if spec and spec.notify else "—"
        rows.append(
            [
                f"{title or role.value} (`{role.value}`)",
                ((spec.duties_zh or spec.duties) if lang == "zh" else spec.duties) if spec else "",
                members,
                channels,
            ]
        )
    return _table(t["roles_head"], rows)


def _procedure(
    plan: PlanName, inv: Inventory, t: dict[str, Any], p: dict[str, Any], lang: str
) -> list[str]:
    gate = inv.gate_policy(plan.value)
    rails = inv.rails_policy(plan.value)
    d = lambda s: _duration(s, lang)  # noqa: E731
    signoff = t["signoff_destructive"] if plan in DESTRUCTIVE else t["signoff_no"]
    if plan in DESTRUCTIVE or gate.two_person:
        signoff = t["signoff_destructive"]
    out = [f"### {p['name']} (`{plan.value}`)", "", f"**{t['steps']}**", ""]
    out += [f"{i}. {step}" for i, step in enumerate(p["steps"], 1)]
    out += [
        "",
        f"- **{t['signoff']}**: {signoff}",
        f"- **{t['timeouts']}**: "
        + t["ladder"].format(
            remind=d(gate.remind_after_s),
            backup=d(gate.backup_after_s),
            abort=d(gate.abort_after_s),
        ),
        f"- **{t['rails']}**: "
        + t["rails_text"].format(
            cooldown=d(rails.cooldown_s),
            flaps=rails.flap_count,
            flap_window=d(rails.flap_window_s),
            hosts=rails.max_hosts_per_run,
            percent=f"{rails.max_group_percent:g}",
            runs=rails.max_runs_per_window,
            window=d(rails.window_s),
        ),
        "",
    ]
    return out


def _runbooks(inv: Inventory, t: dict[str, Any], lang: str) -> list[str]:
    """Each runbook: title, when it runs, parameters, steps with their sign-off points,
    timeouts and what a failure does — all in ``lang``."""
    out: list[str] = []
    for name, rb in sorted(inv.runbooks.items()):
        title = rb.text("title", lang) or name
        rules = ", ".join(f"`{r.name}`" for r in inv.routing if r.runbook == name) or "—"
        out += [f"#### {t['runbook']} `{name}`: {title}", ""]
        if description := rb.text("description", lang):
            out += [description, ""]
        points = ", ".join(f"`{s.name}`" for s in rb.steps if s.kind == "approval")
        out += [f"- **{t['runbook_rules']}**: {rules}", ""]
        out += [t["runbook_safety"].format(points=points or t["runbook_no_signoff"]), ""]
        if rb.parameters:
            out += _table(
                t["runbook_params_head"],
                [[f"`{k}`", t["runbook_duration"] if p.type == "duration" else p.type,
                  "—" if p.default is None else f"`{p.default}`", _allowed(p, t),
                  p.description or "—"] for k, p in rb.parameters.items()],
            ) + [""]  # fmt: skip
        out += _table(
            t["runbook_steps_head"],
            [
                [str(i), f"`{s.name}`", t["runbook_kinds"][s.kind],
                 s.host or s.service or "—", _step_text(s, inv, t, lang),
                 _step_timeout(s, inv, lang),
                 "—" if s.kind in ("approval", "notify") else t["runbook_fail"][s.on_failure]]
                for i, s in enumerate(rb.steps, 1)
            ],
        ) + [""]  # fmt: skip
    return out


def _step_timeout(step: Any, inv: Inventory, lang: str) -> str:
    if step.kind == "approval":  # the gate policy's abort: never approves
        return _duration(inv.gate_policy(PlanName.runbook.value).abort_after_s, lang)
    if step.kind in ("notify", "probe"):
        return "—"
    return _duration(_timeout(step), lang)


def _timeout(step: Any) -> float:
    return float(step.seconds if step.kind == "wait" and step.seconds else step.timeout_s)


def _allowed(p: Any, t: dict[str, Any]) -> str:
    parts = [t["runbook_required"]] if p.required else []
    if p.choices:
        parts.append(t["runbook_choices"].format(choices=", ".join(f"`{c}`" for c in p.choices)))
    if p.pattern:
        parts.append(t["runbook_pattern"].format(pattern=p.pattern))
    if p.min is not None:
        parts.append(t["runbook_min"].format(v=f"{p.min:g}"))
    if p.max is not None:
        parts.append(t["runbook_max"].format(v=f"{p.max:g}"))
    return "; ".join(parts) or t["runbook_any"]


def _step_text(s: Any, inv: Inventory, t: dict[str, Any], lang: str) -> str:
    """What a step does, in ``lang``; placeholders are left as written."""
    do = t["runbook_do"]
    if s.kind == "ssh":
        return f"`{s.command}`"
    if s.kind == "http":
        return do["http"].format(method=s.method, url=s.url, status=s.expect_status)
    if s.kind == "wait" and s.service:
        return do["wait_until"].format(service=s.service, seconds=_duration(_timeout(s), lang))
    if s.kind == "wait":
        return do["wait"].format(seconds=_duration(s.seconds, lang))
    if s.kind == "notify":
        role = inv.roles.get(s.role)
        shown = (role.title_zh if lang == "zh" else role.title_en) if role else ""
        return do["notify"].format(role=shown or s.role, message=s.message)
    return do[s.kind].format(service=s.service)  # type: ignore[no-any-return]


def render(
    inv: Inventory,
    lang: str = "en",
    prefect_yaml: Path | None = None,
    last_results: list[list[str]] | None = None,
    training: list[Any] | None = None,
    due_days: int = 365,
) -> str:
    """The plan document as markdown, in ``lang`` (``en`` or ``zh``).

    ``last_results``: rows (drill, when, result, detail) of the latest drills and game
    days, read from the Prefect API by :func:`latest_drill_results` when it is reachable.
    """
    data = yaml.safe_load(TEXT.read_text(encoding="utf-8"))
    t, plans = data[lang], data["plans"]
    out = [
        f"# {t['title']}",
        "",
        "> "
        + t["generated"].format(
            version=version("contingency"), date=datetime.now(UTC).strftime("%Y-%m-%d")
        ),
        "",
        f"## {t['s1']}",
        "",
        t["s1_body"],
        "",
        f"## {t['s2']}",
        "",
    ]
    out += _roles(inv, t, lang) + ["", f"## {t['s3']}", ""]
    rows = []
    for plan in PlanName:
        p = plans[plan.value][lang]
        rules = ", ".join(f"`{r.name}`" for r in inv.routing if r.plan is plan) or "—"
        status = t["available"] if plan in MODULES else t["not_available"]
        rows.append([f"{p['name']} (`{plan.value}`)", p["category"], status, rules])
    out += _table(t["plans_head"], rows) + ["", f"## {t['s4']}", "", t["detect"], ""]
    for plan in PlanName:
        if plan in MODULES:
            out += _procedure(plan, inv, t, plans[plan.value][lang], lang)
            if plan is PlanName.runbook:
                out += _runbooks(inv, t, lang)
    out += [f"## {t['s5']}", ""]
    deployments = read_deployments(prefect_yaml)
    out += _table(
        t["schedules_head"],
        [
            [
                d["name"],
                (d.get("description") or "").strip(),
                ", ".join(
                    str(s.get("cron") or s.get("interval") or s)
                    + (f" ({s['timezone']})" if s.get("timezone") else "")
                    + ("" if s.get("active", True) else f" — {t['inactive']}")
                    for s in d.get("schedules") or []
                )
                or t["no_schedule"],
            ]
            for d in deployments
        ],
    )
    drilled = [
        [f"`{n}`", ds.host, f"{ds.rpo_s}s", f"{ds.rto_s}s", f"{ds.drill.host}:{ds.drill.path}"]
        for n, ds in sorted(inv.datasets.items())
        if ds.drill is not None
    ]
    if drilled:
        out += ["", t["drills_datasets"], ""] + _table(t["drills_head"], drilled)
    out += ["", t["last_results"], ""]
    out += _table(t["results_head"], last_results) if last_results else [t["no_results"]]
    out += ["", t["training_title"], ""]
    out += _training(inv, t, training, due_days)
    out += ["", f"## {t['s6']}", ""]
    history = _history()
    out += _table(t["history_head"], history) if history else [t["no_history"]]
    return "\n".join(out) + "\n"


def _training(
    inv: Inventory, t: dict[str, Any], sessions: list[Any] | None, days: int
) -> list[str]:
    """Section 5's training records and who is due (``tasks/report/training.py``)."""
    from tasks.report.training import due

    if sessions is None:
        return [t["no_training"]]
    rows = [
        [f"{s.date}", s.kind, s.topic, s.trainer, ", ".join(s.attendees), s.material or "—"]
        for s in sessions
    ]
    out = _table(t["training_head"], rows) if rows else [t["no_training"]]
    late = [r for r in due(list(inv.people), sessions, datetime.now(UTC).date(), days)
            if r.training_due or r.drill_due]  # fmt: skip
    if late:
        out += ["", t["due_title"].format(days=days), ""]
        out += _table(
            t["due_head"],
            [[r.person, str(r.last_training or t["never"]), str(r.last_drill or t["never"])]
             for r in late],
        )  # fmt: skip
    return out


def to_html(markdown_text: str, lang: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        "<title>Contingency plan</title><style>body{font-family:sans-serif;max-width:60em;"
        "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #999;"
        f"padding:.3em .6em}}</style></head><body>\n{body}\n</body></html>\n"
    )


def latest_drill_results(limit: int = 20) -> list[list[str]]:
    """The latest restore-drill and game-day results (artifacts) from the Prefect API."""
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
    from prefect.client.schemas.sorting import ArtifactCollectionSort

    from tasks.prefect_api import get_client

    with get_client(sync_client=True) as client:
        arts = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(
                key=ArtifactCollectionFilterKey(like_="drill-")
            ),
            sort=ArtifactCollectionSort.UPDATED_DESC,
            limit=limit,
        ) + client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(
                key=ArtifactCollectionFilterKey(like_="game-day-")
            ),
            sort=ArtifactCollectionSort.UPDATED_DESC,
            limit=limit,
        )
    return [
        [a.key, f"{a.updated:%Y-%m-%d %H:%M} UTC" if a.updated else "—",
         (a.description or "").split(":")[0], (a.description or "").partition(":")[2].strip()]
        for a in arts
    ]  # fmt: skip
