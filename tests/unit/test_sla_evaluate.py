from __future__ import annotations

import pytest

from sla_checks.evaluate import FAIL, NO_DATA, PASS, MetricData, ThresholdSpec, evaluate, statistic
from sla_checks.expressions import parse_expression

pytestmark = pytest.mark.timeout(10)


def data(values, failed=()):
    d = MetricData()
    for i, v in enumerate(values):
        d.record(v, i in set(failed))
    return d


@pytest.mark.parametrize(
    ("expr", "p95_value", "status"),
    [
        ("p(95) < 2000", 1999.0, PASS),
        ("p(95) < 2000", 2000.0, FAIL),
        ("p(95) <= 2000", 2000.0, PASS),
        ("p(95) <= 2000", 2000.2, FAIL),  # never rounded down to pass
        ("p(95) < 2000", 1999.4, FAIL),  # sub-ms values round up (< 1 ms): a breach is never passed
    ],
)
def test_percentile_boundary_at_2000ms(expr, p95_value, status):
    m = {"WS agent_completed": data([100.0] * 94 + [p95_value] + [5000.0] * 5)}
    (r,) = evaluate([ThresholdSpec.of("WS agent_completed", expr)], m, duration_s=10)
    assert r.status == status


@pytest.mark.parametrize(
    ("values", "failed", "expected_pct"),
    [
        ([2000.0] * 95 + [2001.0] * 5, (), 95.0),
        ([1999.0] * 94 + [2000.5] * 6, (), 94.0),
        ([100.0] * 100, range(10), 90.0),  # fast errors are not "within"
    ],
)
def test_within_counts_successes_at_or_under_limit(values, failed, expected_pct):
    d = data(values, failed)
    assert statistic(parse_expression("within(2000) >= 95%"), d, 1) == pytest.approx(expected_pct)


def test_rps_count_fail_ratio_avg_med_min_max():
    d = data([10.0, 20.0, 30.0, 40.0], failed=[3])
    dur = 2.0
    val = {
        e: statistic(parse_expression(e + " > 0"), d, dur)
        for e in ("rps", "count", "fail_ratio", "avg", "med", "min", "max")
    }
    assert val == {
        "rps": 1.5,  # successful samples only: 3 of 4 in 2 s
        "count": 4.0,
        "fail_ratio": 0.25,
        "avg": 25.0,
        "med": 20.0,
        "min": 10.0,
        "max": 40.0,
    }


@pytest.mark.parametrize(
    ("ok", "failed", "status"),
    [
        (100, 0, PASS),  # 10 completed messages per second
        (99, 1, FAIL),  # one failure: 9.9 completed per second, not 10
        (50, 500, FAIL),  # a flood of fast DEPENDENCY_TIMEOUT errors is no throughput
        (0, 200, FAIL),
    ],
)
def test_rps_counts_only_successful_samples(ok, failed, status):
    d = data([800.0] * ok + [3.0] * failed, failed=range(ok, ok + failed))
    (r,) = evaluate([ThresholdSpec.of("WS agent_completed", "rps >= 10")], {"WS agent_completed": d}, 10)
    assert (r.status, r.value, r.samples) == (status, ok / 10, ok + failed)


def test_no_data_is_not_a_failure_unless_required():
    specs = [
        ThresholdSpec.of("PG *", "p(95) < 200"),
        ThresholdSpec.of("REDIS *", "p(95) < 50", required=True),
        ThresholdSpec.of("WS agent_completed", "p(95) < 2000"),
    ]
    res = evaluate(specs, {"WS agent_completed": data([10.0])}, 1)
    assert [(r.metric, r.status) for r in res] == [
        ("PG *", NO_DATA),
        ("REDIS *", FAIL),
        ("WS agent_completed", PASS),
    ]
    # per window a quiet required metric is "no data"
    res = evaluate(specs, {}, 1, judge_no_data=False)
    assert {r.status for r in res} == {NO_DATA}


def test_glob_judges_each_metric_and_exact_threshold_overrides_same_statistic():
    m = {
        "REDIS GET": data([10.0] * 20),
        "REDIS connect": data([80.0] * 20),
        "REDIS SET": data([60.0] * 20),
        "PG thread history": data([10.0]),
    }
    specs = [ThresholdSpec.of("REDIS *", "p(95) < 50"), ThresholdSpec.of("REDIS connect", "p(95) < 100")]
    res = {(r.metric, str(r.spec.expression)): r.status for r in evaluate(specs, m, 1)}
    assert res == {
        ("REDIS GET", "p(95) < 50"): PASS,
        ("REDIS SET", "p(95) < 50"): FAIL,
        ("REDIS connect", "p(95) < 100"): PASS,
    }


def test_describe_gives_log_line_value_with_unit():
    m = {"WS agent_completed": data([3120.0] * 20)}
    (r,) = evaluate([ThresholdSpec.of("WS agent_completed", "p(95) < 2000")], m, 1)
    assert r.describe() == "WS agent_completed p(95) < 2000 was 3,120 ms"


def test_a_percentile_of_too_few_samples_says_their_slowest_decided_it():
    """19 samples: p(95)'s nearest rank is the 19th, the slowest; 20: the 19th of 20. The value is the same
    percentile either way; the line tells the reader one slow sample decided it."""
    few = data([10.0] * 18 + [59.4])
    (r,) = evaluate([ThresholdSpec.of("REDIS INFO", "p(95) < 50")], {"REDIS INFO": few}, 1)
    assert r.status == "fail" and r.value == 59.4
    assert r.describe() == ("REDIS INFO p(95) < 50 was 59.4 ms (over 19 samples: a p(95) of fewer than 20 is their "
                            "slowest)")
    enough = data([10.0] * 19 + [59.4])
    (r,) = evaluate([ThresholdSpec.of("REDIS INFO", "p(95) < 50")], {"REDIS INFO": enough}, 1)
    assert r.status == "pass" and r.describe() == "REDIS INFO p(95) < 50 was 10.0 ms"
    (r,) = evaluate([ThresholdSpec.of("REDIS INFO", "p(99) < 50")], {"REDIS INFO": enough}, 1)
    assert r.describe().endswith("(over 20 samples: a p(99) of fewer than 100 is their slowest)")
    (r,) = evaluate([ThresholdSpec.of("REDIS INFO", "max < 50")], {"REDIS INFO": few}, 1)
    assert "samples" not in r.describe()  # a max is the slowest by definition: nothing to add


def test_a_count_valued_metric_reads_as_a_count_not_ms():
    m = {"BACKEND orphan runs": data([3.0]), "WS agent_completed": data([3.0])}
    orphans, reply = evaluate([ThresholdSpec.of("BACKEND orphan runs", "max < 1"),
                               ThresholdSpec.of("WS agent_completed", "max < 1")], m, 1)
    assert orphans.describe() == "BACKEND orphan runs max < 1 was 3"
    assert reply.describe() == "WS agent_completed max < 1 was 3.00 ms"


def test_metric_data_round_trip_and_merge():
    a, b = data([1.0, 2.0], failed=[0]), data([3.0])
    back = MetricData.from_dict(a.to_dict()).merge(MetricData.from_dict(b.to_dict()))
    assert (back.count, back.failures, back.hist.max) == (3, 1, 3.0)
