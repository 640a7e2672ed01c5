"""The human-readable emergency-response plan (预案), generated from the code, in the
plan's seven sections (docs/plan-document.md).

Roles, people and channels come from the inventory; the plan categories from the
remediations that exist; sign-off, timeouts and rails from the inventory's policies;
schedules from prefect.yaml; the revision history from the inventory's changelog or its
own git history; the prose from the inventory's ``wording`` or the plan's defaults. So
the paper plan never drifts from what runs. Sections 1–4 are in ``plandoc_parts.py``,
the Word rendering in ``plandoc_docx.py``.
``contingency plans doc --lang zh|en [--format md|html|docx]``.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from contingency.cli.plandoc_parts import (
    Doc,
    categories,
    introduction,
    organisation,
    plan_steps,
    stages,
    table,
    timeouts_and_rails,
)
from contingency.runtime.deploy import read_deployments
from inventory.models import Inventory, PlanName
from inventory.runbooks import pick
from remediations import MODULES

TEXT = Path(__file__).resolve().parents[1] / "templates" / "plandoc.yaml"


def _runbooks(doc: Doc) -> list[str]:
    """Each runbook: title, when it runs, parameters, steps with their sign-off points,
    timeouts and what a failure does — all in the document's language."""
    inv, t, lang = doc.inv, doc.t, doc.lang
    out: list[str] = []
    for name, rb in sorted(inv.runbooks.items()):
        title = rb.text("title", lang) or name
        rules = ", ".join(f"`{r.name}`" for r in inv.routing if r.runbook == name) or "—"
        out += [f"##### {t['runbook']} `{name}`{t['colon']}{title}", ""]
        if description := rb.text("description", lang):
            out += [description, ""]
        points = ", ".join(f"`{s.name}`" for s in rb.steps if s.kind == "approval")
        out += [f"- **{t['runbook_rules']}**{t['colon']}{rules}", ""]
        out += [t["runbook_safety"].format(points=points or t["runbook_no_signoff"]), ""]
        if rb.parameters:
            out += table(
                t["runbook_params_head"],
                [[f"`{k}`", t["param_types"][p.type],
                  "—" if p.default is None else f"`{p.default}`", _allowed(p, t),
                  pick(p.description, lang) or "—"] for k, p in rb.parameters.items()],
            ) + [""]  # fmt: skip
        out += table(
            t["runbook_steps_head"],
            [
                [str(i), f"`{s.name}`", t["runbook_kinds"][s.kind],
                 s.host or s.service or "—", _step_text(s, doc),
                 _step_timeout(s, doc),
                 "—" if s.kind in ("approval", "notify") else t["runbook_fail"][s.on_failure]]
                for i, s in enumerate(rb.steps, 1)
            ],
        ) + [""]  # fmt: skip
    return out


def _step_timeout(step: Any, doc: Doc) -> str:
    if step.kind == "approval":  # the gate policy's abort: never approves
        return doc.d(doc.inv.gate_policy(PlanName.runbook.value).abort_after_s)
    if step.kind in ("notify", "probe"):
        return "—"
    return doc.d(_timeout(step))


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


def _step_text(s: Any, doc: Doc) -> str:
    """What a step does, in the document's language; placeholders are left as written."""
    do = doc.t["runbook_do"]
    if s.kind == "ssh":
        return f"`{s.command}`"
    if s.kind == "http":
        return do["http"].format(method=s.method, url=s.url, status=s.expect_status)
    if s.kind == "wait" and s.service:
        return do["wait_until"].format(service=s.service, seconds=doc.d(_timeout(s)))
    if s.kind == "wait":
        return do["wait"].format(seconds=doc.d(s.seconds))
    if s.kind == "notify":
        return do["notify"].format(role=doc.role(s.role), message=pick(s.message, doc.lang))
    if s.kind == "rolling":
        names = doc.inv.instances.get(s.service, [s.service])
        hosts = doc.t["sep"].join(doc.inv.services[n].host for n in names if n in doc.inv.services)
        return do["rolling"].format(  # type: ignore[no-any-return]
            service=s.service, hosts=hosts, batch=min(s.batch_size, s.max_unavailable),
            unavailable=s.max_unavailable, pct=f"{s.stop_failure_pct:g}",
        )  # fmt: skip
    return do[s.kind].format(service=s.service)  # type: ignore[no-any-return]


