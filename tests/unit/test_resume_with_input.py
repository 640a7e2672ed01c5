"""Answering a form Prefect is still opening (stub client: the window between Paused and
the stored schema lasts milliseconds on a real server and cannot be hit on purpose)."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

from tasks.prefect_api import resume_with_input


class _StubClient:
    """Refuses with Prefect's own reason ``refusals`` times, then accepts."""

    def __init__(self, refusals: int, reason: str = "Run input schema not found.") -> None:
        self.refusals = refusals
        self.reason = reason
        self.calls: list[dict[str, object]] = []

    def resume_flow_run(self, run_id: object, run_input: dict[str, object]) -> SimpleNamespace:
        self.calls.append(run_input)
        if len(self.calls) <= self.refusals:
            return SimpleNamespace(status="REJECT", details=SimpleNamespace(reason=self.reason))
        return SimpleNamespace(status="ACCEPT", details=SimpleNamespace(reason=""))


def test_stub_client_an_answer_while_the_form_opens_is_sent_again() -> None:
    client = _StubClient(refusals=3)
    result = resume_with_input(client, uuid4(), {"decision": "approve"}, wait_s=5)
    assert result.status == "ACCEPT"
    assert client.calls == [{"decision": "approve"}] * 4


def test_stub_client_other_refusals_are_returned_at_once() -> None:
    client = _StubClient(refusals=5, reason="Run is not paused.")
    result = resume_with_input(client, uuid4(), {"decision": "approve"}, wait_s=5)
    assert result.status == "REJECT" and len(client.calls) == 1


def test_stub_client_a_form_that_never_opens_is_refused_after_the_wait() -> None:
    client = _StubClient(refusals=1000)
    result = resume_with_input(client, uuid4(), {"decision": "approve"}, wait_s=0.5)
    assert result.status == "REJECT" and "schema not found" in result.details.reason
    assert 2 <= len(client.calls) <= 5
