"""The incident board (应急指挥看板): one server-rendered page for the command center.

``GET /ack/<run>`` is the link in every page: the incident and one button to
acknowledge it. ``GET /board`` shows the open incidents — severity, state, time since start, who
acknowledged, who took it over, a gate waiting (with a link to sign off in the Prefect
UI) — who is on duty per role, and overdue follow-up actions. An Escalated incident needs
a named owner who takes it over (接管) and records what was done; the command center's
closing summary (总结) completes it and takes it off the board. Both are appended to the
incident's report.

Authentication: HTTP Basic with the Prefect API's auth string (``user:password``, the one
that logs into the Prefect UI), or, where the API has none, any user name and the
intake's webhook token as the password. Forms carry a token derived from the secret
(no cross-site posts). No build step, no script: HTML and a little CSS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from inventory.models import Inventory, RoleName
from inventory.settings import get_settings
from tasks.escalation import ACKED_BY, AWAIT_TRIAGE, tag_value
from tasks.report.lang import word

OWNER = "owner:"
CLOSED = "closed"
OPEN_TYPES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _age(start: datetime | None, now: datetime) -> str:
    if start is None:
        return "—"
    s = int((now - start).total_seconds())
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def board_runs(client: Any, now: datetime) -> list[Any]:
    """Open incident runs, and Escalated or crashed ones of the last 7 days not closed."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["incident"]),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(
                    any_=[StateType(t) for t in (*OPEN_TYPES, "FAILED", "CRASHED")]
                )
            ),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=now - timedelta(days=7)),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=200,
    )
    return [r for r in runs if CLOSED not in r.tags and not (r.parameters or {}).get("dry_run")]


def render_board(
    runs: list[Any],
    inv: Inventory | None,
    overdue: list[Any],
    form_token: str,
    ui_link: Any,
    now: datetime,
    lang: str = "en",
) -> str:
    """The page, in ``lang`` (en, zh). Pure (``ui_link(run_id) -> str``)."""
    from inventory.duty import on_duty

    def w(text: str) -> str:
        return word(text, lang)

    rows = []
    for r in runs:
        tags = list(r.tags)
        state = r.state.name if r.state else "?"
        ended = r.state is not None and r.state.is_final()
        owner = tag_value(tags, OWNER)
        acked = tag_value(tags, ACKED_BY)
        labels = ((r.parameters or {}).get("alert") or {}).get("labels") or {}
        link = ui_link(r.id)
        waits = w("triage waiting" if AWAIT_TRIAGE in tags else "sign-off waiting")
        gate = (
            f'<a class="gate" href="{_esc(link)}">{waits}</a>'
            if r.state is not None and r.state.is_paused()
            else ""
        )
        if ended and not owner:
            action = _form(
                "/board/takeover", form_token, str(r.id), "take over (接管)", "what you do now",
                lang,
            )  # fmt: skip
        elif ended:
            action = _form(
                "/board/close", form_token, str(r.id), "close with summary (总结)",
                "the command center's summary", lang,
            )  # fmt: skip
        else:
            action = ""
        if not acked:
            ack = _form("/board/ack", form_token, str(r.id), "acknowledge (接警)", "", lang)
            action = ack + action
        severity = tag_value(tags, "severity:") or "—"
        rows.append(
            f'<tr data-run="{_esc(r.id)}"><td class="sev">{_esc(severity)}</td>'
            f"<td>{_esc(labels.get('alertname', r.name))}<br><small>"
            f"{_esc(tag_value(tags, 'target:') or '')} {_esc(tag_value(tags, 'plan:') or '')}"
            f'</small></td><td class="state">{_esc(state)} {gate}</td>'
            f"<td>{_age(r.start_time or r.expected_start_time, now)}</td>"
            f'<td class="ack">{_esc(acked or "—")}</td><td class="owner">{_esc(owner or "—")}</td>'
            f'<td><a href="{_esc(link)}">{w("run")}</a></td><td>{action}</td></tr>'
        )
    duty = []
    for role in RoleName:
        roster = inv.rosters.get(role.value) if inv else None
        if roster is not None:
            shift = on_duty(roster, now)
            person = inv.people.get(shift.person) if inv else None
            phone = person.phone if person else ""
            duty.append(
                f"<li>{_esc(role.value)}: <b>{_esc(shift.person)}</b> {_esc(phone)} "
                f"({w('until')} {shift.until:%Y-%m-%d %H:%M %Z})</li>"
            )
    late = "".join(
        f"<li>{_esc(a.id)}: {_esc(a.action)} — {_esc(a.owner)}, {w('due')} {a.due:%Y-%m-%d}</li>"
        for a in overdue
    )
    none_duty, none_late = f"<li>{w('no rosters')}</li>", f"<li>{w('none')}</li>"
    heads = ("severity", "incident", "state", "since", "acknowledged", "owner", "", "")
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{w(h) if h else ''}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else f'<p class="none">{w("No open incidents.")}</p>'
    )
    return (
        f"<!doctype html><html lang={lang}><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="30"><title>{w("Incident board")}</title><style>'
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}"
        ".sev{font-weight:bold}.gate{color:#b00}form{display:flex;gap:.3em}"
        f"</style></head><body><h1>{w('Incident board')}"
        f"{' (应急指挥看板)' if lang != 'zh' else ''}</h1>"
        f"<p>{now:%Y-%m-%d %H:%M:%S} UTC · {w('refreshes every 30 s')}</p>{table}"
        f"{_report_form(form_token, lang)}"
        f"<h2>{w('On duty (值班)')}</h2><ul>{''.join(duty) or none_duty}</ul>"
        f"<h2>{w('Overdue follow-up actions')}</h2><ul>{late or none_late}</ul>"
        "</body></html>"
    )


