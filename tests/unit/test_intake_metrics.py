from contingency.intake.metrics import IntakeMetrics


def test_metrics_are_per_instance_and_render() -> None:
    a, b = IntakeMetrics(), IntakeMetrics()  # separate registries: no duplicate-name error
    a.received.labels(source="grafana", status="firing").inc()
    a.rejected.labels(endpoint="/webhook/generic", reason="signature").inc(2)
    a.incident_outcome("software_crash", "completed")
    a.observe_gate_wait("data_loss", "approved", 42.0)
    text = a.render().decode()
    assert 'contingency_alerts_received_total{source="grafana",status="firing"} 1.0' in text
    assert 'reason="signature"} 2.0' in text
    assert "contingency_gate_wait_seconds_bucket" in text
    assert "contingency_remediation_duration_seconds" in text
    assert 'source="grafana"' not in b.render().decode()
