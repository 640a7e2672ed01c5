"""Network-outage plan against real routes: a router namespace with two uplinks.

Each test builds its own topology (``network_lab``), cuts links for real (a blackhole
in the ISP, or the ISP's port down) and drives the plan with an approve callback.
"""

from __future__ import annotations

import pytest

from inventory.models import PlanName
from remediations import executor, handler_for
from remediations.context import IncidentContext, Verdict
from remediations.network_outage import build_plan, prepare_failback
from tasks.facts.network import confirm_link, default_route, probe_link
from tests.fixtures_netns import Approver, make_ctx

handle = handler_for(PlanName.network_outage)


def failback(ctx: IncidentContext, primary: str) -> Verdict:
    plan = prepare_failback(ctx, primary)
    return plan if isinstance(plan, Verdict) else executor.execute(ctx, plan)


LABELS = {"alertname": "LinkDown", "link": "uplink-a"}


def test_probes_tell_a_passing_link_from_a_cut_one(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    a, b = inv.links["uplink-a"], inv.links["uplink-b"]
    assert probe_link(a, inv).state == "up"
    assert probe_link(b, inv).state == "up"  # bound to up2: the backup is tested too
    lab.cut("uplink-a")
    assert probe_link(a, inv).state == "down"
    assert probe_link(b, inv).state == "up"
    assert default_route(a, inv) == ("198.51.100.2", "up1")  # probes changed nothing


@pytest.mark.parametrize("mode", ["blackhole", "down"])
def test_cut_primary_fails_over_then_fails_back_through_a_gate(network_lab, mode) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a", mode)
    assert not lab.reachable()
    approve = Approver()
    ctx = make_ctx(inv, LABELS, approve)
    outcome = handle(ctx)
    assert outcome.outcome == "failed_over", outcome.message
    assert "via 198.51.100.6 dev up2" in lab.default_route()
    assert lab.reachable("203.0.113.1") and lab.reachable("203.0.113.2")
    assert [p.target for p in approve.seen] == ["uplink-b"]
    assert approve.seen[0].destructive
    assert approve.seen[0].actions[0].shown == "ip route replace default via 198.51.100.6 dev up2"

    lab.restore("uplink-a")
    back = make_ctx(inv, LABELS, approve)
    outcome = failback(back, "uplink-a")
    assert outcome.outcome == "failed_back", outcome.message
    assert "via 198.51.100.2 dev up1" in lab.default_route()
    assert lab.reachable()
    assert [p.target for p in approve.seen] == ["uplink-b", "uplink-a"]


def test_alert_on_backup_fails_back_only_once_the_primary_is_healthy(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    assert handle(make_ctx(inv, LABELS, Approver())).outcome == "failed_over"
    approve = Approver()
    up = {"alertname": "LinkUp", "link": "uplink-a"}
    outcome = handle(make_ctx(inv, up, approve))  # still down: nothing to do
    assert outcome.outcome == "on_backup" and approve.seen == []
    lab.restore("uplink-a")
    outcome = handle(make_ctx(inv, up, approve))
    assert outcome.outcome == "failed_back", outcome.message
    assert [p.target for p in approve.seen] == ["uplink-a"]
    assert "via 198.51.100.2 dev up1" in lab.default_route()


def test_failback_rejected_at_the_gate_stays_on_backup(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    assert handle(make_ctx(inv, LABELS, Approver())).outcome == "failed_over"
    lab.restore("uplink-a")
    outcome = failback(make_ctx(inv, LABELS, Approver("rejected")), "uplink-a")
    assert outcome.outcome == "rejected"
    assert "dev up2" in lab.default_route()


def test_both_links_down_changes_nothing_and_escalates(network_lab, caplog) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    lab.cut("uplink-b", "down")
    approve = Approver()
    ctx = make_ctx(inv, LABELS, approve)
    with caplog.at_level("ERROR"):
        outcome = handle(ctx)
    assert outcome.outcome == "no_healthy_backup" and not outcome.ok
    assert "both down" in outcome.message and "no change" in outcome.message
    assert approve.seen == []  # nothing was even proposed
    assert "via 198.51.100.2 dev up1" in lab.default_route()
    assert outcome.outcome.page_event == "escalation"  # the incident's one closing page


def test_healthy_primary_is_not_failed_over(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    approve = Approver()
    outcome = handle(make_ctx(inv, LABELS, approve))
    assert outcome.outcome == "not_confirmed" and outcome.ok
    assert approve.seen == [] and "dev up1" in lab.default_route()


def test_confirmation_needs_every_round_down(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    seen = confirm_link(inv.links["uplink-a"], inv)
    assert seen.state == "down" and len(seen.rounds) == 3


def test_dry_run_plans_without_changing_the_route(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    ctx = make_ctx(inv, LABELS, Approver(), dry=True)
    assert handle(ctx).outcome == "dry_run"
    assert (
        ctx.plan is not None
        and ctx.plan.actions
        == build_plan(inv.links["uplink-b"], ctx.plan.reason, back=inv.links["uplink-a"]).actions
    )
    assert "dev up1" in lab.default_route()


def test_failover_that_does_not_verify_is_reverted(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-a")
    approve = Approver()

    def approve_then_break(plan):  # type: ignore[no-untyped-def]
        lab.cut("uplink-b")  # the backup dies between sign-off and switch
        return approve(plan)

    outcome = handle(make_ctx(inv, LABELS, approve_then_break))
    assert outcome.outcome == "switch_failed" and not outcome.ok
    assert "revert to uplink-a: done" in outcome.message, outcome.message
    assert "via 198.51.100.2 dev up1" in lab.default_route()


def test_backup_link_alert_changes_no_route_and_tells_operations(network_lab) -> None:  # type: ignore[no-untyped-def]
    lab, inv = network_lab
    lab.cut("uplink-b")
    approve = Approver()
    outcome = handle(make_ctx(inv, {"alertname": "LinkDown", "link": "uplink-b"}, approve))
    assert outcome.outcome == "backup_down" and not outcome.ok
    assert approve.seen == [] and "dev up1" in lab.default_route() and lab.reachable()
