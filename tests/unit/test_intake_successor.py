"""Pure parts of "a re-sent alert is never swallowed by a dead incident": what the intake
does with the run Prefect answers for an idempotency key (tests/integration/
test_intake_readiness.py and tests/faults/test_resend_after_death.py run it for real)."""

from uuid import uuid4

from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Completed, Crashed, Failed, Paused, Running, Scheduled

from contingency.intake.dedup import AnsweredCache
from contingency.intake.starter import ALREADY_RUNNING, next_step, started_note
from contingency.runtime.incident_runs import INTERRUPTED, MAX_SUCCESSORS, successor_key
from inventory.settings import Settings

KEY = "c5dea3e490c4fe74:2026-11-28T10:00:00+00:00"


def run(state, key: str = KEY) -> FlowRun:  # type: ignore[no-untyped-def]
    return FlowRun(flow_id=uuid4(), state=state, idempotency_key=key)


def test_a_live_or_normally_finished_run_is_the_answer() -> None:
    for state in (Scheduled(), Running(), Paused(), Completed(), Failed(), Cancelled()):
        step = next_step(run(state), KEY)
        assert (step.successor, step.note, step.stopped) == (None, ALREADY_RUNNING, False)


def test_a_crashed_or_interrupted_run_gets_a_successor_keyed_by_it() -> None:
    for state in (Crashed(message="process died"), Crashed(name=INTERRUPTED)):
        dead = run(state)
        step = next_step(dead, KEY)
        assert step.successor == successor_key(KEY, dead.id) == f"{KEY}|after:{dead.id}"
        assert not step.stopped


def test_the_successor_key_comes_from_the_runs_own_key_not_the_posted_one() -> None:
    """Reached through a chain, the dead run's own key decides: every replica, and the
    reconciler, derive the same next key."""
    first = run(Crashed())
    second = run(Crashed(), key=successor_key(KEY, first.id))
    step = next_step(second, KEY)
    assert step.successor == successor_key(successor_key(KEY, first.id), second.id)


def test_the_chain_stops_after_max_successors_and_asks_for_a_human() -> None:
    key = KEY
    for _ in range(MAX_SUCCESSORS):
        key = successor_key(key, uuid4())
    last = run(Crashed(), key=key)
    step = next_step(last, KEY)
    assert step.successor is None and step.stopped
    assert str(last.id) in step.note and "a human must look" in step.note
    # one generation earlier still gets a successor
    assert next_step(run(Crashed(), key=key.rsplit("|after:", 1)[0]), KEY).successor


def test_notes_name_the_dead_run_and_its_state() -> None:
    dead = run(Crashed(name=INTERRUPTED))
    assert started_note(dead) == (
        f"the earlier incident {dead.id} ended without handling the alert (Interrupted); "
        "a new incident was started"
    )
    step = next_step(run(Running()), KEY, dead=dead)
    assert step.note.startswith(ALREADY_RUNNING) and str(dead.id) in step.note


def test_the_fast_path_forgets_within_a_minute_by_default() -> None:
    """A cached answer can outlive its run; the short TTL bounds how long."""
    assert Settings().intake_dedup_ttl_s <= 60
    cache = AnsweredCache()
    cache.put(KEY, "run", now=0)
    assert cache.get(KEY, now=cache.ttl_s - 1) == "run"
    assert cache.get(KEY, now=cache.ttl_s + 1) is None
