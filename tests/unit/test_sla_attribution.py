from __future__ import annotations

import random

import pytest

from sla_checks.attribution import attribute, tier_of
from sla_checks.engine import Engine
from sla_checks.evaluate import FAIL, ThresholdSpec

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
SPECS = [
    ThresholdSpec.of("WS agent_completed", "p(95) < 2000"),
    ThresholdSpec.of("PG *", "p(95) < 200"),
    ThresholdSpec.of("REDIS *", "p(95) < 50"),
    ThresholdSpec.of("CH *", "p(95) < 1000"),
]


def run(
    seconds: int, slow: range, culprit: str | None, seed: int = 1, stage: str = "agent_started→agent_thinking"
):
    """A synthetic run: WS replies ~700 ms, 3 s slower in ``slow`` seconds when ``culprit`` stalls too."""
    rnd = random.Random(seed)
    eng = Engine(SPECS)
    eng.start(T0)
    c = eng.collector
    for s in range(seconds):
        t = T0 + s + 0.3
        bad = s in slow
        for _ in range(10):
            extra = rnd.uniform(2500, 3000) if bad else 0.0
            stages = {
                "agent_started→agent_thinking": 30.0
                + (extra if stage == "agent_started→agent_thinking" else 0),
                "tool_executing→tool_completed": 200.0
                + (extra if stage == "tool_executing→tool_completed" else 0),
            }
            c.record("WS", "agent_completed", 600 + rnd.random() * 200 + extra, False, t, stages)
        pg = 2900.0 if bad and culprit == "postgres" else 5.0
        rd = 2900.0 if bad and culprit == "redis" else 0.5
        c.record("PG", "thread history", pg + rnd.random(), False, t)
        c.record("PG", "message insert", 3 + rnd.random(), False, t)
        c.record("REDIS", "GET", rd + rnd.random(), False, t)
        c.record("CH", "agent stage summary", 30 + rnd.random() * 5, False, t)
    eng.flush_local()
    eng.stop(T0 + seconds)
    return eng


def failing(eng):
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL
    return r


@pytest.mark.parametrize(
    ("culprit", "metric", "label"),
    [("postgres", "PG thread history", 'PG "thread history"'), ("redis", "REDIS GET", 'REDIS "GET"')],
)
def test_stalled_tier_is_ranked_first_and_named_in_summary(culprit, metric, label):
    eng = run(40, range(20, 28), culprit)
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    top = a["tiers"][0]
    assert (top["tier"], top["metric"], top["within_sla"]) == (culprit, metric, False)
    assert top["score"] >= 0.8
    assert all(t["score"] < 0.25 and t["within_sla"] for t in a["tiers"][1:])
    assert f"coincides with {label} p95" in a["summary"]
    assert a["summary"].startswith("WS agent_completed p(95) ")
    assert "> 2000 ms" in a["summary"]
    assert a["slowest_stage"] == "agent_started→agent_thinking"


def test_no_tier_rises_says_backend_itself_and_names_grown_stage():
    eng = run(40, range(10, 20), None, stage="tool_executing→tool_completed")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert "no tier's latency rose" in a["summary"]
    assert all(t["within_sla"] for t in a["tiers"])
    assert a["slowest_stage"] == "tool_executing→tool_completed"
    within = a["summary"].split("; ")[1]
    assert within.endswith(" within SLA")
    assert {"PostgreSQL", "Redis", "ClickHouse"} == set(within.removesuffix(" within SLA").split(", "))


def test_whole_run_bad_uses_thresholds_as_baseline():
    eng = run(6, range(0, 6), "postgres")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "postgres"
    assert a["tiers"][0]["baseline_p95"] is None


def test_single_bucket_run_does_not_crash():
    eng = run(1, range(0, 1), "redis")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "redis"


@pytest.mark.parametrize(
    ("metric", "tier"),
    [
        ("PG connect", "postgres"),
        ("REDIS GET", "redis"),
        ("CH insert", "clickhouse"),
        ("HTTP ready:redis", "redis"),
        ("HTTP ready:postgres", "postgres"),
        ("HTTP /health", None),
        ("WS connect", None),
    ],
)
def test_tier_of(metric, tier):
    assert tier_of(metric) == tier


def test_fast_errors_during_a_redis_stall_point_at_redis():
    """Messages that fail fast (DEPENDENCY_TIMEOUT) while Redis stalls: bad buckets are found by failures."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "p(95) < 2000"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(40):
        t = T0 + s + 0.3
        stall = 20 <= s < 26
        for k in range(10):
            failed = stall and k < 6
            c.record("WS", "agent_completed", 150.0 if failed else 700.0 + s % 5 * 90, failed, t)
        if s % 5 == 0 or stall:
            c.record("REDIS", "GET", 3000.0 if stall else 0.6, False, t)
        c.record("PG", "thread history", 4.0 + s % 3, False, t)
    c.record("WS", "agent_completed", 2600.0, False, T0 + 5.3)  # an unrelated slow reply in a healthy bucket
    eng.flush_local()
    eng.stop(T0 + 40)
    res = [r for r in eng.evaluate(T0 + 40) if r.metric == "WS agent_completed"][0]
    res.status = "fail"  # judge the attribution alone: the run-wide p95 may pass with fast errors
    a = attribute(res, eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "redis"
    assert 'coincides with REDIS "GET"' in a["summary"]
    assert "PostgreSQL within SLA" in a["summary"]


def test_tier_refusing_calls_without_latency_rise_is_named():
    """Redis out of memory: SETs fail at once, chat messages fail fast; no tier latency rises."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "within(2000) >= 95%"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(30):
        t = T0 + s + 0.3
        oom = 10 <= s < 20
        for k in range(10):
            c.record("WS", "agent_completed", 40.0 if oom and k < 7 else 650.0 + k, oom and k < 7, t)
        c.record("REDIS", "SET", 0.8, oom, t)
        c.record("PG", "thread history", 4.0, False, t)
    eng.flush_local()
    eng.stop(T0 + 30)
    res = [r for r in eng.evaluate(T0 + 30) if r.metric == "WS agent_completed"][0]
    assert res.status == "fail"
    a = attribute(res, eng.store.sorted_buckets(), SPECS)
    top = a["tiers"][0]
    assert (top["tier"], top["within_sla"], top["baseline_fail_ratio"]) == ("redis", False, 0.0)
    assert top["fail_ratio"] >= 0.7  # bad buckets widened by one bucket each side: 10 of 14 s
    expected = f'coincides with REDIS "SET" failing {100 * top["fail_ratio"]:.0f}% of calls (baseline 0%)'
    assert expected in a["summary"]