def render_ack_page(run: Any, form_token: str, lang: str = "en") -> str:
    """One incident and the acknowledge button (``GET /ack/<run>``), in ``lang``. Pure."""

    def w(text: str) -> str:
        return word(text, lang)

    tags = list(run.tags)
    labels = ((run.parameters or {}).get("alert") or {}).get("labels") or {}
    acked = tag_value(tags, ACKED_BY)
    what = (
        f"<p id=acked>{w('Already acknowledged by')} <b>{_esc(acked)}</b>.</p>"
        if acked
        else _form("/board/ack", form_token, str(run.id), "acknowledge (接警)", "", lang)
    )
    title = w("Acknowledge an incident (接警)")
    return (
        f"<!doctype html><html lang={lang}><head><meta charset=utf-8><title>{title}</title>"
        f"</head><body><h1>{title}</h1>"
        f"<p><b>{_esc(labels.get('alertname', run.name))}</b> — {w('severity')} "
        f"{_esc(tag_value(tags, 'severity:') or '—')}, {w('target')} "
        f"{_esc(tag_value(tags, 'target:') or labels.get('target', '?'))}, {w('state')} "
        f"{_esc(run.state.name if run.state else '?')}</p>{what}"
        f'<p><a href="/board">{w("the board")}</a></p></body></html>'
    )


def _form(
    action: str, token: str, run_id: str, button: str, placeholder: str, lang: str = "en"
) -> str:
    hint = _esc(word(placeholder, lang))
    text = f'<input name="text" placeholder="{hint}" required>' if placeholder else ""
    return (
        f'<form method="post" action="{action}"><input type="hidden" name="csrf" '
        f'value="{_esc(token)}"><input type="hidden" name="run_id" value="{_esc(run_id)}">'
        f'<input name="person" placeholder="{word("your name", lang)}" required>{text}'
        f"<button>{_esc(word(button, lang))}</button></form>"
    )


def _report_form(token: str, lang: str = "en") -> str:
    def w(text: str) -> str:
        return _esc(word(text, lang))

    return (
        f'<h2>{w("Report a problem (发现异常)")}</h2><form id="report" method="post" '
        f'action="/board/report"><input type="hidden" name="csrf" value="{_esc(token)}">'
        f'<input name="person" placeholder="{w("your name")}" required>'
        f'<input name="text" placeholder="{w("what you see")}" size="50" required>'
        f'<input name="target" placeholder="{w("service or host (optional)")}">'
        f'<input name="severity" placeholder="{w("severity (optional)")}" size="8">'
        f"<button>{w('report')}</button></form>"
    )


