"""Answering a form Prefect is still opening (stub client: the window between Paused and
the stored schema lasts milliseconds on a real server and cannot be hit on purpose), and
a form sent while Prefect's database is busy (the real case: tests/integration/test_gates.py;
here the timing and the counts)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

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


def _http_error(code: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://prefect.invalid/api/flow_runs/x/resume")
    response = httpx.Response(code, request=request, json={"exception_message": "x"})
    return PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("x", request=request, response=response)
    )


class _BusyClient(_StubClient):
    """Raises ``errors`` in turn, then accepts; records Prefect's own retry setting."""

    def __init__(self, errors: list[Exception]) -> None:
        super().__init__(refusals=0)
        self.errors = errors
        self.client_retries: list[int] = []

    def resume_flow_run(self, run_id: object, run_input: dict[str, object]) -> SimpleNamespace:
        self.client_retries.append(PREFECT_CLIENT_MAX_RETRIES.value())
        if self.errors:
            self.calls.append(run_input)
            raise self.errors.pop(0)
        return super().resume_flow_run(run_id, run_input)


def test_stub_client_a_busy_database_is_answered_again_at_once() -> None:
    errors: list[Exception] = [_http_error(503), _http_error(503), httpx.ConnectError("x")]
    client = _BusyClient(errors)
    began = time.monotonic()
    result = resume_with_input(client, uuid4(), {"decision": "approve"}, busy_s=10)
    assert result.status == "ACCEPT" and len(client.calls) == 4
    assert time.monotonic() - began < 2.5  # not Prefect's 2, 4, 8 s back-off
    assert client.client_retries == [0, 0, 0, 0]  # Prefect's own retries were off


def test_stub_client_a_server_error_is_raised_at_once() -> None:
    client = _BusyClient([_http_error(500)])
    with pytest.raises(PrefectHTTPStatusError):
        resume_with_input(client, uuid4(), {"decision": "approve"}, busy_s=10)
    assert len(client.calls) == 1


def test_stub_client_a_database_busy_for_too_long_is_raised() -> None:
    client = _BusyClient([_http_error(503) for _ in range(1000)])
    with pytest.raises(PrefectHTTPStatusError) as caught:
        resume_with_input(client, uuid4(), {"decision": "approve"}, busy_s=1.0)
    assert caught.value.response.status_code == 503
    assert 2 <= len(client.calls) <= 12