def render(
    inv: Inventory,
    lang: str = "en",
    prefect_yaml: Path | None = None,
    last_results: list[list[str]] | None = None,
    training: list[Any] | None = None,
    due_days: int = 365,
    inventory_path: Path | None = None,
    reviews: list[Any] | None = None,
    review_days: int = 365,
) -> str:
    """The plan document as markdown, in ``lang`` (``en`` or ``zh``), in the plan's seven
    sections.

    ``last_results``: rows (drill, when, result, detail) of the drills and game days,
    newest first, read from the Prefect API by :func:`latest_drill_results` when it is
    reachable.
    """
    data = yaml.safe_load(TEXT.read_text(encoding="utf-8"))
    t = data[lang]
    doc = Doc(inv, t, lang, data)
    s = t["sections"]
    out = [
        f"# {t['title']}",
        "",
        "> "
        + t["generated"].format(
            version=version("contingency"), date=datetime.now(UTC).strftime("%Y-%m-%d")
        ),
        "",
        f"## {s[0]}",
        "",
        *introduction(doc),
        "",
        f"## {s[1]}",
        "",
        *organisation(doc),
        "",
        f"## {s[2]}",
        "",
        *categories(doc),
        "",
        f"## {s[3]}",
        "",
        *stages(doc),
        f"### {t['plans_steps']}",
        "",
    ]
    for plan in PlanName:
        if plan in MODULES:
            out += plan_steps(doc, plan)
            if plan is PlanName.runbook:
                out += _runbooks(doc)
    out += timeouts_and_rails(doc)
    out += ["", f"## {s[4]}", ""]
    out += [f"{i}. {line}" for i, line in enumerate(doc.word("training").splitlines(), 1)]
    out += ["", f"### {t['calendar']}", ""]
    out += _calendar(doc, prefect_yaml)
    drilled = [
        [f"`{n}`", ds.host, doc.d(ds.rpo_s), doc.d(ds.rto_s), f"{ds.drill.host}:{ds.drill.path}"]
        for n, ds in sorted(inv.datasets.items())
        if ds.drill is not None
    ]
    if drilled:
        out += ["", t["drills_datasets"], ""] + table(t["drills_head"], drilled)
    out += ["", t["last_results"], ""]
    out += _results(doc, last_results)
    out += ["", f"### {t['training']}", ""]
    out += _training(doc, training, due_days)
    out += ["", f"## {s[5]}", "", doc.word("revision"), ""]
    out += _revisions(doc, inventory_path, reviews, review_days)
    out += ["", f"## {s[6]}", "", doc.word("closing")]
    return "\n".join(out) + "\n"


def _calendar(doc: Doc, prefect_yaml: Path | None) -> list[str]:
    """5.1: every deployment with its schedules (prefect.yaml)."""
    t = doc.t
    rows = []
    for d in read_deployments(prefect_yaml):
        text = t.get("deployment_text", {}).get(d["name"]) or (d.get("description") or "")
        when = str(t["semi"]).join(
            _drill_of(doc, s) + ("" if s.get("active", True) else f" — {t['inactive']}")
            for s in d.get("schedules") or []
        )
        rows.append([d["name"], text.strip(), when or t["no_schedule"]])
    return table(t["schedules_head"], rows)


def _drill_of(doc: Doc, schedule: dict[str, Any]) -> str:
    """A schedule in words, with the game day it runs (scenario and target) if any."""
    when, params = doc.schedule(schedule), schedule.get("parameters") or {}
    if "scenario" not in params:
        return when
    scenario = doc.t["scenarios"].get(params["scenario"], params["scenario"])
    return str(doc.t["drill_of"].format(when=when, scenario=scenario,
                                        target=params.get("target", "")))  # fmt: skip