def add_board(app: FastAPI, secret: bytes, auth_string: str | None, inventory: Any) -> None:
    """Register ``/board`` on the intake's app. ``secret``: the webhook token;
    ``auth_string``: the Prefect API's ``user:password`` (None: none is set)."""
    form_token = hmac.new(secret, b"board-form", hashlib.sha256).hexdigest()

    def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(given).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if auth_string:
                ok = hmac.compare_digest(f"{user}:{password}".encode(), auth_string.encode())
            else:
                ok = hmac.compare_digest(password.encode(), secret)
        if not ok:
            raise HTTPException(
                401, "the board needs a login", headers={"WWW-Authenticate": 'Basic realm="board"'}
            )

    def load(now: datetime) -> tuple[list[Any], list[Any]]:
        from tasks.prefect_api import get_client
        from tasks.report.actions import read_all

        with get_client(sync_client=True) as client:
            runs = board_runs(client, now)
            overdue = [a for a in read_all(client) if a.overdue(now.date())]
        return runs, overdue

    @app.get("/board", response_class=HTMLResponse, include_in_schema=False)
    async def board(request: Request) -> HTMLResponse:
        check(request)
        now = datetime.now(UTC)
        runs, overdue = await asyncio.to_thread(load, now)
        inv = await asyncio.to_thread(inventory)
        from tasks.prefect_api import run_link

        lang = get_settings().language
        return HTMLResponse(render_board(runs, inv, overdue, form_token, run_link, now, lang))

    @app.get("/ack/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    async def ack_page(request: Request, run_id: str) -> HTMLResponse:
        """The link in every page: who it is, and one button to acknowledge (a GET never
        acknowledges: link previews and scanners open links)."""
        check(request)
        try:
            uid = UUID(run_id)
        except ValueError:
            raise HTTPException(404, "not a flow run id") from None

        def read() -> Any:
            from prefect.exceptions import ObjectNotFound

            from tasks.prefect_api import get_client

            with get_client(sync_client=True) as client:
                try:
                    return client.read_flow_run(uid)
                except ObjectNotFound:
                    return None

        run = await asyncio.to_thread(read)
        if run is None or "incident" not in run.tags:
            raise HTTPException(404, "no such incident")
        return HTMLResponse(render_ack_page(run, form_token, get_settings().language))

    async def form_of(request: Request) -> tuple[dict[str, str], str, Inventory]:
        """The posted form (checked), its person and the inventory."""
        check(request)
        body = await request.body()
        if len(body) > 16384:
            raise HTTPException(413, "form too large")
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        form = {k: v[0] for k, v in fields.items() if v}  # an HTML form, url-encoded
        if not hmac.compare_digest(str(form.get("csrf", "")), form_token):
            raise HTTPException(403, "form token missing or wrong: reload the board")
        person = str(form.get("person", "")).strip()
        inv = await asyncio.to_thread(inventory)
        if inv is None or person not in inv.people:
            raise HTTPException(422, f"person {person[:64]!r} is not in the inventory")
        return form, person, inv

    async def posted(request: Request) -> tuple[UUID, str, str, Inventory]:
        form, person, inv = await form_of(request)
        try:
            run_id = UUID(str(form.get("run_id", "")))
        except ValueError:
            raise HTTPException(422, "run_id: not a flow run id") from None
        text = str(form.get("text", "")).strip()
        if not text:
            raise HTTPException(422, "say what was done")
        return run_id, person, text[:4000], inv

    def record(run_id: UUID, tag: str, title: str, body: str, need_owner: bool) -> None:
        from contingency.runtime.escalation import append_section
        from tasks.prefect_api import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            if "incident" not in run.tags or run.state is None or not run.state.is_final():
                raise HTTPException(409, "only an ended incident is taken over or closed")
            if need_owner and not tag_value(list(run.tags), OWNER):
                raise HTTPException(409, "take it over first: a closed incident has an owner")
            if not need_owner and tag_value(list(run.tags), OWNER):
                raise HTTPException(409, "already taken over")
            client.update_flow_run(run_id, tags=sorted({*run.tags, tag}))
            append_section(client, client.read_flow_run(run_id), title, body)

    @app.post("/board/takeover", include_in_schema=False)
    async def takeover(request: Request) -> RedirectResponse:
        run_id, person, text, _ = await posted(request)
        body = f"**{person}** took it over (接管): {text}"
        await asyncio.to_thread(record, run_id, f"{OWNER}{person}", "Taken over", body, False)
        return RedirectResponse("/board", status_code=303)

    @app.post("/board/close", include_in_schema=False)
    async def close(request: Request) -> RedirectResponse:
        run_id, person, text, inv = await posted(request)
        if RoleName.command_center not in inv.people[person].roles:
            raise HTTPException(403, "the closing summary is the command center's")
        body = f"By **{person}**: {text}"
        await asyncio.to_thread(record, run_id, CLOSED, "Command center summary", body, True)
        return RedirectResponse("/board", status_code=303)

    @app.post("/board/ack", include_in_schema=False)
    async def ack(request: Request) -> RedirectResponse:
        from contingency.runtime.people import Refused, acknowledge
        from inventory.settings import get_settings
        from tasks.prefect_api import get_client

        form, person, inv = await form_of(request)

        def run() -> None:
            with get_client(sync_client=True) as client:
                settings = get_settings()
                acknowledge(
                    client, form.get("run_id", ""), person, inv, settings.reports_path,
                    settings.language,
                )  # fmt: skip

        try:
            await asyncio.to_thread(run)
        except Refused as exc:
            raise HTTPException(422, str(exc)) from None
        return RedirectResponse("/board", status_code=303)

    @app.post("/board/report", include_in_schema=False)
    async def report(request: Request) -> HTMLResponse:
        from contingency.runtime.people import Refused, human_alert, open_incident
        from inventory.settings import get_settings

        form, person, inv = await form_of(request)
        target = form.get("target", "").strip() or None
        severity = form.get("severity", "").strip() or None
        try:  # a target named on the form is shown; tech support triages the plan
            lang = get_settings().language
            alert = human_alert(inv, form.get("text", ""), person, None, None, severity, lang)
        except Refused as exc:
            raise HTTPException(422, str(exc)) from None
        if target is not None:
            from inventory.routing import target_kind

            if target_kind(target, inv) is None:
                raise HTTPException(422, f"{target[:64]!r} is not a service or host we know")
            alert["labels"]["target"] = target
        deployment = get_settings().incident_deployment
        run_id = await asyncio.to_thread(open_incident, deployment, alert, None, None)
        return HTMLResponse(
            f'<!doctype html><meta charset=utf-8><p id="opened">Incident {_esc(run_id)} '
            'opened: tech support is paged. <a href="/board">Back to the board</a></p>',
            status_code=201,
        )
