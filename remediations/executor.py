"""The one executor: every plan of every remediation runs here, and only here.

``run(ctx, remediation)`` asks the remediation for its plan (facts → :class:`Plan`, or
a :class:`Verdict` when there is nothing to do), then:

1. dry run → the plan, nothing else; a plan the facts say is not needed (``already``)
   ends there too;
2. before the first action that changes anything (or at an approval step): the rails
   and the sign-off (``IncidentContext.gate``); an approver's pick (a restore point)
   rebuilds the plan for that pick;
3. every later changing action: the rails again (a freeze during the plan stops it:
   ``frozen``; nothing more runs, undos included — the report lists them);
4. each action's typed result is recorded; the plan stops at the first failure (or
   notes and goes on, or pages at once, as the action says); a step whose outcome is
   unknown is never followed by more actions;
5. on a stop: the rollbacks of the actions that ran, newest first;
6. verification; on failure the rollbacks too, and the plan ends needing a human;
7. on success the ``after`` actions (a ticket), and the plan's success outcome.

A remediation cannot skip the gate, the rails or dry-run: it never runs anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from prefect import task
from prefect.cache_policies import NO_CACHE

from inventory.models import RoleName
from inventory.outcomes import Outcome
from remediations import fan_out, runners
from remediations.context import IncidentContext, Verdict
from remediations.plan import Action, Plan, RollingAction
from remediations.runners import StepResult

log = logging.getLogger("contingency.executor")


class Remediation(Protocol):
    """A plan category: ``prepare`` gathers facts and returns the plan (or why none)."""

    def prepare(self, ctx: IncidentContext) -> Plan | Verdict: ...


Repick = Callable[[str], Plan]
ACTING = ("transfer", "http", "dns", "route")
"""Kinds besides ``ssh`` that act on the estate: listed with the commands in the report
(probes, waits and notices are in the timeline and the typed steps)."""


def _say(a: Action) -> str:
    return a.name or a.description or a.kind


@task(name="step", cache_policy=NO_CACHE)
def _step(fn: Callable[[], StepResult]) -> StepResult:
    return fn()


def _runner(ctx: IncidentContext, index: int, a: Action) -> Callable[[], StepResult]:
    inv = ctx.inv
    if a.kind == "transfer":
        return lambda: runners.transfer(index, a, inv)
    if a.kind == "http":
        return lambda: runners.http(index, a)
    if a.kind == "dns":
        return lambda: runners.dns(index, a, inv)
    if a.kind == "route":
        return lambda: runners.route(index, a, inv)
    if a.kind == "wait":
        return lambda: runners.wait(index, a, inv)
    if a.kind == "probe":
        return lambda: runners.probe(index, a, inv)
    if a.kind == "evidence":
        return lambda: runners.evidence(index, a, inv, ctx.facts)
    if a.kind == "notify":
        fields: dict[str, object] = {
            "target": ctx.decision.target or "",
            "plan": str(ctx.decision.plan or ""),
        }
        fields |= {"runbook": ctx.decision.runbook or "", "step": a.name}
        return lambda: runners.notify(index, a, inv, ctx.pager, fields)
    raise ValueError(f"no runner for {a.kind}")  # an approval is the executor's own


def _rolling(ctx: IncidentContext, index: int, a: RollingAction) -> StepResult:
    """The rollout (``remediations/fan_out.py``): each batch in the timeline, every
    command in the report, the Rollout section with every instance's outcome."""
    from prefect.context import FlowRunContext

    said: list[str] = []
    box: list[fan_out.Rollout] = []

    def go() -> StepResult:
        res, rollout = fan_out.run(index, a, ctx.inv, said.append)
        box.append(rollout)
        return res

    in_flow = FlowRunContext.get() is not None
    res = _step.with_options(task_run_name=a.name or a.kind)(go) if in_flow else go()
    for text in said:
        ctx.event("rollout", text)
    if box:
        ctx.record([c for r in box[0].results for c in r.commands])
        ctx.sections["Rollout"] = box[0].as_markdown()
    return res


def _summary(res: StepResult) -> str:
    if res.kind != "ssh":
        return res.detail
    said = "outcome unknown" if res.outcome == "unknown" else f"exit {res.exit_code}"
    said += " (timed out)" if res.outcome == "timed_out" else ""
    return said + (f": {res.detail}" if res.detail and not res.ok else "")


