"""The incident clocks: acknowledge, approve (approved gates only), recover (recoveries only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.report.times import incident_times

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def s(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def test_recovered_incident_has_all_three_clocks() -> None:
    gates = [(s(3), s(10), "approved"), (s(11), s(15), "approved")]
    t = incident_times(T0, s(2), gates, "restored", s(30))
    assert (t.acknowledge_s, t.approve_s, t.recover_s) == (2.0, 11.0, 30.0)
    assert t.as_rows() == {
        "time to acknowledge": "2.0s", "time to approve": "11.0s", "time to recover": "30.0s",
    }  # fmt: skip


def test_no_recovery_no_recover_clock_and_rejections_do_not_count() -> None:
    t = incident_times(T0, s(1), [(s(2), s(9), "rejected")], "rejected", s(9))
    assert t.approve_s is None and t.recover_s is None
    assert incident_times(T0, s(5), [], "not_recovered", s(60)).recover_s is None
    # an alert that says it started after we handled it (clock skew) is not negative
    assert incident_times(s(5), s(1), [], "healthy", s(6)).acknowledge_s == 0.0