def _results(doc: Doc, rows: list[list[str]] | None, shown: int = 10) -> list[str]:
    """The latest results, then each drill's runs, passes and latest result (trend)."""
    from contingency.cli.stats import drill_trends

    t = doc.t
    if not rows:
        return [t["no_results"]]
    word = t["results_words"]

    def said(result: str) -> str:
        return str(word.get(result.strip().lower(), result))

    out = table(t["results_head"], [[d, w, said(r), x] for d, w, r, x in rows[:shown]])
    trend = [[d.drill, str(d.runs), str(d.passed), str(d.runs - d.passed), said(d.latest),
              f"`{d.history}`"] for d in drill_trends(rows)]  # fmt: skip
    return out + ["", t["trend"], ""] + table(t["trend_head"], trend)


def _revisions(doc: Doc, path: Path | None, reviews: list[Any] | None, days: int) -> list[str]:
    """Section 6: the plan's own history (``inventory/revisions.py``), the command
    center's reviews (``tasks/report/plan_reviews.py``) and when the next is due."""
    from inventory.revisions import history
    from tasks.report.plan_reviews import next_due

    t, lang = doc.t, doc.lang
    entries = history(doc.inv.changelog, path)
    rows = [
        [e.version, f"{e.date}", doc.person(e.by),
         (e.change_zh or e.change) if lang == "zh" else e.change]
        for e in entries
    ]  # fmt: skip
    out = table(t["history_head"], rows) if rows else [t["no_history"]]
    out += ["", t["reviews_title"], ""]
    if reviews:
        out += table(
            t["reviews_head"],
            [[f"{r.date}", doc.person(r.by), r.version, r.note or "—"] for r in reviews],
        )
    else:
        out += [t["no_reviews"]]
    if reviews is not None:
        due = next_due(reviews, datetime.now(UTC).date(), days)
        line = t["review_overdue"] if due.overdue else t["review_due"]
        version = entries[0].version if entries else "—"
        out += ["", line.format(version=version, due=due.due, days=days)]
    return out


def _training(doc: Doc, sessions: list[Any] | None, days: int) -> list[str]:
    """5.2: training records and who is due (``tasks/report/training.py``)."""
    from tasks.report.training import due

    t = doc.t
    if sessions is None:
        return [t["no_training"]]
    rows = [
        [f"{s.date}", t["training_kinds"].get(s.kind, s.kind), s.topic, doc.person(s.trainer),
         ", ".join(doc.person(a) for a in s.attendees), s.material or "—"]
        for s in sessions
    ]  # fmt: skip
    out = table(t["training_head"], rows) if rows else [t["no_training"]]
    late = [r for r in due(list(doc.inv.people), sessions, datetime.now(UTC).date(), days)
            if r.training_due or r.drill_due]  # fmt: skip
    if late:
        out += ["", t["due_title"].format(days=days), ""]
        out += table(
            t["due_head"],
            [[doc.person(r.person), str(r.last_training or t["never"]),
              str(r.last_drill or t["never"])] for r in late],
        )  # fmt: skip
    return out


def to_html(markdown_text: str, lang: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    first = markdown_text.splitlines()[0] if markdown_text else ""
    title = html.escape(first.removeprefix("# ").strip() or "Contingency")
    return (
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:60em;"
        "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #999;"
        f"padding:.3em .6em}}</style></head><body>\n{body}\n</body></html>\n"
    )


def latest_drill_results(limit: int = 200) -> list[list[str]]:
    """Restore-drill and game-day results (every version of their artifacts), newest
    first, from the Prefect API: rows (drill, when, result, detail)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from tasks.prefect_api import get_client

    arts = []
    with get_client(sync_client=True) as client:
        for prefix in ("drill-", "game-day-"):
            arts += client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)),
                sort=ArtifactSort.CREATED_DESC,
                limit=limit,
            )
    arts.sort(key=lambda a: a.created or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [
        [a.key or "—", f"{a.created:%Y-%m-%d %H:%M} UTC" if a.created else "—",
         (a.description or "").split(":")[0], (a.description or "").partition(":")[2].strip()]
        for a in arts
    ]  # fmt: skip
