"""Notifications delivered over real HTTP (apprise json:// → a local receiver)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from contingency.lab.inbox import read, serve
from inventory.models import Inventory, Person, Role, RoleName
from inventory.secrets import register_secret_value
from tasks.notify import Pager, send

R = RoleName


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Inventory]]:
    out = tmp_path / "inbox.jsonl"
    server = serve(out, "127.0.0.1", 0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    roles = {}
    for role, path in [
        (R.command_center, "cc"),
        (R.operations, "ops"),
        (R.tech_support, "support"),
        (R.user_service, "users"),
        (R.information_management, "info"),
        (R.security_monitoring, "sec"),
    ]:
        roles[role.value] = Role(name=role, notify=[f"{path}-channel"])
        monkeypatch.setenv(
            f"CONTINGENCY_SECRET_{path.upper()}_CHANNEL", f"json://127.0.0.1:{port}/{path}"
        )
    people = {
        "ann": Person(name="ann", roles=[R.command_center]),
        "bob": Person(name="bob", roles=[R.command_center], backup=True, notify=["bob-im"]),
    }
    monkeypatch.setenv("CONTINGENCY_SECRET_BOB_IM", f"json://127.0.0.1:{port}/bob")
    try:
        yield out, Inventory(roles=roles, people=people)
    finally:
        server.shutdown()
        server.server_close()


FIELDS = {
    "alert": "ServiceDown",
    "target": "web",
    "plan": "software_crash",
    "summary": "web is down",
    "link": "http://ui/run/1",
}


def test_each_code_goes_to_its_person_only_and_the_role_channel_gets_none(
    inbox: tuple[Path, Inventory],
) -> None:
    out, inv = inbox
    pager = Pager(inv, "en", FIELDS)
    pager.event("gate_opened", codes={"bob": "123456"})
    deliveries = pager.flush()
    assert {d.role for d in deliveries} == {"person:bob", "command_center", "operations"}
    assert all(d.ok for d in deliveries)
    cc, ops, bob = read(out, "/cc"), read(out, "/ops"), read(out, "/bob")
    assert len(bob) == 1 and "Your one-time approval code: 123456" in bob[0]["message"]
    assert len(cc) == 1 and "123456" not in cc[0]["message"]
    assert "sent to them personally" in cc[0]["message"]
    assert len(ops) == 1 and "123456" not in ops[0]["message"]
    assert "Sign-off needed" in cc[0]["title"] and "http://ui/run/1" in ops[0]["message"]


def test_personal_channels_exclude_role_and_shared_channels() -> None:
    from tasks.notify import personal_channels

    people = {
        "ann": Person(name="ann", roles=[R.command_center], notify=["cc-channel", "ann-im"]),
        "bob": Person(name="bob", roles=[R.command_center], notify=["shared", "bob-im"]),
        "cat": Person(name="cat", roles=[R.command_center], notify=["shared"]),
    }
    roles = {"command_center": Role(name=R.command_center, notify=["cc-channel"])}
    inv = Inventory(roles=roles, people=people)
    assert personal_channels(inv, "ann") == ["ann-im"]
    assert personal_channels(inv, "bob") == ["bob-im"]
    assert personal_channels(inv, "cat") == []
    assert personal_channels(inv, "nobody") == []


def test_finished_reaches_every_acting_and_informing_role(inbox: tuple[Path, Inventory]) -> None:
    out, inv = inbox
    send("finished", inv, {**FIELDS, "outcome": "recovered", "duration": "3.1s"})
    paths = {r["path"] for r in read(out)}
    assert paths == {"/cc", "/ops", "/support", "/users", "/info", "/bob"}
    assert "/sec" not in paths


def test_language_zh(inbox: tuple[Path, Inventory]) -> None:
    out, inv = inbox
    send("incident_opened", inv, FIELDS, lang="zh", roles=[R.operations])
    (msg,) = read(out, "/ops")
    assert msg["title"].startswith("【") and "事件已立案" in msg["title"]
    assert "预案 software_crash" in msg["message"]


def test_backup_approvers_get_the_second_reminder(inbox: tuple[Path, Inventory]) -> None:
    out, inv = inbox
    pager = Pager(inv, "en", FIELDS)
    pager.event("gate_backup", codes={"ann": "111111", "bob": "654321"})
    pager.flush()
    bob = read(out, "/bob")
    assert len(bob) == 1 and "654321" in bob[0]["message"]
    assert "Reminder" in bob[0]["title"]
    assert all("111111" not in str(m) for m in read(out)), "ann is not a backup approver"
    assert all("654321" not in str(m) for m in read(out, "/cc"))


def test_failed_channel_is_reported_not_raised(
    inbox: tuple[Path, Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, inv = inbox
    monkeypatch.setenv("CONTINGENCY_SECRET_OPS_CHANNEL", "json://127.0.0.1:9/nowhere")
    roles = {
        **inv.roles,
        "tech_support": Role(name=R.tech_support, notify=["no-such-channel-7f3a"]),
    }
    deliveries = send("escalation", inv.model_copy(update={"roles": roles}), FIELDS)
    by_role = {d.role: d for d in deliveries}
    assert by_role["command_center"].ok
    assert not by_role["operations"].ok and by_role["operations"].error
    assert not by_role["tech_support"].ok and "not set" in by_role["tech_support"].error
    assert "127.0.0.1:9" not in by_role["operations"].error  # the URL is a secret


def test_secrets_are_redacted_from_messages(inbox: tuple[Path, Inventory]) -> None:
    out, inv = inbox
    register_secret_value("hunter2-very-secret-token")
    send(
        "failure",
        inv,
        {**FIELDS, "summary": "auth with hunter2-very-secret-token failed"},
        roles=[R.operations],
    )
    (msg,) = read(out, "/ops")
    assert "hunter2-very-secret-token" not in msg["message"] and "***" in msg["message"]


def test_report_lists_deliveries(inbox: tuple[Path, Inventory]) -> None:
    _, inv = inbox
    pager = Pager(inv, "en", FIELDS)
    pager.event("incident_opened")
    table = pager.as_markdown()
    assert "incident_opened" in table and "cc-channel" in table and "| yes |" in table


def test_a_drill_pages_nobody_but_sends_gate_codes_to_the_command_center(
    inbox: tuple[Path, Inventory],
) -> None:
    out, inv = inbox
    pager = Pager(inv, "en", FIELDS, drill=True)
    pager.event("incident_opened")
    pager.event("escalation")
    pager.event("gate_opened", {}, {"bob": "123456"})
    table = pager.as_markdown()
    assert table.count("(drill: not sent)") == 2
    msgs = read(out)
    assert sorted(m["path"] for m in msgs) == ["/bob", "/cc"]  # command center only
    (bob,) = read(out, "/bob")
    assert "[DRILL]" in bob["title"] + bob["message"] and "123456" in bob["message"]
    assert "123456" not in str(read(out, "/cc"))


def test_refusal_reasons() -> None:
    from tasks.gate.approval import refusal

    cc = {"ann", "bob"}
    assert refusal("approve", "eve", True, cc, []) == "'eve' is not a command-center member"
    assert refusal("approve", "ann", False, cc, []) == "wrong or used approval code"
    assert "system only" in refusal("expired", "ann", True, cc, [])
    assert "second, different approver" in refusal("approve", "ann", True, cc, ["ann"])
    assert refusal("reject", "ann", True, cc, ["ann"]) == ""
    assert refusal("approve", "bob", True, cc, ["ann"]) == ""


def test_codes_are_bound_to_people() -> None:
    from tasks.gate.approval import code_check, refusal

    issued = {"ann": "111111", "bob": "222222"}
    assert code_check("ann", "111111", issued) == ""
    assert code_check("ann", " 111111 ", issued) == ""
    assert code_check("bob", "111111", issued) == "code was not issued to bob"
    assert code_check("eve", "111111", issued) == "code was not issued to eve"
    assert code_check("ann", "333333", issued) == "wrong or used approval code"
    assert code_check("ann", "", issued) == "wrong or used approval code"
    assert code_check("ann", "111111", {"bob": "222222"}) == "wrong or used approval code"
    cc, reach = {"ann", "bob", "carl"}, {"ann", "bob"}
    why = code_check("bob", "111111", issued)
    assert refusal("approve", "bob", False, cc, [], code_reason=why, reachable=reach) == why
    assert "carl has no personal notification channel" in refusal(
        "approve", "carl", True, cc, [], reachable=reach
    )
    assert "cannot sign off" in refusal("reject", "carl", True, cc, [], reachable=reach)
    # one person, twice: refused whatever code they hold
    assert "already approved" in refusal("approve", "ann", True, cc, ["ann"], reachable=reach)
    assert "already approved" in refusal(
        "approve", "ann", False, cc, ["ann"], code_reason="wrong or used approval code"
    )
    assert refusal("approve", "bob", True, cc, ["ann"], reachable=reach) == ""


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rostered(
    inbox: tuple[Path, Inventory], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Inventory]:
    """Operations with a daily roster of ann2 and cid, each with an own chat channel and
    an SMS fallback (both in the inbox), and the delays between tries cut short."""
    from datetime import date

    from inventory.duty import Roster

    out, inv = inbox
    port = int(os.environ["CONTINGENCY_SECRET_OPS_CHANNEL"].rsplit(":", 1)[1].split("/")[0])
    people = dict(inv.people)
    for name in ("ann2", "cid"):
        people[name] = Person(
            name=name, roles=[R.operations], notify=[f"im-{name}"], fallback=[f"sms-{name}"]
        )
        monkeypatch.setenv(
            f"CONTINGENCY_SECRET_IM_{name.upper()}", f"json://127.0.0.1:{port}/im/{name}"
        )
        monkeypatch.setenv(
            f"CONTINGENCY_SECRET_SMS_{name.upper()}", f"json://127.0.0.1:{port}/sms/{name}"
        )
    roster = Roster(
        name="operations", timezone="UTC", start=date(2026, 1, 1), rotation=["ann2", "cid"]
    )
    monkeypatch.setattr("tasks.notify.RETRY_DELAYS_S", (0.05, 0.05))
    return out, inv.model_copy(update={"people": people, "rosters": {"operations": roster}})


def test_the_on_duty_person_is_paged_first_and_the_others_only_through_the_role(
    rostered: tuple[Path, Inventory],
) -> None:
    from tasks.notify import on_duty

    out, inv = rostered
    duty = on_duty(inv, R.operations)
    off = ({"ann2", "cid"} - {duty}).pop()
    deliveries = send("runbook_notice", inv, FIELDS)
    assert [(d.channel, d.person) for d in deliveries] == [
        (f"im-{duty}", duty),
        ("ops-channel", ""),
    ]
    assert len(read(out, f"/im/{duty}")) == 1 and read(out, f"/im/{off}") == []
    assert len(read(out, "/ops")) == 1


def test_a_failing_chat_channel_is_retried_then_the_on_duty_fallback_is_used(
    rostered: tuple[Path, Inventory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role's chat is down (a closed port): three tries, then the on-duty person's
    SMS; the report says so."""
    from tasks.notify import on_duty

    out, inv = rostered
    monkeypatch.setenv("CONTINGENCY_SECRET_OPS_CHANNEL", f"json://127.0.0.1:{_closed_port()}/ops")
    duty = on_duty(inv, R.operations)
    pager = Pager(inv, "en", FIELDS)
    pager.event("runbook_notice")
    deliveries = pager.flush()
    failed = next(d for d in deliveries if d.channel == "ops-channel")
    assert not failed.ok and failed.attempts == 3
    spare = next(d for d in deliveries if d.fallback_for == "ops-channel")
    assert spare.ok and spare.channel == f"sms-{duty}" and spare.person == duty
    (sms,) = read(out, f"/sms/{duty}")
    assert "web" in sms["message"]
    table = pager.as_markdown()
    assert f"sms-{duty} (fallback for ops-channel)" in table and "(3 tries)" in table


def test_a_dry_run_pager_sends_nothing_and_says_so(inbox: tuple[Path, Inventory]) -> None:
    out, inv = inbox
    pager = Pager(inv, "en", FIELDS, dry_run=True)
    pager.event("incident_opened")
    pager.event("gate_opened", codes={"bob": "123456"})
    deliveries = pager.flush()
    assert [d.channel for d in deliveries] == ["(dry run: not sent)"] * 2
    assert read(out) == []