def run_action(ctx: IncidentContext, index: int, a: Action, undo: bool = False) -> StepResult:
    """Run one action with the runner of its kind (inside a flow run: as a Prefect task
    named after the step) and record its typed result."""
    from prefect.context import FlowRunContext

    if a.kind == "ssh":
        res, command = runners.ssh(index, a, ctx.inv)
        if command is not None:
            ctx.record([command])
    elif a.kind == "rolling":
        res = _rolling(ctx, index, a)
    else:
        fn = _runner(ctx, index, a)
        in_flow = FlowRunContext.get() is not None
        res = _step.with_options(task_run_name=a.name or a.kind)(fn) if in_flow else fn()
    if a.kind in ACTING:  # the report's command table: what acted on the estate
        ctx.commands.append(
            {"host": res.where, "command": res.what, "exit_code": res.exit_code,
             "outcome": res.outcome, "duration_s": res.duration_s, "stdout_tail": res.detail}
        )  # fmt: skip
    res = res.model_copy(update={"rollback": undo})
    ctx.steps.append(res)
    word = "ok" if res.ok else "OUTCOME UNKNOWN" if res.outcome == "unknown" else "FAILED"
    summary = _summary(res)
    ctx.event("step", f"{'UNDO ' if undo else ''}{_say(a)} ({a.kind}): {word}"
              + (f" — {summary}" if summary else ""))  # fmt: skip
    return res


def _rollback(ctx: IncidentContext, done: list[tuple[int, Action]]) -> str:
    """Undo what ran, newest first; say what was undone (or could not be)."""
    said: list[str] = []
    for index, a in reversed(done):
        for undo in a.rollback:
            res = run_action(ctx, index, undo, undo=True)
            said.append(f"{_say(undo)}: {'done' if res.ok else 'FAILED'}")
    if said:
        ctx.event("rolled back", "; ".join(said))
    return "rolled back (" + "; ".join(said) + ")" if said else ""


def _gate(ctx: IncidentContext, plan: Plan, approval_step: bool, asked: bool) -> Verdict | None:
    """The first gate: rails, then sign-off if the plan (or this step) needs it.
    Later approval steps only ask again."""
    if not asked:
        needs = approval_step or (
            plan.requires_approval and not any(a.kind == "approval" for a in plan.actions)
        )
        return ctx.gate(plan.model_copy(update={"requires_approval": needs}))
    return ctx.ask(plan)


def execute(ctx: IncidentContext, plan: Plan, repick: Repick | None = None) -> Verdict:
    """Run ``plan`` (see the module's docstring)."""
    ctx.plan = plan
    ctx.event("planned", "; ".join(f"{a.where}: {a.shown}" for a in plan.actions))
    if ctx.dry_run:
        return Verdict(outcome=Outcome.dry_run, message="plan only, nothing changed")
    if plan.already is not None:
        return Verdict(outcome=plan.already, message=plan.already_message)
    from remediations import rails

    asked = False
    done: list[tuple[int, Action]] = []
    ran: list[str] = []
    escalated: list[str] = []
    passed_over: list[str] = []
    stopped: tuple[Action, StepResult] | None = None
    i = 0
    while i < len(plan.actions):
        a, index = plan.actions[i], i + 1
        if a.kind == "approval" or (a.changes and not asked):
            stop = _gate(ctx, plan, a.kind == "approval", asked)
            if stop is not None:
                return _not_run(stop, ran, plan) if asked else stop
            first = not asked
            asked = True
            gate = ctx.last_gate if first and plan.choices else None
            pick = getattr(gate, "choice", "") if gate is not None else ""
            if pick and repick is not None:
                plan = repick(pick)
                ctx.plan = plan
                ctx.event("replanned", f"for the approvers' pick {pick}")
                continue  # the same position in the plan for the pick
            if a.kind == "approval":
                ctx.event("step", f"{_say(a)}: approved")
                i += 1
                continue
        elif a.changes and (stop := rails.check(plan, ctx.inv)) is not None:
            # The rails stop every action, undos included: say what ran and what would
            # undo it, and leave the decision to a human.
            ctx.event("rails", f"before step {index}: {stop.outcome}: {stop.message}")
            undo = [u.shown for _, d in reversed(done) for u in d.rollback]
            tail = f"; steps already run: {', '.join(ran) or 'none'}" + (
                f"; not undone (to undo, in order: {'; '.join(undo)})" if undo else ""
            )
            return stop.model_copy(update={"message": stop.message + tail})
        res = run_action(ctx, index, a)
        ran.append(_say(a))
        if res.ok:
            done.append((index, a))
        elif res.outcome == "unknown" or a.on_failure == "stop":
            stopped = (a, res)
            break
        elif a.on_failure == "escalate":
            _escalate_now(ctx, plan, a, res)
            escalated.append(_say(a))
        else:
            passed_over.append(_say(a))
        i += 1
    return _finish(ctx, plan, done, stopped, escalated, passed_over)


