from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sla_checks.profiles import load_profile
from sla_checks.tracker import PerformanceTracker

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("latency", "violated"), [(1999.9, False), (2000.0, False), (2000.1, True), (3120.0, True)]
)
def test_record_latency_flags_samples_over_2000ms(latency, violated):
    clock = Clock()
    tr = PerformanceTracker(clock=clock)
    tr.record_latency("websocket_message", latency)
    assert bool(tr.sla_violations) is violated
    if violated:
        v = tr.sla_violations[0]
        assert (v["operation"], v["value"], v["latency_ms"], v["violation_type"]) == (
            "websocket_message",
            latency,
            latency,
            "latency",
        )
        assert v["timestamp"] == datetime.fromtimestamp(clock.t, UTC)
        assert v["timestamp"].tzinfo is UTC


@pytest.mark.parametrize(("ops", "violated"), [(9.99, True), (10.0, False), (25.0, False)])
def test_record_throughput_flags_under_10_ops(ops, violated):
    tr = PerformanceTracker(clock=Clock())
    tr.record_throughput(ops)
    assert [v["violation_type"] for v in tr.sla_violations] == (["throughput"] if violated else [])


def test_profile_limits_apply_per_metric_name():
    tr = PerformanceTracker(profile=load_profile("local"), clock=Clock())
    assert tr.latency_limit("PG thread history") == 200
    assert tr.latency_limit("REDIS GET") == 50
    assert tr.latency_limit("REDIS connect") == 50  # the smallest matching limit: glob 50 and exact 100
    assert tr.latency_limit("something else") == 2000
    tr.record_latency("PG thread history", 250.0)
    assert tr.sla_violations[0]["threshold"] == 200


def test_evaluate_uses_the_engine_percentiles_and_assert_sla_lists_problems():
    clock = Clock()
    tr = PerformanceTracker(profile=load_profile("local"), clock=clock)
    for i in range(100):
        clock.t += 0.1
        tr.record_latency("WS agent_completed", 3000.0 if i >= 90 else 500.0)
    assert tr.percentile("WS agent_completed", 95) == 3000.0
    results = {r.name: r for r in tr.evaluate()}
    assert results["WS agent_completed p(95) < 2000"].status == "fail"
    with pytest.raises(AssertionError, match="SLA FAILED: WS agent_completed p\\(95\\) < 2000 was 3,000 ms"):
        tr.assert_sla()
    rep = tr.report()
    assert rep["schema"] == "ws-agent-loadtest/sla-report/1"
    assert len(rep["sla_violations"]) == 10


def test_clean_tracker_passes():
    tr = PerformanceTracker(clock=Clock())
    tr.record_latency("op", 10.0)
    tr.record_throughput(50)
    tr.assert_sla()
