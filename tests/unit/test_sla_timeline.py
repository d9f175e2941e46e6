"""The report's time series, distribution and faults (sla_checks.timeline), and the fault scheduler noting each fault
it applied: pure, clock-injected engines."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scenarios.faults import FaultScheduler, PlannedFault
from scenarios.registry import FaultSpec
from sla_checks.engine import Bucket, Engine, FaultMark
from sla_checks.evaluate import ThresholdSpec, evaluate
from sla_checks.report import build_report
from sla_checks.timeline import MAX_POINTS, build_timeline, latency_distribution

T0 = 1_800_000_000.0


def _engine(seconds: int = 60, slow: range = range(20, 30), seed: int = 3, window_s: float = 0.0) -> Engine:
    rnd = random.Random(seed)
    specs = [
        ThresholdSpec.of("WS agent_completed", "p(95) < 2000"),
        ThresholdSpec.of("WS agent_completed", "within(1500) >= 90%"),
        ThresholdSpec.of("WS agent_completed", "rps >= 5"),
        ThresholdSpec.of("PG *", "p(95) < 200"),
    ]
    engine = Engine(specs, window_s=window_s)
    engine.start(T0)
    for s in range(seconds):
        engine.note_users(T0 + s, min(10, s + 1))
        for _ in range(8):
            extra = 2500.0 if s in slow else 0.0
            engine.collector.record("WS", "agent_completed", rnd.uniform(300, 900) + extra, rnd.random() < 0.02,
                                    T0 + s + 0.5)
        engine.collector.record("PG", "thread history", rnd.uniform(2, 9), False, T0 + s + 0.5)
    engine.flush_local()
    engine.stop(T0 + seconds)
    return engine


@pytest.mark.timeout(30)
def test_timeline_points_hold_rates_users_percentiles_and_threshold_values() -> None:
    engine = _engine()
    results = engine.evaluate(T0 + 60)
    timeline = build_timeline(engine, T0 + 60, results)
    assert timeline is not None
    step = timeline["step_s"]
    assert step == engine.store.resolution_s == 2.0
    assert len(timeline["t"]) == 30 and timeline["t"][0] == 1.0 and timeline["t"][-1] == 59.0
    assert timeline["requests_per_s"] == [9.0] * 30  # 8 chat replies + 1 PG query a second
    assert timeline["users"][:3] == [2, 4, 6] and timeline["users"][-1] == 10
    slow = [i for i, t in enumerate(timeline["t"]) if 20 <= t < 30]
    assert all(timeline["latency"]["p95"][i] > 2000 for i in slow)
    assert all(p < 2000 for i, p in enumerate(timeline["latency"]["p95"]) if i not in slow)
    # each threshold's value at a point is the threshold judged on that point's samples alone
    buckets = sorted(engine.store.buckets.items())
    for point, t in enumerate(timeline["t"]):
        bucket = Bucket.merged(b for idx, b in buckets if t - step / 2 <= idx * 2.0 - T0 < t + step / 2)
        judged = {(id(r.spec), r.metric): r.value for r in evaluate(engine.specs, bucket.metrics, step)}
        for row, result in zip(timeline["thresholds"], results, strict=True):
            assert (row["metric"], row["expression"]) == (result.metric, str(result.spec.expression))
            assert row["values"][point] == pytest.approx(judged[(id(result.spec), result.metric)], abs=1e-3)


@pytest.mark.timeout(30)
def test_timeline_of_a_long_run_has_at_most_max_points_and_live_updates_reuse_the_cache() -> None:
    engine = _engine(seconds=600, slow=range(0))
    results = engine.evaluate(T0 + 600)
    timeline = build_timeline(engine, T0 + 600, results)
    assert timeline is not None and len(timeline["t"]) <= MAX_POINTS
    assert timeline["step_s"] * len(timeline["t"]) >= 600
    # a sample arriving later changes its point only
    engine.ended_at = None
    engine.collector.record("WS", "agent_completed", 9000.0, False, T0 + 599.5)
    engine.flush_local()
    again = build_timeline(engine, T0 + 600, engine.evaluate(T0 + 600))
    assert again is not None
    assert again["latency"]["p99"][:-1] == timeline["latency"]["p99"][:-1]
    assert again["latency"]["count"][-1] == timeline["latency"]["count"][-1] + 1


@pytest.mark.timeout(30)
def test_distribution_bins_are_exact_and_every_limit_is_an_edge() -> None:
    engine = _engine()
    dist = latency_distribution(engine, engine.evaluate(T0 + 60))
    assert dist is not None and dist["metric"] == "WS agent_completed"
    hist = engine.store.judged().metrics["WS agent_completed"].hist
    assert sum(dist["counts"]) == dist["count"] == hist.count
    edges = dist["edges_ms"]
    assert edges == sorted(edges) and edges[0] < hist.min and edges[-1] >= hist.max
    assert 2000.0 in edges and 1500.0 in edges
    below_limit = sum(n for i, n in enumerate(dist["counts"]) if edges[i + 1] <= 2000.0)
    assert below_limit == hist.count_le(2000)
    assert {(lim["expression"], lim["ms"], lim["status"]) for lim in dist["limits"]} == {
        ("p(95) < 2000", 2000.0, "fail"),
        ("within(1500) >= 90%", 1500.0, "fail"),
    }


@pytest.mark.timeout(30)
def test_report_carries_faults_cut_at_the_end_timeline_and_threshold_limits() -> None:
    engine = _engine()
    engine.record_fault(FaultMark("agent-slow", T0 + 20, T0 + 30, "2500 ms"))
    engine.record_fault(FaultMark("pg-lock", T0 + 50, T0 + 90, "", "HTTP 500"))
    report = build_report(engine, T0 + 60)
    assert report["faults"] == [
        {"kind": "agent-slow", "detail": "2500 ms", "start": "2027-01-15T08:00:20.000Z",
         "end": "2027-01-15T08:00:30.000Z", "start_ts": T0 + 20, "end_ts": T0 + 30, "start_s": 20.0, "end_s": 30.0,
         "error": None},
        {"kind": "pg-lock", "detail": "", "start": "2027-01-15T08:00:50.000Z", "end": "2027-01-15T08:01:00.000Z",
         "start_ts": T0 + 50, "end_ts": T0 + 60, "start_s": 50.0, "end_s": 60.0, "error": "HTTP 500"},
    ]
    assert [t["limit"] for t in report["thresholds"]] == [2000.0, 90.0, 5.0, 200.0]
    assert report["timeline"]["t0"] == T0 and report["distribution"]["count"] == 480


class _Client:
    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def apply(self, kind: str, ms: int | None = None, for_s: float = 10.0, **params: Any) -> dict[str, Any]:
        self.calls.append((kind, ms))
        if kind in self.fail:
            raise RuntimeError("HTTP 500 from /admin/faults")
        return {"kind": kind}

    def list(self) -> list[dict[str, Any]]:
        return []

    def clear(self) -> None:
        pass


@pytest.mark.timeout(30)
def test_scheduler_notes_each_fault_with_its_wall_time_and_error() -> None:
    clock = {"t": 0.0}
    plan = [
        PlannedFault(2.0, 5.0, FaultSpec("agent-slow", start_s=2, for_s=5, ms=2500)),
        PlannedFault(9.0, 3.0, FaultSpec("pg-lock", start_s=9, for_s=3, params=(("table", "messages"),))),
    ]
    noted: list[tuple[str, float, float, str, str | None]] = []
    engine = Engine([])

    def on_applied(planned: PlannedFault, at: float, error: str | None) -> None:
        noted.append((planned.spec.kind, at, at + planned.for_s, planned.detail(), error))
        engine.record_fault(FaultMark(planned.spec.kind, at, at + planned.for_s, planned.detail(), error))

    def sleep(seconds: float) -> None:
        clock["t"] += seconds

    scheduler = FaultScheduler(_Client({"pg-lock"}), plan, clock=lambda: clock["t"], sleep=sleep,
                               on_applied=on_applied, wall=lambda: T0 + clock["t"])
    scheduler.run()
    assert noted == [
        ("agent-slow", T0 + 2, T0 + 7, "2500 ms", None),
        ("pg-lock", T0 + 9, T0 + 12, "table=messages", "HTTP 500 from /admin/faults"),
    ]
    assert [f.kind for f in engine.faults] == ["agent-slow", "pg-lock"]


@pytest.mark.timeout(30)
def test_a_failing_note_never_stops_the_schedule() -> None:
    plan = [PlannedFault(0.0, 1.0, FaultSpec("agent-slow", start_s=0, for_s=1, ms=100))] * 2
    client = _Client(set())

    def broken(*_args: Any) -> None:
        raise ValueError("report gone")

    FaultScheduler(client, plan, clock=lambda: 0.0, sleep=lambda _s: None, on_applied=broken).run()
    assert len(client.calls) == 2