def _not_run(stop: Verdict, ran: list[str], plan: Plan) -> Verdict:
    message = stop.message.split(";")[0]
    noun = "runbook" if plan.plan == "runbook" else "plan"
    return stop.model_copy(
        update={"message": f"{message}; the {noun} stopped here (steps already run: "
                f"{', '.join(ran) or 'none'})"}
    )  # fmt: skip


def _escalate_now(ctx: IncidentContext, plan: Plan, a: Action, res: StepResult) -> None:
    summary = (
        f"{plan.label or plan.plan}: step {_say(a)!r} failed ({res.detail or res.outcome}); "
        "the plan continues"
    )
    log.error("ESCALATE: %s", summary)
    ctx.event("escalated", summary)
    if ctx.pager is not None:
        ctx.pager.event("escalation", {"summary": summary}, roles=(RoleName.command_center,))


def _verify(ctx: IncidentContext, plan: Plan) -> tuple[bool, str]:
    details = []
    for n, check in enumerate(plan.verify, 1):
        res = run_action(ctx, len(plan.actions) + n, check)
        details.append(res.detail)
        if not res.ok:
            return False, res.detail
    if plan.verify:
        ctx.event("verified", "; ".join(details))
    return True, "; ".join(details)


def _finish(
    ctx: IncidentContext,
    plan: Plan,
    done: list[tuple[int, Action]],
    stopped: tuple[Action, StepResult] | None,
    escalated: list[str],
    passed_over: list[str],
) -> Verdict:
    what = plan.label or f"{plan.plan} on {plan.target}"
    if stopped is not None and stopped[1].outcome != "unknown":
        a, res = stopped
        undone = _rollback(ctx, [*done, (res.index, a)])  # the failed step may be partly done
        why = res.detail or f"{res.outcome}" + (
            f" (exit {res.exit_code})" if res.exit_code is not None else ""
        )
        log.error("ESCALATE: %s stopped at %s: %s", what, _say(a), why)
        return Verdict(
            outcome=a.fails_as or plan.failure,
            message=f"{what} stopped at step {_say(a)!r} on {res.where}: {why}"
            + (f"; {undone}" if undone else "; nothing to undo")
            + "; escalated to a human",
        )
    ok, detail = _verify(ctx, plan)
    if stopped is not None:  # outcome unknown: never act again on top of it
        a, res = stopped
        step = f"step {_say(a)!r} `{res.what}` on {res.where}"
        if ok:
            ctx.event(
                "note",
                f"{step}: outcome unknown ({res.detail}), but the check passes ({detail}); "
                "not acting again",
            )
            return Verdict(
                outcome=plan.success,
                message=f"{plan.success_message or what}: the outcome of {step} was unknown "
                f"({res.detail or 'no exit status came back'}), but the check passes: {detail}",
            )
        log.error("ESCALATE: %s: outcome unknown and the check fails", what)
        return Verdict(
            outcome=Outcome.outcome_unknown,
            message=f"{step}: outcome unknown, {res.detail or 'the command may have run'}; "
            f"the check still fails ({detail}). Not acting again blindly; escalated to a "
            "human — check the host",
        )
    if not ok:
        undone = _rollback(ctx, done)
        log.error("ESCALATE: %s did not verify: %s", what, detail)
        return Verdict(
            outcome=plan.unrecovered,
            message=f"{what} did not verify ({detail})"
            + (f"; {undone}" if undone else "")
            + "; escalated to a human",
        )
    for n, a in enumerate(plan.after, 1):
        run_action(ctx, len(plan.actions) + len(plan.verify) + n, a)
    over = f"; failed and passed over: {', '.join(passed_over)}" if passed_over else ""
    if escalated:
        return Verdict(
            outcome=Outcome.runbook_partial,
            message=f"{what} finished; failed and escalated: {', '.join(escalated)}{over}",
        )
    return Verdict(outcome=plan.success, message=(plan.success_message or f"{what} done") + over)


def run(ctx: IncidentContext, remediation: Remediation) -> Verdict:
    """Facts → plan (or a verdict without one) → :func:`execute` → the remediation's
    own ``finish`` (report sections, its words for the outcome), if it has one."""
    prepared = remediation.prepare(ctx)
    if isinstance(prepared, Verdict):
        return prepared
    replan = getattr(remediation, "replan", None)
    repick: Repick | None = (lambda pick: replan(ctx, pick)) if replan else None
    verdict = execute(ctx, prepared, repick)
    finish = getattr(remediation, "finish", None)
    if finish is None or ctx.plan is None or ctx.dry_run:
        return verdict
    return finish(ctx, ctx.plan, verdict)  # type: ignore[no-any-return]
