"""Approval gates on a real Prefect server: codes, roles, two-person rule, timeouts,
rejection and "alert cleared" — each gate runs in a real flow run that pauses."""

from __future__ import annotations

import contextvars
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from inventory.models import GatePolicy, Inventory, Person, RoleName
from tasks.gate.approval import GateResult, request_approval
from tasks.gate.watch import RESOLVED_TAG
from tasks.prefect_api import resume_with_input
from tests.fixtures_stack import Stack, wait_for

INV = Inventory(
    people={
        "ann": Person(name="ann", roles=[RoleName.command_center], notify=["ann-im"]),
        "bob": Person(name="bob", roles=[RoleName.command_center], backup=True, notify=["bob-im"]),
        "carl": Person(name="carl", roles=[RoleName.command_center]),  # no personal channel
        "eve": Person(name="eve", roles=[RoleName.operations]),
    }
)


class Gate:
    """Runs ``request_approval`` in a real flow run in a thread; records notifications."""

    def __init__(self, policy: GatePolicy, two_person: bool = False) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []
        self.result: GateResult | None = None
        self.error: BaseException | None = None
        self.run_id: uuid.UUID | None = None
        name = f"gate-test-{uuid.uuid4().hex[:6]}"

        @flow(name=name)
        def gate_flow() -> None:
            from prefect.runtime import flow_run

            self.run_id = uuid.UUID(flow_run.id)
            self.result = request_approval(
                "test plan",
                INV,
                policy=policy,
                two_person=two_person,
                notify=lambda ev, extra, codes: self.events.append((ev, dict(codes))),
            )

        ctx = contextvars.copy_context()  # carries the stack's API settings

        def target() -> None:
            try:
                ctx.run(gate_flow)
            except BaseException as exc:  # noqa: BLE001
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def code_for(self, person: str) -> str:
        """The newest code issued to ``person`` (each approver has their own)."""
        codes = [c[person] for ev, c in self.events if ev == "gate_opened" and person in c]
        return codes[-1]

    @property
    def code(self) -> str:
        return self.code_for("ann")

    def paused(self) -> bool:
        if self.run_id is None:
            return False
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(self.run_id).state
        return bool(state and state.is_paused())

    def wait_paused(self) -> None:
        wait_for(self.paused, timeout_s=30, what="gate paused")

    def submit(self, **run_input: Any) -> None:
        self.wait_paused()
        with get_client(sync_client=True) as client:
            resume_with_input(client, self.run_id, {"comment": "", **run_input})

    def finish(self, timeout_s: float = 30) -> GateResult:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "gate flow did not finish"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


FAST = GatePolicy(remind_after_s=600, backup_after_s=700, abort_after_s=800, poll_s=0.3)


@pytest.mark.usefixtures("lab_stack")
def test_wrong_code_and_non_member_are_refused_and_the_gate_stays_open() -> None:
    gate = Gate(FAST)
    gate.wait_paused()
    gate.submit(decision="approve", approver="ann", code="000000")
    time.sleep(1.5)
    assert gate.paused(), "a wrong code must leave the gate open"
    gate.submit(decision="approve", approver="eve", code=gate.code)
    time.sleep(1.5)
    assert gate.paused(), "a non-member must leave the gate open"
    gate.submit(decision="approve", approver="ann", code=gate.code)
    result = gate.finish()
    assert result.approved and result.approvers == ["ann"]
    assert [(a.approver, a.code_valid, a.accepted) for a in result.attempts] == [
        ("ann", False, False),
        ("eve", False, False),  # not a member; and the code was not issued to eve
        ("ann", True, True),
    ]


@pytest.mark.usefixtures("lab_stack")
def test_rejection() -> None:
    gate = Gate(FAST)
    gate.wait_paused()
    gate.submit(decision="reject", approver="bob", code=gate.code_for("bob"), comment="not now")
    result = gate.finish()
    assert result.status == "rejected" and not result.approved and result.comment == "not now"


@pytest.mark.usefixtures("lab_stack")
def test_two_person_rule_needs_two_different_approvers_and_fresh_codes() -> None:
    gate = Gate(FAST, two_person=True)
    gate.wait_paused()
    assert set(gate.events[0][1]) == {"ann", "bob"}, "a code per reachable member"
    bob_first = gate.code_for("bob")
    gate.submit(decision="approve", approver="ann", code=gate.code_for("ann"))
    wait_for(
        lambda: gate.code_for("bob") != bob_first and gate.paused(), timeout_s=15, what="fresh"
    )
    assert "ann" not in gate.events[-1][1], "the first approver gets no new code"
    gate.submit(decision="approve", approver="ann", code=gate.code_for("bob"))
    time.sleep(1.5)
    assert gate.paused(), "the same person twice is not two people"
    gate.submit(decision="approve", approver="bob", code=bob_first)
    time.sleep(1.5)
    assert gate.paused(), "an old code is refused once fresh ones were issued"
    gate.submit(decision="approve", approver="bob", code=gate.code_for("bob"))
    result = gate.finish()
    assert result.approved and result.approvers == ["ann", "bob"]
    reasons = [a.reason for a in result.attempts if not a.accepted]
    assert reasons == [
        "ann already approved; a second, different approver is needed",
        "wrong or used approval code",
    ]
    assert [(s.person, s.channels) for s in result.signoffs] == [
        ("ann", ["ann-im"]),
        ("bob", ["bob-im"]),
    ]
    assert all(s.sent_at <= s.decided_at for s in result.signoffs)


@pytest.mark.usefixtures("lab_stack")
def test_a_code_sent_to_one_person_is_refused_for_another() -> None:
    gate = Gate(FAST)
    gate.wait_paused()
    gate.submit(decision="approve", approver="bob", code=gate.code_for("ann"))
    time.sleep(1.5)
    assert gate.paused(), "ann's code must not let bob approve"
    gate.submit(decision="approve", approver="carl", code=gate.code_for("ann"))
    time.sleep(1.5)
    assert gate.paused(), "a member without a personal channel cannot approve"
    gate.submit(decision="approve", approver="ann", code=gate.code_for("ann"))
    result = gate.finish()
    assert result.approved and result.approvers == ["ann"]
    assert [a.reason for a in result.attempts] == [
        "code was not issued to bob",
        "carl has no personal notification channel (person-level notify in the "
        "inventory), so no code can be issued to them: they cannot sign off",
        "",
    ]
    assert "carl" in result.description and "no personal notification channel" in (
        result.description
    )


@pytest.mark.usefixtures("lab_stack")
def test_timeout_climbs_the_ladder_and_never_approves() -> None:
    policy = GatePolicy(remind_after_s=1, backup_after_s=2, abort_after_s=4, poll_s=0.3)
    gate = Gate(policy)
    result = gate.finish(timeout_s=40)
    assert result.status == "expired" and not result.approved
    assert [ev for ev, _ in gate.events] == ["gate_opened", "gate_reminder", "gate_backup"]
    opened = gate.events[0][1]
    assert all(codes == opened for _, codes in gate.events), "reminders repeat each own code"
    assert result.wait_s >= 4


@pytest.mark.usefixtures("lab_stack")
def test_system_decisions_need_the_gate_nonce() -> None:
    gate = Gate(FAST)
    gate.wait_paused()
    gate.submit(decision="expired", approver="system", code=gate.code)
    time.sleep(1.5)
    assert gate.paused(), "a person cannot expire a gate"
    gate.submit(decision="reject", approver="ann", code=gate.code)
    assert gate.finish().status == "rejected"


@pytest.mark.usefixtures("lab_stack")
def test_alert_resolved_while_waiting_clears_the_gate() -> None:
    gate = Gate(FAST)
    gate.wait_paused()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(gate.run_id)
        client.update_flow_run(gate.run_id, tags=[*run.tags, RESOLVED_TAG])
    result = gate.finish()
    assert result.status == "cleared" and not result.approved


class _Writer(logging.Handler):
    """Another writer on the stack's Prefect database (SQLite, WAL): holds the write lock
    ``hold_s`` at a time and commits, again and again, until a resume has been answered
    503 and sent again (seen in the log), or ``for_s`` seconds. Each commit makes any
    transaction that read before it lose its right to write."""

    def __init__(self, db: Path, hold_s: float = 0.3, for_s: float = 20) -> None:
        super().__init__(logging.INFO)
        self.db, self.hold_s, self.for_s = db, hold_s, for_s
        self.busy: list[str] = []
        self.locked = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def emit(self, record: logging.LogRecord) -> None:
        if "HTTP 503" in record.getMessage():
            self.busy.append(record.getMessage())
            self.stop.set()

    def _run(self) -> None:
        con = sqlite3.connect(self.db, timeout=30, isolation_level=None)
        try:
            con.execute("CREATE TABLE IF NOT EXISTS test_pulse (at REAL)")
            end = time.monotonic() + self.for_s
            while not self.stop.is_set() and time.monotonic() < end:
                con.execute("BEGIN IMMEDIATE")
                con.execute("INSERT INTO test_pulse VALUES (?)", (time.time(),))
                self.locked.set()
                self.stop.wait(self.hold_s)
                con.execute("COMMIT")
        finally:
            con.close()


def test_an_answer_while_prefects_database_is_busy_is_sent_again(lab_stack: Stack) -> None:
    """Prefect on SQLite answers 503 when another write commits while a resume's own
    transaction is reading; the answer is sent again at once (not 2 to 32 s later by
    Prefect's client) and the gate takes it."""
    gate = Gate(FAST)
    gate.wait_paused()
    writer = _Writer(lab_stack.state_dir / "prefect" / "prefect.db")
    api_log = logging.getLogger("contingency.api")
    api_log.addHandler(writer)
    level = api_log.level
    api_log.setLevel(logging.INFO)
    try:
        writer.thread.start()
        assert writer.locked.wait(10)
        began = time.monotonic()
        gate.submit(decision="reject", approver="ann", code=gate.code)
        took = time.monotonic() - began
    finally:
        writer.stop.set()
        writer.thread.join(15)
        api_log.removeHandler(writer)
        api_log.setLevel(level)
    assert gate.finish().status == "rejected"
    assert writer.busy, "the writer never made Prefect answer 503: the test proved nothing"
    assert took < writer.for_s / 2, f"{took:.1f}s: the answer waited the writer out"
